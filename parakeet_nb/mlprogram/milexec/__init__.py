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

Checked against coremltools' own op tests
-----------------------------------------
coremltools 9.0 ships its MIL op test suite (``converters/mil/mil/ops/tests/iOS14 ...
iOS18``); ``tests/coremltools_suite/plugin.py`` runs it with this executor standing in for
Core ML's ``predict`` (every ML Program backend: fp16 and fp32 precision, iOS15-iOS18), and
``bench/optests.py`` prints the table per file and per op type. Measured on Linux (2 shared
cores) on 40 of its 41 files (all but ``iOS18/test_compression.py``): 15,639 cases, 4,459
predicted by milexec and passed, 7,522 unsupported (mostly ``gru``, ``rnn``, ``quantize``, the
``lstm`` forms with peephole or clip, ``local_response_norm`` and ``reshape_like``), 2,527
skipped and 56 xfail by the suite itself, 679 never predicting. Of the 307 failures of that
run, 286 are resolved: reverse ``lstm`` output order (fixed), fp16-typed cases whose expected
output no runtime can give and out-of-bound scatter indices (listed below), stateful models
(unsupported). 21 remain open: ``l2_norm``/``instance_norm`` with float16 values in fp32
programs (iOS14 and iOS17 normalization files) and two iOS17 ``batch_norm`` packages the
loader refuses. The suite's programs hold 153 op types; the executor implements 121 of them
(127 in all). ``make test``
runs a committed subset of 98 passed cases containing 99 implemented op types
(``tests/coremltools_suite/subset.txt``).

Where the suite and this executor knowingly part (listed in the plugin, reported apart):

* refused, rightly: the iOS15 fp32 conversion of ``batch_norm`` with fp16 ``mean``/``variance``
  and an fp32 ``x`` (its definition requires one dtype); coremltools' own milproto loader
  cannot read that package back, so :func:`parakeet_nb.mlprogram.load.load_program` refuses it.
* the suite's expectation: fp16-typed programs (float16 inputs or weights in an fp32-precision
  conversion) whose expected output is computed from the unrounded float32 values, in numpy
  float16 arithmetic, or left unrounded, compared at a tolerance below one float16 step
  (``conv``, ``conv_transpose``, ``instance_norm``, ``l2_norm``, ``lstm``); the executor gives
  the correctly rounded result (``tests/test_milexec_ops.py``).
* refused, rightly: iOS17 scatter ops with negative or out-of-bound indices (undefined).

Ops added while checking against the suite (each cites the definition it follows):
``conv_transpose``, ``local_response_norm``, ``scatter``, ``scatter_along_axis``,
``scatter_nd``, ``depth_to_space``, ``space_to_depth``, ``pixel_shuffle``,
``pixel_unshuffle``, ``space_to_batch``, ``batch_to_space``, ``reverse_sequence``.
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
