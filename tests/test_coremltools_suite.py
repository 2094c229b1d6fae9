"""coremltools 9.0's own MIL op tests, predicted by ``milexec`` (``tests/coremltools_suite``).

``test_subset_passes`` runs the committed subset ``tests/coremltools_suite/subset.txt``
(passed cases that together contain every op type the executor implements, in fp32 and
fp16 precision) in a pytest subprocess with the plugin, and requires every case to pass
through the executor. ``test_plugin_bites`` shows a wrong op makes the suite fail: it
replaces the registry entry of ``relu`` with one returning ``relu(x) + 1`` and runs the
subset's ``relu`` cases in-process. The full suite and its table: ``bench/optests.py``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from parakeet_nb.paths import ROOT

sys.path.insert(0, str(ROOT / "bench"))
from optests import read_subset  # noqa: E402

from tests.coremltools_suite import plugin  # noqa: E402


def _run(ids: list[str], report: Path) -> tuple[int, list[dict]]:
    targets = [str(plugin.suite_dir() / i) for i in ids]
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.coremltools_suite.plugin",
         "--milexec-report", str(report), "-q", "-p", "no:randomly", *targets],
        cwd=ROOT, capture_output=True, text=True,
    )
    rows = json.loads(report.read_text()) if report.exists() else []
    return proc.returncode, rows


def test_subset_covers_every_implemented_op_and_passes(tmp_path):
    from parakeet_nb.mlprogram.milexec import supported_op_types

    ids, not_in_report = read_subset()
    code, rows = _run(ids, tmp_path / "report.json")
    bad = [f"{r['id']}: {r['outcome']} {r['reason']}" for r in rows if r["outcome"] != "passed"]
    assert not bad, "\n".join(bad)
    assert code == 0 and len(rows) == len(ids)
    covered = {op for r in rows for op in r["ops"]}
    missing = set(supported_op_types()) - covered - set(not_in_report)
    assert not missing, f"implemented op types no subset case runs (regenerate the subset): {sorted(missing)}"


def test_plugin_bites(tmp_path, monkeypatch):
    """A wrong ``relu`` makes the suite's relu cases fail; an untouched op still passes."""
    from parakeet_nb.mlprogram.milexec import REGISTRY
    from parakeet_nb.mlprogram.milexec.core import OpImpl

    ids, _ = read_subset()
    relu = [i for i in ids if "::TestReLU::" in i]
    control = [i for i in ids if "::TestSigmoid::" in i][:1]
    assert relu and control
    good = REGISTRY["relu"]
    monkeypatch.setitem(REGISTRY, "relu", OpImpl("relu", lambda ctx: good.fn(ctx) + np.float32(1), good.params, good.family))
    report = tmp_path / "report.json"
    targets = [str(plugin.suite_dir() / i) for i in relu + control]
    code = pytest.main(["-p", "tests.coremltools_suite.plugin", "--milexec-report", str(report), "-q", "-p", "no:randomly", *targets])
    rows = {r["id"]: r["outcome"] for r in json.loads(report.read_text())}
    assert code == pytest.ExitCode.TESTS_FAILED
    assert [rows[i] for i in relu] == ["failed"] * len(relu)
    assert [rows[i] for i in control] == ["passed"]


class _Collected:
    """A pytest plugin that keeps the node ids a session collects."""

    def __init__(self) -> None:
        self.ids: list[str] = []

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.ids = [plugin.short_id(item.nodeid) for item in session.items]


def _collected(files: list[str]) -> list[str]:
    seen = _Collected()
    targets = [str(plugin.suite_dir() / f) for f in files]
    pytest.main(["-p", "tests.coremltools_suite.plugin", "--collect-only", "-q", "-p", "no:randomly", *targets],
                plugins=[seen])
    return seen.ids


def test_a_session_of_several_files_keeps_every_parameter_set():
    """The iOS17 files subclass the iOS14 test classes and the suite parametrizes with
    ``itertools.product`` iterators: without the plugin's ``pytest_pycollect_makeitem`` the
    second of the two to be collected gets an empty parameter set (ids ending ``[NOTSET]``,
    skipped; 58 iOS14 normalization cases lost after the iOS17 file)."""
    ids = _collected(["iOS17/test_normalization.py", "iOS14/test_normalization.py"])
    assert not [i for i in ids if i.endswith("[NOTSET]")]
    layer_norm = "iOS14/test_normalization.py::TestNormalizationLayerNorm::test_builder_to_backend_smoke["
    assert sum(i.startswith(layer_norm) for i in ids) == 2  # the fp16 and fp32 backends
