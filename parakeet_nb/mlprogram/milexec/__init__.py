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
cores) on all 41 files: 19,834 cases, 14,420 predicted by milexec and passed, 0 failed, 486
unsupported (480 ``local_response_norm`` of rank 5 or with an even window and 4
``crop_resize`` boxes with ``UNALIGN_CORNERS``, which the definitions leave undefined, and 2
NeuralNetwork conversions), 1,207 the suite's expectation and 26 refused (below), 2,911
skipped and 54 xfail by the suite itself, 730 never predicting. The suite's programs hold 158
op types (nested blocks included); the executor implements all of them (164 in all).
``make test`` runs a committed subset of 152 passed cases containing the 158
(``tests/coremltools_suite/subset.txt``).

Where the suite and this executor knowingly part (listed in the plugin, reported apart):

* refused, rightly: ``batch_norm`` conversions whose mean/variance differ in dtype from ``x``
  (iOS15) or from ``epsilon`` (iOS17), which their definitions forbid, and symbolic-rank
  ``fill``: coremltools' own milproto loader cannot read those packages back, so
  :func:`parakeet_nb.mlprogram.load.load_program` refuses them; iOS17 scatter ops with
  negative or out-of-bound indices (undefined); a float16 ``range_1d`` whose end rounds to inf.
* the suite's expectation: fp16-typed programs (float16 inputs, weights or coordinates in an
  fp32-precision conversion) whose expected output is computed from unrounded values, in numpy
  float16 arithmetic, or left in float32/float64 for a float16 output, compared at a tolerance
  below one float16 step (``conv``, ``conv_transpose``, ``instance_norm``, ``l2_norm``,
  ``lstm``, ``gru``, ``rnn``, ``resample``, the iOS18 sparse/LUT decompressions plus 1); the
  executor gives the exact result of the stored values, rounded to the output type
  (``tests/test_milexec_ops.py``, ``tests/test_milexec_constexpr.py``). Also a ``crop_resize``
  value of 7.899 where the test's linear image gives exactly 7.9, and the iOS15 fp32
  ``resample`` test's count of the cast ops only an fp16 conversion inserts.

Ops added while checking against the suite (each cites the definition it follows):
``conv_transpose``, ``local_response_norm``, ``scatter``, ``scatter_along_axis``,
``scatter_nd``, ``depth_to_space``, ``space_to_depth``, ``pixel_shuffle``,
``pixel_unshuffle``, ``space_to_batch``, ``batch_to_space``, ``reverse_sequence``; then, for
recurrent speech models and compressed weights: ``gru``, ``rnn``, ``lstm`` peephole and clip,
the ``constexpr_*`` weight decompressions (:mod:`~parakeet_nb.mlprogram.milexec.constexpr`),
``quantize``, ``dequantize``, ``slice_update`` and ``reshape_like``; then stateful programs
(``read_state``, ``coreml_update_state``: :mod:`~parakeet_nb.mlprogram.milexec.state`),
control flow (``cond``, ``while_loop``) with tensor lists
(:mod:`~parakeet_nb.mlprogram.milexec.ops.lists`), the random ops (numpy's stream, not Core
ML's: :mod:`~parakeet_nb.mlprogram.milexec.ops.random`), ``non_zero``, and image resizing
(``upsample_*``, ``resize*``, ``crop``, ``crop_resize``, ``resample``, ``affine``).
"""

from parakeet_nb.mlprogram.milexec.core import REGISTRY, round_to_fp16
from parakeet_nb.mlprogram.milexec.executor import (
    AmbiguityWarning,
    ExecutorInternalError,
    InputValidationError,
    MilExecError,
    MilExecutor,
    MilState,
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
    "MilState",
    "UndefinedBehaviorError",
    "UnsupportedOpError",
    "round_to_fp16",
    "run_program",
    "supported_op_types",
    "tdt_backend",
    "unsupported_ops",
]
