"""Waveform -> mel: NeMo 3.0's recipe and the ways this project computes it.

* :mod:`~parakeet_nb.frontend.recipe`: the recipe's constants and NeMo's own preprocessor.
* :mod:`~parakeet_nb.frontend.mel_reference`: float64 and global-STFT references.
* :mod:`~parakeet_nb.frontend.chunked`: the ANE-safe ``[B, 15, 16000]`` design.
* :mod:`~parakeet_nb.frontend.streaming`: log-mel from short windows, with state.
* :mod:`~parakeet_nb.frontend.fp16`: float16 emulation for torch modules.
* :mod:`~parakeet_nb.frontend.audio`: reading 16 kHz mono clips.
"""
