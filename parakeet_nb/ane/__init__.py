"""The Apple Neural Engine's rules, as code: where a tensor lands, what the ANE takes.

* :mod:`~parakeet_nb.ane.layout`: how a tensor's shape lands on N D C H W, and the limits.
* :mod:`~parakeet_nb.ane.audit`: every tensor of a program that breaks a limit.
* :mod:`~parakeet_nb.ane.op_table`: which MIL op types the ANE takes, with public sources.
* :mod:`~parakeet_nb.ane.planner`: a *predicted* partition of a program across ANE/GPU/CPU.
* :mod:`~parakeet_nb.ane.compute_units`: which compute units each exported component gets.

Reads programs through :mod:`parakeet_nb.mlprogram`; knows nothing of models or audio.
"""
