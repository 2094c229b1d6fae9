"""A reference executor for Core ML ML Programs in numpy.

``run_program(path_or_loaded, {"name": array, ...})`` runs a saved ``.mlpackage``'s
``main`` function op by op on any OS and returns its outputs by name, in float32
(``numerics="fp32"``) or with every tensor rounded to float16 (``numerics="fp16"``,
optionally ``flush_subnormals=True``); ``accumulate="fp64"`` takes summation order out of
the comparison. :mod:`parakeet_nb.mlprogram.milexec.executor` explains what the float16 emulation
models and what it does not (it is not the Neural Engine's exact arithmetic). Ops it does
not implement raise :class:`UnsupportedOpError`; it never guesses.
:func:`~parakeet_nb.mlprogram.milexec.tdt_backend.tdt_backend` plugs the decoder and joint-decision
packages into :func:`parakeet_nb.model.tdt.greedy_decode`.
"""

from parakeet_nb.mlprogram.milexec.core import REGISTRY, round_to_fp16
from parakeet_nb.mlprogram.milexec.executor import (
    AmbiguityWarning,
    ExecutorInternalError,
    InputValidationError,
    MilExecError,
    MilExecutor,
    UndefinedBehaviorError,
    UnsupportedOpError,
    run_program,
    supported_op_types,
    unsupported_ops,
)
from parakeet_nb.mlprogram.milexec.tdt_backend import tdt_backend

__all__ = [
    "REGISTRY",
    "AmbiguityWarning",
    "ExecutorInternalError",
    "InputValidationError",
    "MilExecError",
    "MilExecutor",
    "UndefinedBehaviorError",
    "UnsupportedOpError",
    "round_to_fp16",
    "run_program",
    "supported_op_types",
    "tdt_backend",
    "unsupported_ops",
]
