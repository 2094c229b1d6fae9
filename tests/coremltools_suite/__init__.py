"""coremltools 9.0's own MIL op test suite, predicted by ``milexec`` (see :mod:`.plugin`)."""
