"""parakeet_nb: helpers for getting NeMo Parakeet TDT onto the Apple Neural Engine."""
__version__ = "0.1.0"
