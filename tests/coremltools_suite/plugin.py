"""A pytest plugin: coremltools' own MIL op tests, with ``milexec`` standing in for ``predict``.

coremltools 9.0 ships its op test suite in the wheel
(``coremltools/converters/mil/mil/ops/tests/iOS14 ... iOS18``). Every case builds a MIL
program, converts it with ``ct.convert`` and, on macOS only, compares
``MLModel.predict`` with outputs its authors computed in numpy
(``coremltools/converters/mil/testing_utils.py: compare_backend``). With this plugin the
cases predict on any OS: while a suite test runs,

* ``MLModel.predict`` of an ML Program saves the converted package, reads it back with the
  project's loader (:func:`parakeet_nb.mlprogram.load.load_program`) and runs ``main``
  with :class:`parakeet_nb.mlprogram.milexec.MilExecutor`: ``numerics="fp16"`` for the
  suite's fp16 backends (the conversion typed the program fp16; the executor also rounds
  whatever stayed fp32), ``numerics="fp32"`` for fp32 ones. Inputs are converted to the
  declared dtypes as Core ML's ``predict`` does;
* ``MLModel.make_state`` of a stateful (iOS18) program returns the executor's
  zero-initialized :class:`~parakeet_nb.mlprogram.milexec.MilState`, which ``predict``
  then reads and updates, prediction after prediction;
* ``testing_utils._IS_MACOS`` is ``True`` and its view of the macOS version says "new
  enough", so ``compare_backend``/``compare_shapes`` compare exactly as on a Mac (fp16
  backends with the suite's own tolerance ``atol=max(100*atol, 0.5)``,
  ``rtol=max(100*rtol, 0.05)``). Nothing else sees a fake macOS: tests the suite marks
  ``skipif(_macos_version() < ...)`` are still skipped at collection.

Installed files are never edited; everything is patched per test with ``monkeypatch``.
The suite's backends come from environment variables read when
``coremltools.converters.mil.testing_reqs`` is imported; the plugin sets
``PYMIL_TEST_TARGETS=mlprogram`` and ``INCLUDE_MIL_FP32_UNIT_TESTS=1`` so every ML Program
backend (fp16 and fp32 precision, opsets iOS15-iOS18) is collected.

Outcomes: an op the executor refuses (:class:`~parakeet_nb.mlprogram.milexec.UnsupportedOpError`)
skips the case with the reason ``unsupported by milexec: <op type> (<detail>)``. A case
whose test never called ``predict`` (type inference or value inference only) passes
without exercising the executor and is reported as ``not-predicted``. A case that tests coremltools
itself (:data:`NOT_ABOUT_MILEXEC`) is skipped with the reason ``not about milexec: ...``.

Use::

    python -m pytest -p tests.coremltools_suite.plugin --milexec-report out.json \\
        $(python -m tests.coremltools_suite.plugin --files)      # every op test file

``--milexec-report`` writes one record per case: node id, outcome (``passed``,
``failed``, ``unsupported``, ``skipped``, ``xfail`` (the suite's own ``pytest.xfail``),
``refused`` (listed in :data:`KNOWN_REFUSALS`: the executor's refusal is right),
``suite-expectation`` (:data:`SUITE_EXPECTATIONS`), ``not-predicted``), the reason, and the op
types of the program(s) the case ran.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

os.environ["PYMIL_TEST_TARGETS"] = "mlprogram"
os.environ["INCLUDE_MIL_FP32_UNIT_TESTS"] = "1"

#: The op test suite shipped in the coremltools wheel, one folder per opset.
OPSETS = ("iOS14", "iOS15", "iOS16", "iOS17", "iOS18")
SKIP_PREFIX = "unsupported by milexec: "


def suite_dir() -> Path:
    import coremltools

    return Path(coremltools.__file__).parent / "converters" / "mil" / "mil" / "ops" / "tests"


def suite_files() -> list[Path]:
    """Every op test file of iOS14-iOS18 (``test_*.py``), sorted."""
    return sorted(p for opset in OPSETS for p in (suite_dir() / opset).glob("test_*.py"))


def short_id(nodeid: str) -> str:
    """``iOS14/test_conv.py::TestConv::test_x[...]``: a node id relative to the suite folder."""
    marker = "/mil/ops/tests/"
    return nodeid.split(marker, 1)[1] if marker in nodeid else nodeid


@dataclass
class CaseRecord:
    """What one suite case did with the executor."""

    ops: set[str] = field(default_factory=set)
    predictions: int = 0
    unsupported: str | None = None


#: Cases that test coremltools itself, never the executor: (pattern, reason); skipped with
#: the reason ``not about milexec: <reason>``.
NOT_ABOUT_MILEXEC: tuple[tuple[str, str], ...] = (
    (
        r"iOS14/test_tensor_transformation\.py::TestSliceByIndex::test_efficient_type_inference",
        "a wall-clock bound (10 ms) on coremltools' builder inferring two slice_by_index types; "
        "it never predicts, and a loaded machine misses the bound",
    ),
)
OUT_OF_SCOPE_PREFIX = "not about milexec: "


#: Cases whose refusal is right: (pattern matched against the node id relative to the
#: suite folder, exception the case must raise, reason). Marked ``xfail(strict=True)`` so
#: they are reported as ``refused`` and a case that starts passing is a failure.
KNOWN_REFUSALS: tuple[tuple[str, str, str], ...] = (
    (
        r"iOS14/test_normalization\.py::TestNormalizationBatchNorm::test_builder_to_backend_smoke"
        r"\[.*precision='fp32', opset_version=<AvailableTarget\.iOS15: 6>\)-x_param_dtype=\(<class 'numpy\.float16'>",
        "parakeet_nb.mlprogram.load.ModelReadError",
        "the converted iOS15 program feeds fp32 x and fp16 mean/variance to batch_norm, which its "
        "definition forbids (defs/iOS15/normalization.py: same dtype T); coremltools' own milproto "
        "loader refuses to read the saved package back",
    ),
    (
        r"iOS17/test_normalization\.py::TestNormalizationBatchNorm::test_builder_to_backend_smoke"
        r"\[.*precision='fp32'.*-x_param_dtype=\(<class 'numpy\.float(16|32)'>, <class 'numpy\.float16'>\)\]",
        "parakeet_nb.mlprogram.load.ModelReadError",
        "the converted iOS17 program gives batch_norm fp16 mean/variance and the default fp32 "
        "epsilon, which its definition forbids (defs/iOS17/normalization.py: mean, variance and "
        "epsilon share dtype U); coremltools' own milproto loader refuses to read the saved package back",
    ),
    (
        r"iOS14/test_tensor_operation\.py::TestFill::test_builder_to_backend_symbolic",
        "parakeet_nb.mlprogram.load.ModelReadError",
        "the program has a variadic (symbolic-rank) shape; coremltools' own milproto loader refuses "
        "to read it back ('Variadic dimensions not yet implemented'), only Core ML's runtime accepts it",
    ),
    (
        r"iOS14/test_tensor_operation\.py::TestRange1d::test_large_array\[.*precision='fp16'",
        "parakeet_nb.mlprogram.milexec.core.UndefinedBehaviorError",
        "the fp16 conversion rounds end=2000000.0 to float16, which is inf; the expected 2,000,000 "
        "values exist only if the runtime keeps fp16-typed values in float32, which the executor "
        "does not assume (its model of typed execution rounds them)",
    ),
)
KNOWN_REFUSALS += tuple(
    (
        pattern,
        "parakeet_nb.mlprogram.milexec.core.UndefinedBehaviorError",
        "iOS17 scatter ops define no result for a negative or out-of-bound index: the case expects "
        "some other output (validate_indices=False) or Core ML's runtime error (validate_indices=True); "
        "the executor refuses the index as undefined behaviour",
    )
    for pattern in (
        r"iOS17/test_scatter_gather\.py::(TestScatter|TestScatterAlongAxis|TestScatterNd)::test_ios17_invalid_indices\[.*dynamic=True\]",
        r"iOS17/test_scatter_gather\.py::TestScatter::test_ios17_invalid_indices\[.*validate_indices=False-dynamic=False\]",
    )
)
REFUSED_PREFIX = "milexec refuses: "


#: Cases whose expected output no runtime that honours the program's types can produce:
#: (pattern, reason); marked ``xfail(strict=False)`` (reported ``suite-expectation``; an
#: xpass, where random shapes and values happen to agree, is reported as passed). The iOS17 conv stress tests
#: (``iOS14/test_conv.py``, ``test_builder_to_backend_stress``) compute the expected output
#: from the PyTorch module's float32 input and weights, then build the program with them
#: rounded to float16 where the case says so (``input.astype(x_dtype)``,
#: ``weight.astype(weight_bias_dtype)``) and compare at the fp32 tolerance (atol 1e-4). The
#: program holds the rounded values, so its exact result is a float16 step (about 1e-3
#: relative) from the expectation; milexec matches a float64
#: evaluation of the program with its stored weights to float32 rounding
#: (``tests/test_milexec_ops.py``, fp16 weights in an fp32 program). coremltools' own CI
#: does not run these: fp32 ML Program backends are collected only with
#: ``INCLUDE_MIL_FP32_UNIT_TESTS=1`` (``converters/mil/testing_reqs.py``). The same holds for
#: the iOS14 conv, conv_transpose, instance_norm and l2_norm stress tests at opset iOS15 with
#: float16 inputs; ``tests/test_milexec_ops.py::test_fp16_typed_ops_of_the_suites_ios15_cases_are_correctly_rounded``
#: shows the executor's output is the exact result of the stored float16 values, rounded to float16.
#: The iOS14/iOS17 ``instance_norm`` smoke tests and the iOS17 ``l2_norm`` stress tests with
#: float16 values in fp32 backends have the same kind of expectation; ``tests/test_milexec_ops.py::
#: test_instance_norm_of_the_suites_ios17_fp16_cases_is_the_programs_exact_result`` runs their data,
#: and ``test_fp16_typed_gru_and_rnn_follow_their_stored_weights`` the iOS17/iOS18 ``gru``/``rnn`` ones;
#: ``tests/test_milexec_constexpr.py::test_fp16_weight_added_to_fp32_ones_is_exact_not_float16``
#: shows the iOS18 sparse/LUT stress tests' expectation.
SUITE_EXPECTATIONS: tuple[tuple[str, str], ...] = (
    (
        r"iOS17/test_conv\.py::(TestConv|TestConvTranspose)::test_builder_to_backend_stress"
        r"\[.*precision='fp32'.*x_weight_dtype=\((<class 'numpy\.float16'>, <class 'numpy\.float(16|32)'>"
        r"|<class 'numpy\.float32'>, <class 'numpy\.float16'>)\)\]",
        "the expected output is computed from the float32 input and weights, the program gets them "
        "rounded to float16, and the comparison uses the fp32 tolerance (no runtime can meet it)",
    ),
    *(
        (
            rf"iOS14/test_(conv|normalization)\.py::{cls}::test_builder_to_backend_stress"
            r"\[.*precision='fp32', opset_version=<AvailableTarget\.iOS15: 6>\).*numpy\.float16",
            f"the op runs fp16-typed (iOS15 takes no fp16 inputs, so the program casts them); {why}, "
            "and the tolerance is below one float16 step of the output (a correctly rounded float16 "
            "result can fail it)",
        )
        for cls, why in (
            ("TestConv", "the expected output is computed from the unrounded float32 input and weights"),
            ("TestConvTranspose", "the expected output is computed from the unrounded float32 input and weights"),
            ("TestNormalizationInstanceNorm", "the expected output is float32, not rounded to float16"),
            ("TestNormalizationL2Norm", "the expected output is computed in numpy float16 arithmetic "
                                        "(each square, sum and division rounded)"),
        )
    ),
    (
        r"iOS1[47]/test_normalization\.py::TestNormalizationInstanceNorm::test_builder_to_backend_smoke"
        r"(_with_gamma_and_beta)?\[.*precision='fp32'.*-x_param_dtype=\(<class 'numpy\.float16'>",
        "the output is float16-typed and the expected output is float32 at the fp32 tolerance "
        "(atol 1e-4, rtol 1e-5): even the expectation rounded to float16 fails it",
    ),
    (
        r"iOS17/test_normalization\.py::TestNormalizationInstanceNorm::test_builder_to_backend_smoke_with_gamma_and_beta"
        r"\[.*precision='fp32'.*-x_param_dtype=\(<class 'numpy\.float32'>, <class 'numpy\.float16'>\)\]",
        "the expected output is computed with gamma 3.2, 1.3 and beta -0.8, 3.4, 1.2; the program "
        "holds them rounded to float16 (3.19921875, ...), so its exact result is more than 1e-3 "
        "from the expectation, against atol 1e-4",
    ),
    (
        r"iOS17/test_normalization\.py::TestNormalizationL2Norm::test_builder_to_backend_stress"
        r"\[.*precision='fp32'.*-x_param_dtype=\(<class 'numpy\.float16'>",
        "the output is float16-typed; the expected output is computed in numpy float16 arithmetic "
        "(each square, sum and division rounded), and the tolerance (atol 1e-4) is below one "
        "float16 step of the output (a correctly rounded float16 result can fail it)",
    ),
    (
        r"iOS1[78]/test_recurrent\.py::(TestGRU|TestRNN)::test_builder_to_backend_smoke"
        r"\[.*precision='fp32'.*dtype=<class 'numpy\.float16'>\]",
        "the output is float16-typed and the expected output is float64 (gru) or float32 (rnn), "
        "computed from the unrounded weights, at the fp32 tolerance (atol 1e-4, rtol 1e-5): below "
        "half a float16 step of outputs in [0.25, 1), so even a correctly rounded output can fail it",
    ),
    (
        r"iOS18/test_compression\.py::(TestConstexprSparseToDense::test_builder_to_backend_stress"
        r"|TestConstexprLutToSparse::test_builder_to_backend_stress|TestJointCompressionOps::test_sparse_lut)"
        r"\[.*precision='fp32'.*(data|lut)_dtype=fp16\]",
        "the expected output is the float16 weight plus 1 computed in numpy, where float16 + 1 stays "
        "float16 (rounded to a step of 9.8e-4 on [1, 2)); the program casts the weight to fp32 and adds "
        "a float32 input of ones exactly, and the tolerance is atol 1e-4",
    ),
    (
        r"iOS17/test_recurrent\.py::TestLSTM::test_builder_to_backend_smoke_(uni|bidir)lstm"
        r"\[.*precision='fp32'.*dtype=<class 'numpy\.float16'>\]",
        "the expected output is PyTorch's float32 LSTM over the unrounded float32 input and state, "
        "the program gets them rounded to float16 and runs fp16-typed, and the comparison uses the "
        "fp32 tolerance (atol 1e-4, below one float16 step of the output)",
    ),
    (
        r"iOS16/test_image_resizing\.py::TestCropResize::test_builder_to_backend_ios16\[.*precision='fp32'"
        r"|iOS17/test_image_resizing\.py::TestCropResize::test_builder_to_backend_ios17\[.*precision='fp32'.*-N=3\]",
        "one expected value is 7.899 where the test's image is linear (x[h, w] = 4h + w + 1), so the "
        "bilinear sample at (1.5, 0.9) is exactly 7.9; 1e-3 off at the fp32 tolerance (atol 1e-4). "
        "7.899 is near the float16 result 7.8984",
    ),
    (
        r"iOS1[67]/test_image_resizing\.py::TestResample::test_builder_to_backend_smoke(_iOS16)?"
        r"\[.*precision='fp32'.*coordinates_dtype=<class 'numpy\.float16'>\]",
        "the coordinates are float16-typed (-3.7 and 1.2 are stored as -3.69921875 and 1.2001953); the "
        "expected output is computed from the unrounded values (36.3 and 34.1, where the stored "
        "coordinates give 36.3086 and 34.0957), compared at atol 1e-4",
    ),
    (
        r"iOS15/test_image_resizing\.py::TestResample::test_builder_to_backend_smoke\[.*precision='fp32'",
        "after its first prediction (which passes) the test counts the two cast ops an fp16 conversion "
        "puts around resample's coordinates; an fp32 conversion puts none (assert 0 == 2)",
    ),
)
EXPECTATION_PREFIX = "the suite's expectation is off: "

_current: CaseRecord | None = None
_precision: str = "fp32"


class _MacosVersionView:
    """``coremltools.models.utils`` as the suite's ``testing_utils`` sees it, except that
    ``_macos_version()`` reports a version new enough for every opset (15.0)."""

    def __init__(self, real: Any) -> None:
        self._real = real

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    @staticmethod
    def _macos_version() -> tuple[int, int]:
        return (15, 0)


def _op_type_of(message: str) -> str:
    """The op type an :class:`UnsupportedOpError` message names (``op 'conv' named ...``)."""
    m = re.search(r"op type '([^']+)'", message) or re.match(r"op '([^']+)'", message)
    return m.group(1) if m else "?"


def _inputs_for(executor: Any, data: dict[str, Any]) -> dict[str, np.ndarray]:
    """``data`` converted to the declared input dtypes, as Core ML's predict converts a
    float32 multiarray for an int32 input (the suite passes every input as float32)."""
    from parakeet_nb.mlprogram.milexec.core import STORAGE_DTYPES

    out = {}
    for name, (shape, dtype) in executor.input_specs().items():
        value = np.asarray(data[name])
        if value.shape != tuple(shape) and value.size == np.prod([d or 0 for d in shape]):
            value = value.reshape(shape)
        if dtype in ("fp16", "fp32"):
            value = value.astype(np.float32)
        else:
            value = value.astype(STORAGE_DTYPES[dtype])
        out[name] = value
    return out


@contextlib.contextmanager
def _executor_for(model: Any) -> Iterator[Any]:
    """The converted ``model`` saved, read back with the project's loader and prepared by
    :class:`~parakeet_nb.mlprogram.milexec.MilExecutor` (fp16 numerics for an fp16 backend);
    an op the executor refuses, while preparing or running, skips the case."""
    from parakeet_nb.ane.audit import walk_ops
    from parakeet_nb.mlprogram.load import load_program
    from parakeet_nb.mlprogram.milexec import MilExecutor, UnsupportedOpError

    record = _current if _current is not None else CaseRecord()
    if model.get_spec().WhichOneof("Type") != "mlProgram":
        pytest.skip(f"{SKIP_PREFIX}neuralnetwork model (milexec runs ML Programs only)")
    with tempfile.TemporaryDirectory(prefix="milexec_suite_") as tmp:
        path = Path(tmp) / "model.mlpackage"
        model.save(str(path))
        loaded = load_program(path)
        record.ops.update(op.op_type for op in walk_ops(loaded.main) if op.op_type != "const")
        numerics = "fp16" if _precision == "fp16" else "fp32"
        try:
            yield MilExecutor(loaded, numerics=numerics)
        except UnsupportedOpError as exc:
            op = _op_type_of(str(exc))
            record.unsupported = op
            detail = str(exc).split(": ", 1)[-1]
            pytest.skip(f"{SKIP_PREFIX}{op} ({detail})")


def milexec_predict(self: Any, data: dict[str, Any], state: Any = None) -> dict[str, np.ndarray]:
    """Stand-in for ``MLModel.predict``: run the saved ML Program with the executor; ``state``
    is the :class:`~parakeet_nb.mlprogram.milexec.MilState` of :func:`milexec_make_state`."""
    with _executor_for(self) as executor:
        result = executor.run(_inputs_for(executor, data), state=state)
    if _current is not None:
        _current.predictions += 1
    return result


def milexec_make_state(self: Any) -> Any:
    """Stand-in for ``MLModel.make_state``: zero-initialized buffers, as Core ML allocates them."""
    with _executor_for(self) as executor:
        return executor.make_state()


def _backend_precision(item: pytest.Item) -> str:
    callspec = getattr(item, "callspec", None)
    backend = callspec.params.get("backend") if callspec is not None else None
    if backend is None:
        return "fp32"
    precision = getattr(backend, "precision", None)
    if precision is None and isinstance(backend, tuple):
        precision = backend[1]
    return precision or "fp32"


def _in_suite(item: pytest.Item) -> bool:
    return "/converters/mil/mil/ops/tests/iOS1" in str(item.path).replace(os.sep, "/")


@pytest.fixture(autouse=True)
def _milexec_predicts(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch):
    """Route the suite's predictions through milexec for the duration of one suite test."""
    global _current, _precision
    if not _in_suite(request.node):
        yield
        return
    import coremltools as ct
    from coremltools.converters.mil import testing_utils

    monkeypatch.setattr(testing_utils, "_IS_MACOS", True)
    monkeypatch.setattr(testing_utils, "coremltoolsutils", _MacosVersionView(testing_utils.coremltoolsutils))
    monkeypatch.setattr(ct.models.MLModel, "predict", milexec_predict)
    monkeypatch.setattr(ct.models.MLModel, "make_state", milexec_make_state)
    _current, _precision = CaseRecord(), _backend_precision(request.node)
    request.node.stash[_RECORD] = _current
    try:
        yield
    finally:
        _current = None


_RECORD = pytest.StashKey[CaseRecord]()


class _Report:
    """Collects one row per suite case and writes them as JSON at the end of the session."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows: dict[str, dict[str, Any]] = {}

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo):
        outcome = yield
        rep = outcome.get_result()
        if not _in_suite(item):
            return
        record = item.stash.get(_RECORD, CaseRecord())
        row = self.rows.setdefault(
            item.nodeid,
            {"id": short_id(item.nodeid), "outcome": "passed", "reason": "", "ops": []},
        )
        row["ops"] = sorted(record.ops)
        if rep.failed:
            row["outcome"] = "failed"
            row["reason"] = _first_line(rep.longrepr)
        elif hasattr(rep, "wasxfail") and not rep.passed:  # an xpass is reported as passed
            reason = rep.wasxfail or "expected to fail by the suite"
            row["outcome"] = (
                "refused" if reason.startswith(REFUSED_PREFIX)
                else "suite-expectation" if reason.startswith(EXPECTATION_PREFIX)
                else "xfail"
            )
            row["reason"] = reason
        elif rep.skipped and row["outcome"] != "failed":
            reason = rep.longrepr[2] if isinstance(rep.longrepr, tuple) else str(rep.longrepr)
            reason = reason.removeprefix("Skipped: ")
            row["outcome"] = "unsupported" if reason.startswith(SKIP_PREFIX) else "skipped"
            row["reason"] = reason
        elif rep.when == "call" and rep.passed and record.predictions == 0:
            row["outcome"] = "not-predicted"
        if rep.when == "teardown" and len(self.rows) % 200 == 0:  # a partial report survives a kill
            self.write()

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        self.write()

    def write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(list(self.rows.values()), indent=0) + "\n")


def _first_line(longrepr: Any) -> str:
    crash = getattr(longrepr, "reprcrash", None)
    text = crash.message if crash is not None else str(longrepr)
    return text.strip().splitlines()[0][:300] if text.strip() else "failed"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    from parakeet_nb.mlprogram.load import ModelReadError

    from parakeet_nb.mlprogram.milexec import UndefinedBehaviorError

    errors = {"parakeet_nb.mlprogram.load.ModelReadError": ModelReadError,
              "parakeet_nb.mlprogram.milexec.core.UndefinedBehaviorError": UndefinedBehaviorError}
    for item in items:
        for pattern, reason in NOT_ABOUT_MILEXEC:
            if re.search(pattern, short_id(item.nodeid)):
                item.add_marker(pytest.mark.skip(reason=OUT_OF_SCOPE_PREFIX + reason))
        for pattern, error, reason in KNOWN_REFUSALS:
            if re.search(pattern, short_id(item.nodeid)):
                item.add_marker(pytest.mark.xfail(strict=True, raises=errors[error], reason=REFUSED_PREFIX + reason))
        for pattern, reason in SUITE_EXPECTATIONS:
            if re.search(pattern, short_id(item.nodeid)):
                item.add_marker(pytest.mark.xfail(strict=False, raises=AssertionError, reason=EXPECTATION_PREFIX + reason))


@pytest.hookimpl(tryfirst=True)
def pytest_pycollect_makeitem(collector: pytest.Collector, name: str, obj: Any) -> None:
    """Keep the suite's parameter lists for every class that inherits a test.

    The suite parametrizes with ``itertools.product(...)``, an iterator, and the iOS15-iOS18
    files subclass the iOS14 test classes. pytest consumes the iterator when it first
    collects the method, so in a session that collects an iOS17 subclass before its iOS14
    base (or the reverse) the second one gets "got empty parameter set" and is skipped.
    Each such iterator becomes a list the first time its method is seen; the values and
    ids are the same.
    """
    if not _in_suite(collector) or not callable(obj):
        return
    for mark in getattr(obj, "pytestmark", ()):
        if mark.name == "parametrize" and len(mark.args) >= 2 and isinstance(mark.args[1], Iterator):
            object.__setattr__(mark, "args", (mark.args[0], list(mark.args[1]), *mark.args[2:]))


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("milexec-suite", "coremltools' op tests predicted by milexec")
    group.addoption("--milexec-report", metavar="PATH", help="write one JSON record per suite case to PATH")


def pytest_configure(config: pytest.Config) -> None:
    reqs = sys.modules.get("coremltools.converters.mil.testing_reqs")
    if reqs is not None and not any(b.precision == "fp32" for b in reqs.backends_internal):
        raise pytest.UsageError(
            "coremltools' testing_reqs was imported before the milexec suite plugin set "
            "INCLUDE_MIL_FP32_UNIT_TESTS=1; load the plugin with -p tests.coremltools_suite.plugin"
        )
    # The project's loader imports NeMo (parakeet_nb._quiet.import_heavy); ct.convert runs
    # gc.collect() on every call, which then walks NeMo's and torch's objects (~2 s a case
    # on a busy 2-core machine). Freezing what exists now keeps them out of every collection.
    import parakeet_nb.mlprogram.load  # noqa: F401

    gc.collect()
    gc.freeze()
    path = config.getoption("--milexec-report")
    if path:
        config.pluginmanager.register(_Report(Path(path)), "milexec-suite-report")


if __name__ == "__main__":
    if sys.argv[1:] == ["--files"]:
        print("\n".join(str(p) for p in suite_files()))
    else:
        sys.exit("usage: python -m tests.coremltools_suite.plugin --files")
