"""Core ML ML Programs on any OS: read a saved ``.mlpackage`` and run it.

* :mod:`~parakeet_nb.mlprogram.load`: load a package through coremltools' own milproto
  reader (no hand parsing), for inspection on Linux and macOS.
* :mod:`~parakeet_nb.mlprogram.milexec`: a numpy reference executor that runs a program's
  ``main`` function op by op, in float32 or with float16 rounding ("as typed").

Imports nothing else from :mod:`parakeet_nb` but ``_quiet`` and ``paths``.
"""
