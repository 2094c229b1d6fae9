"""parakeet_nb: helpers for getting NeMo Parakeet TDT onto the Apple Neural Engine.

One subpackage per idea (``mlprogram``, ``ane``, ``frontend``, ``model``, ``coreml``,
``transcribe``, ``study``, ``device``, ``digits``, ``teach``); ``parakeet_nb/README.md``
draws the map and the direction of imports, which ``tests/test_layering.py`` checks.
"""
__version__ = "0.1.0"
