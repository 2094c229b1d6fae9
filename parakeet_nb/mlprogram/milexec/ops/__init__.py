"""Op implementations of the MIL reference executor, one module per op family.

Importing this package registers every op in :data:`parakeet_nb.mlprogram.milexec.core.REGISTRY`.
``const`` and the ``constexpr_*`` weight-decompression ops are not here: the executor
materializes them once when it prepares a program (:mod:`parakeet_nb.mlprogram.milexec.constexpr`).
"""

from parakeet_nb.mlprogram.milexec.ops import (  # noqa: F401  (imported for registration)
    conv,
    elementwise,
    indexing,
    linear,
    lists,
    norm,
    quantization,
    random,
    rearrange,
    recurrent,
    reduce,
    resize,
    scatter,
    shape,
    state,
)
