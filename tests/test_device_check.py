"""``parakeet-nb device-check``: the comparison, report and figure (any OS), the command's
refusal where Core ML is absent, the workflows, and the Core ML layer itself (``mac``).

The compute plans here are built from coremltools 9.0's own classes
(``coremltools/models/compute_plan.py``: ``MLModelStructure*``, ``MLComputePlanDeviceUsage``,
``MLComputePlanCost``; ``compute_device.py``: the device classes, made without their macOS
proxy), held by :class:`FakeComputePlan`, which has exactly ``MLComputePlan``'s attribute
and method names (checked by ``test_fake_plan_mirrors_coremltools``).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
import yaml

from parakeet_nb import _quiet

_quiet.import_heavy()

from coremltools.converters.mil import Builder as mb  # noqa: E402
from coremltools.converters.mil.mil import types  # noqa: E402
from coremltools.models import compute_device as cd  # noqa: E402
from coremltools.models import compute_plan as cp  # noqa: E402

from parakeet_nb.ane import planner  # noqa: E402
from parakeet_nb.device import check  # noqa: E402
from parakeet_nb.device.compare import join  # noqa: E402
from parakeet_nb.device.computeplan import ActualOp, listed_devices, read_compute_plan  # noqa: E402
from parakeet_nb.device.figure import COLORS, NONE, placement_figure, save_png  # noqa: E402
from parakeet_nb.device.report import (  # noqa: E402
    SCHEMA, DeviceReport, Latency, NotMeasured, OutputError, PackageResult, SettingResult,
)

ROOT = Path(__file__).resolve().parents[1]
AVAILABLE, WHY_NOT = check.availability()
mac = pytest.mark.skipif(not AVAILABLE, reason=f"needs macOS 14.4+ with Core ML: {WHY_NOT}")

_DEVICE_CLASSES = {"ANE": cd.MLNeuralEngineComputeDevice, "GPU": cd.MLGPUComputeDevice, "CPU": cd.MLCPUComputeDevice}


def device(name: str):
    """A coremltools compute device of that kind (its macOS proxy left out: none is called)."""
    return object.__new__(_DEVICE_CLASSES[name])


def operation(op_type: str, outputs: list[str], blocks: list | None = None) -> cp.MLModelStructureProgramOperation:
    return cp.MLModelStructureProgramOperation(
        inputs={}, operator_name=op_type,
        outputs=[cp.MLModelStructureProgramNamedValueType(name=n, type=cp.MLModelStructureProgramValueType())
                 for n in outputs],
        blocks=blocks or [], __proxy__=None,
    )


class FakeComputePlan:
    """An ``MLComputePlan`` of given operations: ``usage[id(op)] = (preferred, supported, cost)``
    (``None`` for an op the plan reports nothing for)."""

    def __init__(self, operations: list, usage: dict[int, tuple[str, tuple[str, ...], float | None] | None]):
        block = cp.MLModelStructureProgramBlock(inputs=[], operations=operations, output_names=[])
        program = cp.MLModelStructureProgram(functions={"main": cp.MLModelStructureProgramFunction(inputs=[], block=block)})
        self._structure = cp.MLModelStructure(neuralnetwork=None, program=program, pipeline=None)
        self._usage = usage

    @property
    def model_structure(self) -> cp.MLModelStructure:
        return self._structure

    def get_compute_device_usage_for_mlprogram_operation(self, operation):
        entry = self._usage.get(id(operation))
        if entry is None:
            return None
        preferred, supported, _ = entry
        return cp.MLComputePlanDeviceUsage(preferred_compute_device=device(preferred),
                                           supported_compute_devices=[device(d) for d in supported])

    def get_estimated_cost_for_mlprogram_operation(self, operation):
        entry = self._usage.get(id(operation))
        return None if entry is None or entry[2] is None else cp.MLComputePlanCost(weight=entry[2])


def test_fake_plan_mirrors_coremltools():
    names = {"model_structure", "get_compute_device_usage_for_mlprogram_operation",
             "get_estimated_cost_for_mlprogram_operation", "load_from_path"}
    assert names <= set(dir(cp.MLComputePlan))
    assert {n for n in names if n != "load_from_path"} <= set(dir(FakeComputePlan))
    assert [f for f in cp.MLComputePlanDeviceUsage.__dataclass_fields__] == [
        "preferred_compute_device", "supported_compute_devices"]
    assert list(cp.MLComputePlanCost.__dataclass_fields__) == ["weight"]


def test_read_compute_plan_walks_nested_blocks_and_names_devices():
    inner = operation("add", ["inner_out"])
    loop = operation("while_loop", ["loop_out"], [cp.MLModelStructureProgramBlock(inputs=[], operations=[inner], output_names=[])])
    const = operation("const", ["w"])
    conv = operation("conv", ["conv_out", "unused"])
    plan = FakeComputePlan([const, conv, loop], {
        id(conv): ("ANE", ("ANE", "GPU", "CPU"), 0.75),
        id(loop): ("CPU", ("CPU",), 0.25),
        id(inner): ("GPU", ("GPU", "CPU"), None),
    })
    ops = read_compute_plan(plan)
    assert [(o.position, o.op_type, o.key, o.preferred, o.nested) for o in ops] == [
        (0, "const", "w", None, False), (1, "conv", "conv_out", "ANE", False),
        (2, "while_loop", "loop_out", "CPU", False), (3, "add", "inner_out", "GPU", True),
    ]
    assert ops[1].supported == ("ANE", "GPU", "CPU") and ops[1].cost == 0.75 and ops[1].outputs == ("conv_out", "unused")
    assert ops[0].supported == () and ops[0].cost is None and ops[3].cost is None
    assert [ActualOp.from_dict(json.loads(json.dumps(o.as_dict()))) for o in ops] == ops


def test_read_compute_plan_refuses_what_is_not_a_program():
    plan = FakeComputePlan([], {})
    plan._structure = cp.MLModelStructure(neuralnetwork=None, program=None, pipeline=None)
    with pytest.raises(ValueError, match="not an ML Program"):
        read_compute_plan(plan)
    with pytest.raises(ValueError, match="no function 'other'"):
        read_compute_plan(FakeComputePlan([], {}), function="other")


def test_listed_devices_reads_the_neural_engine_core_count():
    class Engine(cd.MLNeuralEngineComputeDevice):
        total_core_count = 16

    engine = object.__new__(Engine)
    assert listed_devices([device("CPU"), device("GPU"), engine]) == [
        {"device": "CPU", "cores": None}, {"device": "GPU", "cores": None}, {"device": "ANE", "cores": 16}]


@pytest.fixture(scope="module")
def small_package(save_mlprogram) -> Path:
    """A float32 program with a few ops of different kinds: ``x [1, 8, 32]`` -> ``y [1, 8]``."""

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 8, 32))])
    def prog(x):
        a = mb.relu(x=x, name="a")
        b = mb.sin(x=a, name="b")
        c = mb.mul(x=b, y=a, name="c")
        return mb.reduce_sum(x=c, axes=[-1], name="y")

    return save_mlprogram(prog, "device_small")


def _actual_from(plan, devices: dict[str, str], drop: set[str] = frozenset(), extra: list[tuple[str, str]] = ()):
    """A compute plan mirroring ``plan``'s program: op ``key`` on ``devices[key]`` (default CPU),
    ops in ``drop`` left out, ``extra`` ``(key, device)`` ops added; costs 1 per placed op."""
    first = {}
    for name, tensor in plan.tensors.items():
        if tensor.producer is not None:
            first.setdefault(tensor.producer, name)
    ops, usage = [], {}
    for p in plan.ops:
        key = first[p.index]
        if key in drop:
            continue
        op = operation(p.op_type, [key])
        ops.append(op)
        if p.device is not None:
            d = devices.get(key, "CPU")
            usage[id(op)] = (d, (d, "CPU"), 1.0)
    for key, d in extra:
        op = operation("cast", [key])
        ops.append(op)
        usage[id(op)] = (d, (d,), 1.0)
    return read_compute_plan(FakeComputePlan(ops, usage))


def test_join_agrees_when_core_ml_does_what_the_planner_says(small_package):
    predicted = planner.plan(small_package, "CPU_ONLY", "conservative", typed_execution=True)
    placed = [p for p in predicted.ops if p.device is not None]
    assert len(placed) >= 3
    result = join(predicted, _actual_from(predicted, {}))
    assert result.compared == len(placed)
    assert result.agreement == 1.0 and result.cost_agreement == 1.0 and result.disagreements == []
    assert result.status_counts()["unplaced"] == len(predicted.ops) - len(placed)  # the constants
    assert result.device_counts("actual")["CPU"] == len(placed)


def test_join_lists_every_disagreement_and_every_op_on_one_side_only(small_package):
    predicted = planner.plan(small_package, "CPU_ONLY", "conservative", typed_execution=True)
    keys = [o.key for o in join(predicted, _actual_from(predicted, {})).with_status("agree")]
    moved, dropped = keys[0], keys[1]
    actual = _actual_from(predicted, {moved: "ANE"}, drop={dropped}, extra=[("added_by_core_ml", "GPU")])
    result = join(predicted, actual)
    assert [(o.key, o.predicted, o.actual) for o in result.disagreements] == [(moved, "CPU", "ANE")]
    assert [o.key for o in result.with_status("predicted_only")] == [dropped]
    assert [(o.key, o.actual, o.predicted_index) for o in result.with_status("actual_only")] == [("added_by_core_ml", "GPU", None)]
    compared = len(keys) - 1
    assert result.compared == compared
    assert result.agreement == pytest.approx((compared - 1) / compared)
    assert result.cost_agreement == pytest.approx((compared - 1) / compared)
    document = json.loads(json.dumps(result.as_dict()))
    assert document["disagreements"] == [
        {"op": moved, "op_type": document["disagreements"][0]["op_type"], "predicted": "CPU", "actual": "ANE",
         "supported": ["ANE", "CPU"], "cost": 1.0}]
    assert document["status_counts"]["actual_only"] == 1 and document["matched_by"].startswith("the name")


def test_join_with_nothing_in_common_compares_nothing(small_package):
    predicted = planner.plan(small_package, "ALL", "conservative", typed_execution=True)
    result = join(predicted, _actual_from(predicted, {}, drop=set(predicted.tensors)))
    assert result.compared == 0 and result.agreement is None and result.cost_agreement is None
    assert result.status_counts()["predicted_only"] == sum(p.device is not None for p in predicted.ops)


def test_latency_and_output_error_summaries():
    lat = Latency.from_seconds([0.004, 0.001, 0.002, 0.003, 0.005], warmup=1)
    assert (lat.runs, lat.median_ms, lat.min_ms, lat.max_ms) == (5, pytest.approx(3.0), pytest.approx(1.0), pytest.approx(5.0))
    assert lat.p10_ms == pytest.approx(1.4) and lat.p90_ms == pytest.approx(4.6)
    with pytest.raises(ValueError):
        Latency.from_seconds([], warmup=1)
    err = OutputError.between("mel", np.array([1.0, 2.5], np.float32), np.array([1.0, 2.0]))
    assert (err.max_abs, err.mean_abs, err.ref_max) == (0.5, 0.25, 2.0)
    assert OutputError.between("mel", np.array([np.nan, 1.0]), np.array([0.0, 1.0])).max_abs == math.inf
    with pytest.raises(ValueError, match="shape"):
        OutputError.between("mel", np.zeros((1, 2)), np.zeros((2, 1)))


def _report(small_package) -> DeviceReport:
    predicted = planner.plan(small_package, "ALL", "conservative", typed_execution=True)
    keys = [o.key for o in join(predicted, _actual_from(predicted, {})).with_status("agree")]
    placement = join(predicted, _actual_from(predicted, {keys[0]: "ANE", keys[1]: "GPU"}))
    refused = NotMeasured("Core ML refused the load: RuntimeError: Error compiling model")
    ok = SettingResult(
        "ALL", 0.25, placement, Latency.from_seconds([0.002, 0.003], 1),
        {"pytorch": [OutputError("y", math.nan, math.nan, 1.0)], "executor": [OutputError("y", 1e-6, 1e-7, 1.0)]},
    )
    bad = SettingResult("CPU_AND_NE", refused, NotMeasured("no compute plan: ValueError: x"), NotMeasured("no model loaded"),
                        {"pytorch": refused, "executor": refused})
    return DeviceReport(
        machine={"system": "Darwin", "macos": "15.1", "machine": "arm64", "python": "3.11", "coremltools": "9.0"},
        devices=[{"device": "CPU", "cores": None}, {"device": "ANE", "cores": 16}], runs=2, warmup=1,
        packages=[PackageResult("small", "small.mlpackage", "data/speech_15s.wav", 1.5, [ok, bad])],
    )


def test_report_json_never_holds_an_unmeasured_or_non_finite_number(small_package):
    document = json.loads(_report(small_package).to_json())
    assert document["schema"] == SCHEMA == "parakeet-nb/device-check/1"
    ok, bad = document["packages"][0]["settings"]
    assert ok["load_seconds"] == 0.25 and ok["placement"]["compared"] > 0
    assert ok["errors"]["pytorch"][0]["max_abs"] == "nan" and ok["errors"]["executor"][0]["max_abs"] == 1e-6
    assert bad["load_seconds"] == {"measured": False, "reason": "Core ML refused the load: RuntimeError: Error compiling model"}
    assert bad["latency"]["measured"] is False and bad["errors"]["pytorch"]["measured"] is False
    assert "predicted" in document["notice"] and document["devices"][1] == {"device": "ANE", "cores": 16}


def test_report_table_shows_numbers_reasons_and_disagreements(small_package):
    report = _report(small_package)
    text = report.table()
    placement = report.packages[0].settings[0].placement
    ok_line = next(line for line in text.splitlines() if line.startswith("small") and " ALL " in line)
    assert f"{placement.agreement:.0%}" in ok_line and "1.50s" in ok_line and "nan" in ok_line
    assert "small CPU_AND_NE: load: Core ML refused the load: RuntimeError: Error compiling model" in text
    for o in placement.disagreements:
        assert f"small ALL: {o.key} ({o.op_type}) predicted {o.predicted}, Core ML {o.actual}" in text
    assert "devices Core ML lists as available: CPU, ANE (16 cores)" in text


def test_placement_figure_draws_predicted_above_measured(small_package, tmp_path):
    report = _report(small_package)
    panels = report.placement_panels()
    assert [title for title, _ in panels] == ["small ALL"]
    fig = placement_figure(panels)
    image = np.asarray(fig.axes[0].images[0].get_array())
    ops = [o for o in panels[0][1].ops if o.predicted or o.actual]
    assert image.shape == (2, len(ops), 3)
    from matplotlib.colors import to_rgb

    for x, o in enumerate(ops):
        for row, d in enumerate((o.predicted, o.actual)):
            assert tuple(image[row, x]) == pytest.approx(to_rgb(COLORS[d] if d else NONE))
    png = save_png(fig, tmp_path / "placement.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size < 60_000
    assert not list(tmp_path.glob(".*tmp*"))
    with pytest.raises(ValueError, match="nothing to draw"):
        placement_figure([])


def test_read_folder_takes_either_layout(tmp_path):
    export = tmp_path / "export"
    for name in ("parakeet_encoder.mlpackage", "parakeet_decoder.mlpackage"):
        (export / name).mkdir(parents=True)
    (export / "metadata.json").write_text(json.dumps({"model": {"source": "preset:tiny"}, "components": {
        "encoder": {"file": "parakeet_encoder.mlpackage"}, "decoder": {"file": "parakeet_decoder.mlpackage"},
        "joint": {"file": "parakeet_joint.mlpackage"}}}))
    entries, metadata = check.read_folder(export)
    assert [(e.name, e.path.name, e.component) for e in entries] == [
        ("encoder", "parakeet_encoder.mlpackage", "encoder"), ("decoder", "parakeet_decoder.mlpackage", "decoder")]
    assert metadata["model"]["source"] == "preset:tiny"

    fluid = tmp_path / "fluid"
    for name in ("Preprocessor.mlpackage", "Preprocessor.mlmodelc", "Encoder.mlmodelc", "notes.txt"):
        (fluid / name).mkdir(parents=True)
    entries, metadata = check.read_folder(fluid)
    assert metadata is None
    assert [(e.name, e.path.name, e.component) for e in entries] == [
        ("Encoder", "Encoder.mlmodelc", None), ("Preprocessor", "Preprocessor.mlpackage", None)]
    with pytest.raises(ValueError, match="no .mlpackage or .mlmodelc"):
        check.read_folder(tmp_path / "fluid" / "notes.txt")  # an empty folder
    with pytest.raises(ValueError, match="not a folder"):
        check.read_folder(tmp_path / "missing")


def test_reference_model_says_why_there_is_none(tmp_path):
    assert check.reference_model(None, tmp_path).reason.startswith("no metadata.json")
    missing = check.reference_model({"model": {"source": "checkpoint:mine.nemo", "checkpoint_sha256": "0"}}, tmp_path)
    assert isinstance(missing, NotMeasured) and "mine.nemo" in missing.reason and "--nemo" in missing.reason
    assert "unknown model source" in check.reference_model({"model": {"source": "elsewhere"}}, tmp_path).reason


@pytest.mark.parametrize("system, macos, fragment", [
    ("Linux", "", "this is Linux"), ("Windows", "", "this is Windows"),
    ("Darwin", "14.3", "this is macOS 14.3"), ("Darwin", "13.6.1", "this is macOS 13.6.1"),
])
def test_availability_needs_macos_14_4(system, macos, fragment):
    ok, why = check.availability(system, macos)
    assert not ok and why == fragment
    assert check.unavailable_message(why).startswith(f"needs macOS 14.4+ with Core ML ({fragment}); on a Mac it measures")


def test_a_child_that_dies_is_recorded_not_fatal(tmp_path):
    request = {"action": "no_such_action", "result": str(tmp_path / "result.json")}
    result, failure = check._run_child(request, tmp_path, timeout=120)
    assert result == {}
    assert failure.startswith("the child process crashed (exit code 1)") and "KeyError" in failure


def _wave_program():
    from parakeet_nb.frontend.recipe import WINDOW_SAMPLES

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, WINDOW_SAMPLES)), mb.TensorSpec(shape=(1,), dtype=types.int32)])
    def prog(audio_signal, audio_length):
        return mb.mul(x=audio_signal, y=0.5, name="half"), mb.identity(x=audio_length, name="length")

    return prog


@pytest.mark.skipif(os.name != "posix", reason="needs POSIX signals and /bin/sh")
def test_a_child_killed_by_a_signal_is_recorded_with_its_last_stage(tmp_path, monkeypatch):
    fake_python = tmp_path / "python"
    fake_python.write_text("#!/bin/sh\necho 'stage load'\necho 'stage predict'\nkill -SEGV $$\n")
    fake_python.chmod(0o755)
    monkeypatch.setattr(check.sys, "executable", str(fake_python))
    result, failure = check._run_child({"action": "measure", "result": str(tmp_path / "r.json")}, tmp_path, timeout=60)
    assert result == {} and failure == "the child process crashed during predict (killed by SIGSEGV)"


def test_inputs_feed_the_clip_and_run_the_executor_as_typed(save_mlprogram, small_package):
    from parakeet_nb.frontend.audio import data_clip
    from parakeet_nb.mlprogram.load import load_program

    clip = data_clip(check.CLIP).samples
    no_model = NotMeasured("no metadata.json names the model the packages came from")
    path = save_mlprogram(_wave_program(), "wave")
    inputs = check._inputs(check.PackageEntry("Wave", path, None), load_program(path), no_model, clip)
    assert inputs.description == "data/speech_15s.wav" and inputs.pytorch == no_model
    assert inputs.feed["audio_signal"].shape == (1, 240000) and int(inputs.feed["audio_length"][0]) == min(len(clip), 240000)
    np.testing.assert_array_equal(inputs.executor["half"], inputs.feed["audio_signal"] * np.float32(0.5))

    other = check._inputs(check.PackageEntry("Small", small_package, None), load_program(small_package), no_model, clip)
    assert other.description == "none" and isinstance(other.feed, NotMeasured) and isinstance(other.executor, NotMeasured)
    assert "audio_signal" in other.feed.reason and no_model.reason in other.feed.reason


def test_inputs_of_a_contract_component_come_with_its_pytorch_reference(tiny_modules, tmp_path):
    from parakeet_nb.coreml.export import export
    from parakeet_nb.frontend.audio import data_clip

    result = export(tiny_modules, tmp_path / "export", only=["joint"], precision="fp32")
    (entry,), metadata = check.read_folder(result.out_dir)
    modules = check.reference_model(metadata, result.out_dir)
    assert modules.source == tiny_modules.source == "preset:tiny"
    from parakeet_nb.mlprogram.load import load_program

    inputs = check._inputs(entry, load_program(entry.path), modules, data_clip(check.CLIP).samples)
    assert inputs.description.startswith("seeded random inputs")
    assert set(inputs.pytorch) == set(inputs.executor) == {"logits"}
    error = OutputError.between("logits", inputs.executor["logits"], inputs.pytorch["logits"])
    assert 0 < error.ref_max and error.max_abs < 1e-4  # the fp32 program as typed is the module, to float32 rounding


def test_a_crash_at_predict_keeps_what_was_measured_before_it(small_package, tmp_path, monkeypatch):
    from parakeet_nb.mlprogram.load import load_program

    loaded = load_program(small_package)
    actual = _actual_from(planner.plan(loaded, "ALL", "conservative", typed_execution=True), {})
    crash = "the child process crashed during predict (killed by SIGSEGV)"
    children = {"plan": ({"plan": [o.as_dict() for o in actual]}, None), "measure": ({"load_seconds": 0.125}, crash)}
    monkeypatch.setattr(check, "_run_child", lambda request, work, timeout: children[request["action"]])
    feed = {"x": np.zeros((1, 8, 32), np.float32)}
    inputs = check._Inputs("zeros", feed, NotMeasured("no model"), {"y": np.zeros((1, 8), np.float32)})
    result = check._setting("ALL", tmp_path / "small.mlmodelc", None, loaded, inputs, 5, tmp_path, 60)
    assert result.load_seconds == 0.125 and result.placement.agreement == 1.0
    assert result.latency == NotMeasured(crash)
    assert result.errors == {"pytorch": NotMeasured(crash), "executor": NotMeasured(crash)}

    refused = check._setting("ALL", None, "RuntimeError: bad model", loaded, inputs, 5, tmp_path, 60)
    assert refused.load_seconds == refused.latency == NotMeasured("not compiled (RuntimeError: bad model)")


def test_check_records_refusals_and_crashes_per_setting(small_package, tmp_path, monkeypatch):
    """The command's bookkeeping, with the Core ML children replaced by canned answers."""
    import shutil

    folder = tmp_path / "fluid"
    folder.mkdir()
    shutil.copytree(small_package, folder / "Small.mlpackage")
    crash = "the child process crashed during plan (killed by SIGSEGV)"
    children = {
        "compile": ({"devices": [{"device": "CPU", "cores": None}], "compile_seconds": 0.5}, None),
        "plan": ({}, crash),
        "measure": ({"load_error": "RuntimeError: Error compiling model"}, None),
    }
    monkeypatch.setattr(check, "availability", lambda: (True, "canned"))
    monkeypatch.setattr(check, "_run_child", lambda request, work, timeout: children[request["action"]])
    report = check.check(folder, ["CPU_ONLY", "CPU_AND_NE"], runs=4)
    (package,) = report.packages
    assert (package.name, package.compile_seconds, report.devices) == ("Small", 0.5, [{"device": "CPU", "cores": None}])
    assert [s.compute_units for s in package.settings] == ["CPU_ONLY", "CPU_AND_NE"]
    for s in package.settings:
        assert s.placement == NotMeasured(crash)
        assert s.load_seconds == NotMeasured("Core ML refused the load: RuntimeError: Error compiling model")
        assert isinstance(s.latency, NotMeasured) and "not a waveform" in s.latency.reason
    json.loads(report.to_json())
    written = check.write(report, tmp_path / "out")
    assert [p.name for p in written] == ["device_check.json", "device_check.txt"]  # nothing compared: no PNG
    assert "Small CPU_AND_NE: placement: " + crash in (tmp_path / "out" / "device_check.txt").read_text()
    with pytest.raises(ValueError, match="unknown compute units GPU_ONLY"):
        check.check(folder, ["GPU_ONLY"])


@pytest.mark.skipif(AVAILABLE, reason="this machine has Core ML: device-check runs instead of refusing")
def test_cli_refuses_without_core_ml(capsys, tmp_path):
    from parakeet_nb import cli

    assert cli.main(["device-check", str(tmp_path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith("parakeet-nb device-check: error: needs macOS 14.4+ with Core ML (")
    assert "compute plan" in err and "latency" in err


def _on(workflow: dict) -> dict:
    return workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as true


KNOWN_ACTIONS = {"actions/checkout@v4", "actions/setup-python@v5", "actions/upload-artifact@v4"}


@pytest.mark.parametrize("file", ["ci.yml", "mac-device-check.yml"])
def test_workflows_are_valid_and_use_known_actions(file):
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / file).read_text())
    assert workflow["name"] and _on(workflow)
    for job in workflow["jobs"].values():
        assert job["runs-on"] and job["steps"]
        for step in job["steps"]:
            assert ("uses" in step) != ("run" in step), step
            if "uses" in step:
                assert step["uses"] in KNOWN_ACTIONS


def test_ci_workflow_runs_ci_run_on_ubuntu():
    job = next(iter(yaml.safe_load((ROOT / ".github/workflows/ci.yml").read_text())["jobs"].values()))
    assert job["runs-on"].startswith("ubuntu") and job["env"]["CI"] == "true"
    assert any(step.get("run") == "bash .ci/run" for step in job["steps"])
    assert (ROOT / ".ci" / "run").is_file()


def test_mac_workflow_tests_exports_checks_and_uploads():
    job = next(iter(yaml.safe_load((ROOT / ".github/workflows/mac-device-check.yml").read_text())["jobs"].values()))
    assert job["runs-on"] in {"macos-14", "macos-15", "macos-latest"}  # Apple-silicon images
    runs = [step["run"] for step in job["steps"] if "run" in step]
    assert any("-c constraints.txt" in r and "-e '.[dev]'" in r for r in runs)
    assert any("pytest" in r and "-m mac" in r for r in runs)
    export = next(r for r in runs if "parakeet-nb export" in r)
    assert "--nemo data/digits_tdt.nemo" in export and "--precision" not in export  # the default profile
    out = export.split("--out ")[1].split()[0]
    device = next(r for r in runs if "parakeet-nb device-check" in r)
    assert device.split("device-check ")[1].split()[0] == out
    report_dir = device.split("--out ")[1].split()[0]
    upload = next(step for step in job["steps"] if step.get("uses", "").startswith("actions/upload-artifact"))
    assert upload["if"] == "always()" and upload["with"]["path"].rstrip("/") == report_dir
    setup = next(step for step in job["steps"] if step.get("uses", "").startswith("actions/setup-python"))
    assert setup["with"]["python-version"] == "3.11"
    from parakeet_nb import cli

    parser = cli.build_parser()
    parser.parse_args(export.split()[1:])  # the flags exist
    parser.parse_args(device.split()[1:])


# ---- the Core ML layer: macOS 14.4+ only ------------------------------------------------------------


@pytest.mark.mac
@mac
def test_worker_compiles_plans_loads_and_predicts(small_package, tmp_path):
    compiled = tmp_path / "small.mlmodelc"
    result, failure = check._run_child({"action": "compile", "package": str(small_package), "destination": str(compiled),
                                        "result": str(tmp_path / "compile.json")}, tmp_path, timeout=600)
    assert failure is None and result["compile_seconds"] > 0 and compiled.is_dir()
    assert any(d["device"] == "CPU" for d in result["devices"])
    x = np.random.default_rng(0).standard_normal((1, 8, 32)).astype(np.float32)
    np.savez(tmp_path / "in.npz", x=x)
    result, failure = check._run_child({
        "action": "measure", "compiled": str(compiled), "compute_units": "CPU_ONLY", "inputs": str(tmp_path / "in.npz"),
        "runs": 3, "warmup": 1, "result": str(tmp_path / "m.json"), "outputs": str(tmp_path / "out.npz")}, tmp_path, 600)
    assert failure is None, failure
    assert result["load_seconds"] > 0 and len(result["predict_seconds"]) == 3
    planned, failure = check._run_child({"action": "plan", "compiled": str(compiled), "compute_units": "CPU_ONLY",
                                         "result": str(tmp_path / "p.json")}, tmp_path, 600)
    assert failure is None, failure
    ops = [ActualOp.from_dict(o) for o in planned["plan"]]
    assert {o.preferred for o in ops if o.preferred is not None} == {"CPU"}
    with np.load(tmp_path / "out.npz") as out:
        y = out["y"]
    a = np.maximum(x.astype(np.float64), 0)
    np.testing.assert_allclose(y, (np.sin(a) * a).sum(-1), atol=1e-4)


@pytest.mark.mac
@mac
def test_check_measures_a_folder_without_metadata(small_package, tmp_path):
    import shutil

    folder = tmp_path / "fluid"
    folder.mkdir()
    shutil.copytree(small_package, folder / "Small.mlpackage")
    report = check.check(folder, ["CPU_ONLY", "ALL"], runs=2)
    (package,) = report.packages
    assert isinstance(package.compile_seconds, float)
    cpu, every = package.settings
    assert isinstance(cpu.load_seconds, float) and isinstance(every.load_seconds, float)
    assert cpu.placement.agreement == 1.0  # CPU_ONLY: both sides put every op on the CPU
    assert every.placement.compared == cpu.placement.compared
    assert "not a waveform" in cpu.latency.reason  # nothing to feed, and the report says so
    assert not isinstance(report.devices, NotMeasured)
    written = check.write(report, tmp_path / "out")
    assert [p.name for p in written] == ["device_check.json", "device_check.txt", "device_check.png"]


@pytest.mark.mac
@mac
def test_check_predicts_a_waveform_package_against_the_executor(save_mlprogram, tmp_path):
    folder = tmp_path / "wave"
    folder.mkdir()
    import shutil

    shutil.copytree(save_mlprogram(_wave_program(), "wave"), folder / "Wave.mlpackage")
    report = check.check(folder, ["CPU_ONLY"], runs=3)
    setting = report.packages[0].settings[0]
    assert setting.latency.runs == 3 and setting.latency.median_ms > 0
    assert max(e.max_abs for e in setting.errors["executor"]) < 1e-6
    assert isinstance(setting.errors["pytorch"], NotMeasured)

