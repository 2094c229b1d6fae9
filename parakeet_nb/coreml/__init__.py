"""From PyTorch to Core ML files: conversion, the export folder, runtime configuration.

* :mod:`~parakeet_nb.coreml.convert`: trace a component and convert it with coremltools.
* :mod:`~parakeet_nb.coreml.export`: every contract component plus ``metadata.json``.
* :mod:`~parakeet_nb.coreml.runtime`: compute units, Swift loading code, macOS ``predict``.
"""
