"""Speech in, words out: the end-to-end pipeline over PyTorch modules or exported packages.

* :mod:`~parakeet_nb.transcribe.pipeline`: waveform -> mel -> encoder -> TDT greedy decoding,
  split, chunked or fused.
* :mod:`~parakeet_nb.transcribe.long_audio`: clips of any length in overlapping 15 s windows,
  merged at the seams by token time.
"""
