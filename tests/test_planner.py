"""Tests of the partition planner (parakeet_nb.ane.planner) and its op table (parakeet_nb.ane.op_table).

Small programs are built with coremltools' MIL builder (boundary shapes 16384/16385, the
integer rule, typed execution); the tiny Parakeet packages come from conftest's
session-wide ``tiny_export`` (every component exported once for the whole test run).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from parakeet_nb import _quiet

_quiet.import_heavy()

import coremltools as ct  # noqa: E402
from coremltools.converters.mil import Builder as mb  # noqa: E402
from coremltools.converters.mil.mil import types  # noqa: E402

from parakeet_nb.ane import op_table  # noqa: E402
from parakeet_nb.ane import plan as plan_mod  # noqa: E402
from parakeet_nb.ane import planner  # noqa: E402
from parakeet_nb.coreml.convert import COMPONENTS  # noqa: E402
from parakeet_nb.ane.layout import to_layout  # noqa: E402
from parakeet_nb.ane.planner import COMPUTE_UNITS, POLICIES, tensor_table  # noqa: E402
from parakeet_nb.mlprogram.load import ModelReadError, load_program  # noqa: E402


def plan(*args, **kwargs):
    """The planner's untyped reading unless a test says otherwise.

    The placement rules (policies, limits, integer and GPU rules) are checked on float32
    test programs as if they were float16-typed (``typed_execution=False``, the CLI's
    ``--assume-fp16``); what typed execution changes is tested on its own below.
    """
    kwargs.setdefault("typed_execution", False)
    return planner.plan(*args, **kwargs)

W240000_TEXT = (
    "Invalid layer: Tensor dimensions N1D1C1H1W240000 are not within supported range, "
    "N[1-65536] D[1-16384] C[1-65536] H[1-16384] W[1-16384]."
)
W16385_TEXT = (
    "Invalid layer: Tensor dimensions N1D1C1H1W16385 are not within supported range, "
    "N[1-65536] D[1-16384] C[1-65536] H[1-16384] W[1-16384]."
)


# ---------------------------------------------------------------- fixtures

def _save(prog, path: Path, precision=ct.precision.FLOAT32) -> Path:
    ct.convert(
        prog, convert_to="mlprogram", compute_precision=precision,
        minimum_deployment_target=ct.target.iOS17, skip_model_load=True,
    ).save(str(path))
    return path


def _flat_roundtrip_program(channels: int, length: int):
    """conv -> reshape to [1, channels*length] -> sin -> reshape back -> conv -> relu."""
    weight = np.random.RandomState(0).randn(channels, channels, 1).astype(np.float32)

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, channels, length))], opset_version=ct.target.iOS17)
    def prog(x):
        y = mb.conv(x=x, weight=weight, name="conv_a")
        y = mb.reshape(x=y, shape=[1, channels * length], name="flat")
        y = mb.sin(x=y, name="wave")
        y = mb.reshape(x=y, shape=[1, channels, length], name="unflat")
        y = mb.conv(x=y, weight=weight, name="conv_b")
        return mb.relu(x=y, name="out")

    return prog


def _integer_program():
    """A float conv path scaled by ``float(n + 1)`` computed from an int32 input."""
    weight = np.random.RandomState(1).randn(8, 8, 1).astype(np.float32)

    @mb.program(
        input_specs=[mb.TensorSpec(shape=(1, 8, 16)), mb.TensorSpec(shape=(1,), dtype=types.int32)],
        opset_version=ct.target.iOS17,
    )
    def prog(x, n):
        k = mb.add(x=n, y=np.int32(1), name="n_plus_1")
        kf = mb.cast(x=k, dtype="fp32", name="n_float")
        y = mb.conv(x=x, weight=weight, name="conv")
        return mb.mul(x=y, y=kf, name="scaled"), k

    return prog


def _waveform_program(width: int):
    """A waveform-like program: elementwise ops on ``[1, width]``, then a strided conv."""
    weight = np.random.RandomState(2).randn(16, 1, 400).astype(np.float32)

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, width))], opset_version=ct.target.iOS17)
    def prog(x):
        y = mb.mul(x=x, y=np.float32(0.5), name="gain")
        y = mb.reshape(x=y, shape=[1, 1, width], name="to_channels")
        y = mb.conv(x=y, weight=weight, strides=[160], name="frames")
        return mb.relu(x=y, name="out")

    return prog


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("planner_builder")
    return {
        "w16384": _save(_flat_roundtrip_program(4, 4096), root / "w16384.mlpackage"),
        "w16385": _save(_flat_roundtrip_program(5, 3277), root / "w16385.mlpackage"),
        "w16385_fp16": _save(_flat_roundtrip_program(5, 3277), root / "w16385_fp16.mlpackage", ct.precision.FLOAT16),
        "integer": _save(_integer_program(), root / "integer.mlpackage"),
        "wave16384": _save(_waveform_program(16384), root / "wave16384.mlpackage"),
        "wave16385": _save(_waveform_program(16385), root / "wave16385.mlpackage"),
    }


@pytest.fixture(scope="module")
def tiny(tiny_export):
    """Loaded tiny programs, keyed by component name (from conftest's shared ``tiny_export``)."""
    names = ("mel_encoder", "encoder", "preprocessor", "decoder", "joint")
    return {n: load_program(tiny_export / COMPONENTS[n].file) for n in names}


def _devices(p: planner.Plan) -> dict[str, str | None]:
    return {o.name: o.device for o in p.ops if o.device is not None}


def _segment_graph_is_acyclic(p: planner.Plan) -> bool:
    edges: dict[int, set[int]] = {s.id: set() for s in p.segments}
    for b in p.borders:
        if b.from_segment is not None:
            edges[b.from_segment].update(b.to_segments)
    state: dict[int, int] = {}

    def visit(n: int) -> bool:
        state[n] = 1
        for m in edges[n]:
            if state.get(m) == 1 or (m not in state and not visit(m)):
                return False
        state[n] = 2
        return True

    return all(visit(n) for n in edges if n not in state)


# ---------------------------------------------------------------- boundary shapes (MIL builder)

def test_greedy_accepts_16384(built):
    p = plan(built["w16384"], "CPU_AND_NE", "greedy")
    assert p.valid and p.validation_error is None and p.exit_code == 0
    assert set(_devices(p).values()) == {"ANE"}
    assert len(p.segments) == 1


def test_greedy_rejects_16385_with_device_text(built):
    p = plan(built["w16385"], "CPU_AND_NE", "greedy")
    assert not p.valid and p.exit_code == 1
    assert p.validation_error == W16385_TEXT == to_layout((1, 16385)).error_text()
    first = p.rejections[0]
    assert (first.tensor, first.where, first.op_type) == ("flat", "internal", "reshape")
    assert {r.tensor for r in p.rejections} == {"flat", "wave"}


def test_conservative_leaves_over_limit_ops_off_the_ane_and_splits(built):
    p = plan(built["w16385"], "CPU_AND_NE", "conservative")
    assert p.valid
    assert _devices(p) == {
        "conv_a": "ANE", "flat": "CPU", "wave": "CPU", "unflat": "CPU", "conv_b": "ANE", "out": "ANE",
    }
    reasons = {o.name: o.reason for o in p.ops if o.device}
    assert reasons["flat"] == "over_limit" and reasons["conv_b"] == "heavy" and reasons["out"] == "follows"
    assert [s.device for s in p.segments] == ["ANE", "CPU", "ANE"]
    # the conv output leaves the first ANE segment; the reshaped-back tensor enters the second
    into_cpu = p.border(p.segments[0].outputs[0])
    assert into_cpu.to_devices == ("CPU",) and into_cpu.shape == (1, 5, 3277) and not into_cpu.over_limit
    assert p.segments[2].inputs == ("unflat",)
    assert any("left off the ANE" in n for n in p.notes)


def test_conservative_at_16384_keeps_one_ane_segment(built):
    p = plan(built["w16384"], "CPU_AND_NE", "conservative")
    assert set(_devices(p).values()) == {"ANE"} and len(p.segments) == 1


@pytest.mark.parametrize("width, ok", [(16384, True), (16385, False)])
def test_waveform_boundary_under_both_policies(built, width, ok):
    """Elementwise ops on the waveform before the first conv: greedy takes them, conservative not."""
    path = built[f"wave{width}"]
    greedy = plan(path, "CPU_AND_NE", "greedy")
    assert greedy.valid is ok
    assert _devices(greedy)["gain"] == "ANE"
    if not ok:
        assert greedy.rejections[0].tensor == "x" and greedy.rejections[0].where == "input"
        assert "W16385" in greedy.validation_error
    conservative = plan(path, "CPU_AND_NE", "conservative")
    assert conservative.valid
    assert _devices(conservative)["gain"] == "CPU"  # before the first heavy op
    assert _devices(conservative)["frames"] == ("ANE" if ok else "CPU")


@pytest.mark.parametrize("policy", POLICIES)
def test_cpu_only_puts_everything_on_the_cpu(built, policy):
    p = plan(built["w16385"], "CPU_ONLY", policy)
    assert set(_devices(p).values()) == {"CPU"} and p.valid and len(p.segments) == 1
    assert {o.reason for o in p.ops if o.device} == {"compute_units"}


@pytest.mark.parametrize("policy", POLICIES)
def test_cpu_and_gpu_has_no_ane(built, policy):
    p = plan(built["w16385"], "CPU_AND_GPU", policy)
    assert "ANE" not in _devices(p).values()
    # no per-axis limit on the GPU outside convolutions: the 16385-wide reshape stays there
    assert set(_devices(p).values()) == {"GPU"} and p.valid


def test_all_equals_cpu_and_ne_when_nothing_is_left_for_the_gpu(built):
    for policy in POLICIES:
        a = plan(built["w16385"], "ALL", policy)
        b = plan(built["w16385"], "CPU_AND_NE", policy)
        assert _devices(a) == _devices(b)


def test_gpu_texture_rule_keeps_wide_convs_on_the_cpu(built):
    narrow = plan(built["wave16384"], "CPU_AND_GPU", "conservative")
    wide = plan(built["wave16385"], "CPU_AND_GPU", "conservative")
    assert _devices(narrow)["frames"] == "GPU"
    assert _devices(wide)["frames"] == "CPU"
    assert {o.name: o.reason for o in wide.ops}["frames"] == "gpu_texture_limit"


def test_flexible_input_is_judged_by_its_upper_bound(tmp_path):
    from coremltools.converters.mil.mil import get_new_symbol

    samples = get_new_symbol()

    weight = np.random.RandomState(3).randn(4, 1, 400).astype(np.float32)

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, samples))], opset_version=ct.target.iOS17)
    def prog(x):
        y = mb.expand_dims(x=mb.sin(x=x, name="wave"), axes=[1], name="chan")
        return mb.conv(x=y, weight=weight, strides=[160], name="frames")

    model = ct.convert(
        prog, convert_to="mlprogram", compute_precision=ct.precision.FLOAT32,
        minimum_deployment_target=ct.target.iOS17, skip_model_load=True,
        inputs=[ct.TensorType(name="x", shape=(1, ct.RangeDim(400, 240000)))],
    )
    model.save(str(tmp_path / "flex.mlpackage"))
    greedy = plan(tmp_path / "flex.mlpackage", "CPU_AND_NE", "greedy")
    assert greedy.validation_error == W240000_TEXT
    border = json.loads(greedy.to_json())["borders"][0]
    assert border["tensor"] == "x" and border["shape"][0] == 1 and border["shape"][1].endswith("(<=240000)")
    assert border["ndchw"] == "N1D1C1H1W240000" and border["error_text"] == W240000_TEXT
    # conservative: the sine precedes the conv, and the conv sees the long axis: no ANE at all
    conservative = plan(tmp_path / "flex.mlpackage", "CPU_AND_NE", "conservative")
    assert conservative.valid and conservative.counts()["ANE"] == 0
    assert conservative.border("x").error_text is None  # over the limits, but no ANE segment touches it


# ---------------------------------------------------------------- tensor-type rules

def test_integer_rule_keeps_length_arithmetic_on_the_cpu(built):
    p = plan(built["integer"], "CPU_AND_NE", "greedy")
    by_type = {o.op_type: o for o in p.ops if o.device}
    assert by_type["add"].device == "CPU" and by_type["add"].reason == "integer_only"
    assert by_type["cast"].device == "CPU" and by_type["cast"].reason == "integer_only"
    assert by_type["conv"].device == "ANE" and by_type["mul"].device == "ANE"
    crossing = p.border("n_float")
    assert (crossing.from_device, crossing.to_devices, crossing.dtype) == ("CPU", ("ANE",), "fp32")
    assert p.border("n_plus_1").function_output


def test_typed_execution_keeps_fp32_off_the_ane(built):
    fp32 = plan(built["w16384"], "CPU_AND_NE", "greedy", typed_execution=True)
    assert "ANE" not in _devices(fp32).values()
    assert {o.reason for o in fp32.ops if o.device} == {"fp32_typed"}
    assert fp32.precision == "fp32"
    fp16 = plan(built["w16385_fp16"], "CPU_AND_NE", "greedy", typed_execution=True)
    assert fp16.precision == "fp16"
    devices = {o.op_type: o.device for o in fp16.ops if o.device and o.op_type != "cast"}
    assert set(devices.values()) == {"ANE"}
    assert {o.device for o in fp16.ops if o.op_type == "cast"} == {"CPU"}
    # the fp16 program still has the 16385-wide tensor inside its ANE segment
    assert fp16.validation_error == W16385_TEXT


def test_fp32_note_only_when_it_matters(built):
    assert any("typed-execution" in n for n in plan(built["w16384"], "CPU_AND_NE", "greedy").notes)
    assert not any("typed-execution" in n for n in plan(built["w16385_fp16"], "CPU_AND_NE", "greedy").notes)
    assert not any("typed-execution" in n for n in plan(built["w16384"], "CPU_AND_GPU", "greedy").notes)


# ---------------------------------------------------------------- bad input and settings

def test_unreadable_input_raises_model_read_error(tmp_path):
    with pytest.raises(ModelReadError, match="no such file"):
        plan(tmp_path / "missing.mlpackage")
    (tmp_path / "empty.mlpackage").mkdir()
    with pytest.raises(ModelReadError, match="Manifest.json"):
        plan(tmp_path / "empty.mlpackage")
    junk = tmp_path / "junk.mlmodel"
    junk.write_bytes(b"not a model")
    with pytest.raises(ModelReadError):
        plan(junk)


def test_unknown_settings_raise_value_error(built):
    with pytest.raises(ValueError, match="compute units"):
        plan(built["w16384"], "NEURAL_ENGINE")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="policy"):
        plan(built["w16384"], "ALL", "eager")  # type: ignore[arg-type]


# ---------------------------------------------------------------- the tiny Parakeet packages

@pytest.mark.parametrize("units", ["CPU_AND_NE", "ALL"])
def test_greedy_fails_the_fused_model_with_the_w240000_text(tiny, units):
    p = plan(tiny["mel_encoder"], units, "greedy")
    assert p.validation_error == W240000_TEXT
    first = p.rejections[0]
    assert (first.tensor, first.where) == ("audio_signal", "input")
    assert p.border("audio_signal").to_devices == ("ANE",)
    assert p.border("audio_signal").error_text == W240000_TEXT
    assert p.exit_code == 1


@pytest.mark.parametrize("units", ["CPU_AND_NE", "ALL"])
def test_conservative_passes_the_fused_model_and_reports_the_border(tiny, units):
    p = plan(tiny["mel_encoder"], units, "conservative")
    assert p.valid and p.exit_code == 0
    ops = [o for o in p.ops if o.device]
    # every op touching a waveform-sized tensor runs off the ANE
    assert all(o.device != "ANE" for o in ops if o.over_limit)
    assert {o.reason for o in ops if o.op_type == "conv" and o.over_limit} == {"over_limit"}
    assert p.border("audio_signal").to_devices and "ANE" not in p.border("audio_signal").to_devices
    # the spectrogram crosses from the CPU into the ANE segment, within the limits
    (ane,) = [s for s in p.segments if s.device == "ANE"]
    entering = [p.border(t) for t in ane.inputs]
    spectra = [b for b in entering if b.dtype == "fp32" and b.shape == (1, 257, 1501)]
    assert spectra and spectra[0].from_device == "CPU" and spectra[0].ndchw == "N1D1C1H257W1501"
    assert not any(b.over_limit for b in entering)
    # the encoder's work is on the ANE
    assert all(o.device == "ANE" for o in ops if o.op_type in ("linear", "layer_norm", "softmax"))


@pytest.mark.parametrize("policy", POLICIES)
def test_split_encoder_passes_both_policies(tiny, policy):
    p = plan(tiny["encoder"], "CPU_AND_NE", policy)
    assert p.valid
    assert p.counts()["ANE"] > 100
    if policy == "greedy":
        assert "mel" in [t for s in p.ane_segments() for t in s.inputs]
        assert p.border("mel").shape == (1, 128, 1501)


def test_split_preprocessor_fails_greedy_passes_conservative(tiny):
    assert plan(tiny["preprocessor"], "CPU_AND_NE", "greedy").validation_error == W240000_TEXT
    assert plan(tiny["preprocessor"], "CPU_AND_NE", "conservative").valid
    assert plan(tiny["preprocessor"], "CPU_AND_GPU", "greedy").valid


@pytest.mark.parametrize("units", COMPUTE_UNITS)
def test_lstm_decoder_runs_on_the_cpu(tiny, units):
    p = plan(tiny["decoder"], units, "greedy")
    assert set(_devices(p).values()) == {"CPU"}
    assert {o.reason for o in p.ops if o.op_type == "lstm"} == {"compute_units" if units == "CPU_ONLY" else "cpu_only_op"}
    if units in ("CPU_AND_NE", "ALL"):
        assert any("no op went to the ANE" in n for n in p.notes)


def test_joint_is_one_ane_segment_under_greedy(tiny):
    p = plan(tiny["joint"], "CPU_AND_NE", "greedy")
    assert [s.device for s in p.segments] == ["ANE"] and p.valid
    assert set(p.segments[0].inputs) == {"encoder", "decoder"}


def test_fused_model_under_cpu_and_gpu(tiny):
    p = plan(tiny["mel_encoder"], "CPU_AND_GPU", "greedy")
    assert "ANE" not in _devices(p).values() and p.valid
    convs = [o for o in p.ops if o.op_type == "conv"]
    assert {o.reason for o in convs if o.over_limit} == {"gpu_texture_limit"}
    assert {o.device for o in convs if not o.over_limit} == {"GPU"}


@pytest.mark.parametrize("units", COMPUTE_UNITS)
@pytest.mark.parametrize("policy", POLICIES)
def test_plans_are_well_formed(tiny, units, policy):
    for loaded in tiny.values():
        p = plan(loaded, units, policy)
        for o in p.ops:
            assert (o.device is None) == (o.op_class == "const") == (o.segment is None)
            assert o.reason in plan_mod.REASONS
        for s in p.segments:
            assert {p.ops[i].device for i in s.ops} == {s.device}
            assert list(s.ops) == sorted(s.ops)
        assert sorted(i for s in p.segments for i in s.ops) == [o.index for o in p.ops if o.device]
        assert _segment_graph_is_acyclic(p)
        assert [r.error_text for r in p.rejections] == [p.tensors[r.tensor].error_text for r in p.rejections]
        if policy == "conservative":
            assert p.valid


def test_chunked_fused_model_passes_greedy(tiny_modules, tmp_path_factory):
    if importlib.util.find_spec("parakeet_nb.frontend.chunked") is None:
        pytest.skip("parakeet_nb.frontend.chunked (ChunkedPreprocessor) does not exist yet; another helper is writing it")
    from parakeet_nb.model import components
    from parakeet_nb.coreml import convert
    from parakeet_nb.frontend.chunked import ChunkedPreprocessor

    m = tiny_modules
    component = convert.Component(
        "mel_encoder_chunked", "parakeet_mel_encoder_chunked.mlpackage",
        (convert.TensorSpec("audio_chunks", lambda _: (1, 15, 16000)),
         convert.TensorSpec("audio_length", lambda _: (1,), np.int32)),
        ("encoder", "encoder_length"), "chunked waveform -> mel -> encoder, fused",
    )
    wrapper = components.MelEncoder(ChunkedPreprocessor(), m.encoder).eval()
    traced = convert.trace(wrapper, convert.example_inputs(component, m))
    path = tmp_path_factory.mktemp("chunked") / component.file
    convert.to_coreml(traced, component, m).save(str(path))
    loaded = load_program(path)
    for units in ("CPU_AND_NE", "ALL"):
        p = plan(loaded, units, "greedy")
        assert p.valid, p.format_text()
        assert _segment_graph_is_acyclic(p)
        assert p.counts()["ANE"] > 100
        assert p.border("audio_chunks").shape == (1, 15, 16000)


# ---------------------------------------------------------------- JSON schema and text

def test_json_schema(tiny):
    p = plan(tiny["mel_encoder"], "CPU_AND_NE", "greedy")
    data = json.loads(p.to_json())
    assert data == p.as_dict()
    expected = {
        "schema": str, "model_notice": str, "path": str, "compute_units": str, "policy": str,
        "typed_execution": bool, "precision": str, "valid": bool, "validation_error": str,
        "counts": dict, "function_inputs": list, "function_outputs": list, "segments": list,
        "borders": list, "rejections": list, "ops": list, "reasons": dict, "notes": list,
    }
    assert set(data) == set(expected)
    for key, kind in expected.items():
        assert isinstance(data[key], kind), key
    assert data["schema"] == plan_mod.SCHEMA and "not from Apple's compiler" in data["model_notice"]
    assert set(data["counts"]) == {"ops", "const", "ANE", "GPU", "CPU"}
    assert data["function_inputs"] == ["audio_signal", "audio_length"]
    seg_keys = {"id", "device", "op_count", "first_op", "last_op", "ops", "op_types", "inputs", "outputs"}
    assert all(set(s) == seg_keys for s in data["segments"])
    border_keys = {"tensor", "shape", "ndchw", "dtype", "from_segment", "from_device", "to_segments",
                   "to_devices", "function_input", "function_output", "over_limit", "error_text"}
    assert all(set(b) == border_keys for b in data["borders"])
    wave = next(b for b in data["borders"] if b["tensor"] == "audio_signal")
    assert wave["shape"] == [1, 240000] and wave["ndchw"] == "N1D1C1H1W240000" and wave["from_segment"] is None
    rej_keys = {"segment", "tensor", "shape", "ndchw", "where", "op_index", "op_type", "op_name", "error_text"}
    assert all(set(r) == rej_keys for r in data["rejections"])
    op_keys = {"index", "name", "op_type", "op_class", "device", "segment", "reason", "over_limit"}
    assert all(set(o) == op_keys for o in data["ops"])
    assert [o["index"] for o in data["ops"]] == list(range(len(data["ops"])))
    assert data["validation_error"] == W240000_TEXT
    valid = json.loads(plan(tiny["encoder"], "CPU_AND_NE", "greedy").to_json())
    assert valid["valid"] is True and valid["validation_error"] is None and valid["rejections"] == []


def test_format_text(tiny):
    text = plan(tiny["mel_encoder"], "CPU_AND_NE", "greedy").format_text()
    assert W240000_TEXT in text and "FAILS" in text and "audio_signal [1, 240000]" in text
    assert "not from Apple's compiler" in text
    ok = plan(tiny["mel_encoder"], "CPU_AND_NE", "conservative").format_text()
    assert "passes" in ok and "x_11 [1, 257, 1501]" in ok


def test_tensor_table_is_in_program_order(tiny):
    table = tensor_table(tiny["mel_encoder"])
    assert [t.name for t in table[:2]] == ["audio_signal", "audio_length"]
    producers = [t.producer for t in table[2:]]
    assert producers == sorted(producers) and not any(t.const for t in table)
    assert max(t.largest_axis or 0 for t in table) == 240512  # the centre-padded waveform


# ---------------------------------------------------------------- the op table

def test_op_table_covers_every_mil_op_and_cites_known_sources():
    from coremltools.converters.mil.mil.ops.registry import SSAOpRegistry

    assert set(SSAOpRegistry.core_ops) <= set(op_table.OP_TABLE)
    for info in op_table.OP_TABLE.values():
        assert info.sources and all(k in op_table.SOURCES for k in info.sources), info.op_type
        assert info.confidence in ("reported", "indirect", "inferred")
    assert op_table.classify("lstm").op_class == "cpu_only"
    assert op_table.classify("ios17.lstm").op_class == "cpu_only"
    assert op_table.classify("conv").starts_segment and op_table.classify("add").ane_capable
    assert not op_table.classify("add").starts_segment
    unknown = op_table.classify("my_custom_op")
    assert unknown.op_class == "unknown" and not unknown.ane_capable
    rows = op_table.table_rows()
    assert len(rows) == len(op_table.OP_TABLE) and rows[0]["op_class"] == "heavy"
