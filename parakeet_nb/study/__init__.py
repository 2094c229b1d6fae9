"""The numerical studies: how close each design and each exported program is to NeMo.

* :mod:`~parakeet_nb.study.parity`: the chunked mel against NeMo and an exact float64 recipe.
* :mod:`~parakeet_nb.study.program_parity`: exported programs run by the executor against
  their PyTorch modules.
"""
