"""Parakeet TDT as NeMo modules: presets, checkpoints, export wrappers, decoding, loss.

* :mod:`~parakeet_nb.model.presets`: seeded-weight presets built from NeMo's modules.
* :mod:`~parakeet_nb.model.checkpoint`: local ``.nemo`` files, loaded safely.
* :mod:`~parakeet_nb.model.components`: ``nn.Module`` wrappers with the export contract's names.
* :mod:`~parakeet_nb.model.tdt`: TDT greedy decoding, backend-independent.
* :mod:`~parakeet_nb.model.tdt_loss`: a pure-PyTorch TDT loss for CPU training.
"""
