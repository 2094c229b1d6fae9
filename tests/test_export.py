"""Export (``parakeet_nb.coreml.export``, ``convert``, ``components``, ``compute_units``).

Most checks read the session's one export of every tiny component (``tiny_export``);
tests that export again use the cheap components (joint, decoder) and their own folders.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import platform
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from parakeet_nb import _quiet

_quiet.import_heavy()

import coremltools as ct  # noqa: E402
import nemo  # noqa: E402
from coremltools.converters.mil.mil import types  # noqa: E402

from parakeet_nb import cli  # noqa: E402
from parakeet_nb.ane import compute_units  # noqa: E402
from parakeet_nb.coreml import export as exporter  # noqa: E402
from parakeet_nb.ane.audit import audit  # noqa: E402
from parakeet_nb.coreml.convert import COMPONENTS, Fp32OnlyDesignError, component_precision  # noqa: E402
from parakeet_nb.model.presets import PRESETS  # noqa: E402
from parakeet_nb.mlprogram.load import load_program  # noqa: E402

W240000_TEXT = (
    "Invalid layer: Tensor dimensions N1D1C1H1W240000 are not within supported range, "
    "N[1-65536] D[1-16384] C[1-65536] H[1-16384] W[1-16384]."
)

_TINY = PRESETS["tiny"]
D, H, L, V = _TINY.d_model, _TINY.pred_hidden, _TINY.pred_rnn_layers, _TINY.vocab_size
T = 188  # encoder frames for 1501 mel frames (x8 subsampling)
N_DUR = len(_TINY.durations)

#: design.md's contract (every component it lists), at the tiny preset's sizes: file, inputs, outputs (name, shape, dtype).
CONTRACT: dict[str, tuple[str, list[tuple], list[tuple]]] = {
    "preprocessor": (
        "parakeet_preprocessor.mlpackage",
        [("audio_signal", [1, 240000], "fp32"), ("audio_length", [1], "int32")],
        [("mel", [1, 128, 1501], "fp32"), ("mel_length", [1], "int32")],
    ),
    "encoder": (
        "parakeet_encoder.mlpackage",
        [("mel", [1, 128, 1501], "fp32"), ("mel_length", [1], "int32")],
        [("encoder", [1, D, T], "fp32"), ("encoder_length", [1], "int32")],
    ),
    "mel_encoder": (
        "parakeet_mel_encoder.mlpackage",
        [("audio_signal", [1, 240000], "fp32"), ("audio_length", [1], "int32")],
        [("encoder", [1, D, T], "fp32"), ("encoder_length", [1], "int32")],
    ),
    "preprocessor_chunked": (
        "parakeet_preprocessor_chunked.mlpackage",
        [("audio_chunks", [1, 15, 16000], "fp32"), ("audio_length", [1], "int32")],
        [("mel", [1, 128, 1501], "fp32"), ("mel_length", [1], "int32")],
    ),
    "mel_encoder_chunked": (
        "parakeet_mel_encoder_chunked.mlpackage",
        [("audio_chunks", [1, 15, 16000], "fp32"), ("audio_length", [1], "int32")],
        [("encoder", [1, D, T], "fp32"), ("encoder_length", [1], "int32")],
    ),
    "decoder": (
        "parakeet_decoder.mlpackage",
        [("targets", [1, 1], "int32"), ("target_length", [1], "int32"),
         ("h_in", [L, 1, H], "fp32"), ("c_in", [L, 1, H], "fp32")],
        [("decoder", [1, H, 1], "fp32"), ("h_out", [L, 1, H], "fp32"), ("c_out", [L, 1, H], "fp32")],
    ),
    "joint": (
        "parakeet_joint.mlpackage",
        [("encoder", [1, D, T], "fp32"), ("decoder", [1, H, 1], "fp32")],
        [("logits", [1, T, 1, V + 1 + N_DUR], "fp32")],
    ),
    "joint_decision": (
        "parakeet_joint_decision.mlpackage",
        [("encoder_step", [1, D, 1], "fp32"), ("decoder_step", [1, H, 1], "fp32")],
        [("token_id", [1, 1, 1], "int32"), ("token_prob", [1, 1, 1], "fp32"), ("duration", [1, 1, 1], "int32")],
    ),
    # Opt-in (``--only``): FluidAudio's JointDecisionv3; K = min(64, V + 1) candidates.
    "joint_decision_topk": (
        "parakeet_joint_decision_topk.mlpackage",
        [("encoder_step", [1, D, 1], "fp32"), ("decoder_step", [1, H, 1], "fp32")],
        [("token_id", [1, 1, 1], "int32"), ("token_prob", [1, 1, 1], "fp32"), ("duration", [1, 1, 1], "int32"),
         ("top_k_ids", [1, 1, 1, min(64, V + 1)], "int32"), ("top_k_logits", [1, 1, 1, min(64, V + 1)], "fp32")],
    ),
}

#: The components a default export writes, in the exporter's order.
EXPORTED: list[str] = [name for name in exporter.select(None) if name in CONTRACT]
#: Components with no tensor over the ANE limits.
WITHIN_LIMITS = [n for n in EXPORTED if n not in ("preprocessor", "mel_encoder")]


def _triples(described: list[dict]) -> list[tuple]:
    return [(d["name"], d["shape"], d["dtype"]) for d in described]


def _metadata(folder: Path) -> dict:
    return json.loads((folder / "metadata.json").read_text())


def _dtype_counts(path: Path) -> dict[str, int]:
    """fp16/fp32 outputs of non-const ops, counted here independently of the exporter."""
    counts = {"fp16": 0, "fp32": 0}
    for op in load_program(path).main.operations:
        if op.op_type == "const":
            continue
        for var in op.outputs:
            if var.dtype == types.fp16:
                counts["fp16"] += 1
            elif var.dtype == types.fp32:
                counts["fp32"] += 1
    return counts


def _snapshot(folder: Path) -> dict[str, tuple]:
    """Every file and folder below ``folder``: inode, mtime and content hash."""
    found = {}
    for p in sorted(folder.rglob("*")):
        st = p.stat()
        digest = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else None
        found[str(p.relative_to(folder))] = (st.st_ino, st.st_mtime_ns, digest)
    return found


def _leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if ".staging-" in p.name or ".old-" in p.name)


# --------------------------------------------------------------------------- the tiny export


def test_the_contract_table_matches_design_md():
    assert set(COMPONENTS) <= set(CONTRACT), "a component that design.md does not list"
    core = ["preprocessor", "encoder", "mel_encoder", "decoder", "joint", "joint_decision"]
    assert [n for n in COMPONENTS if n in core] == core
    for name in COMPONENTS:
        file, inputs, outputs = CONTRACT[name]
        component = COMPONENTS[name]
        assert component.file == file
        assert [s.name for s in component.inputs] == [i[0] for i in inputs]
        assert list(component.outputs) == [o[0] for o in outputs]


def test_every_contract_file_and_metadata_are_written(tiny_export):
    names = sorted(p.name for p in tiny_export.iterdir())
    files = [CONTRACT[n][0] for n in EXPORTED]
    assert names == sorted(files + ["compile.sh", "metadata.json"])
    for file in files:
        assert (tiny_export / file / "Manifest.json").is_file()
        assert (tiny_export / file / "Data" / "com.apple.CoreML" / "model.mlmodel").is_file()
    assert _leftovers(tiny_export.parent) == []


def test_metadata_describes_the_model_audio_and_versions(tiny_export):
    meta = _metadata(tiny_export)
    assert meta["format"] == "parakeet-nb export 1"
    assert meta["model"]["source"] == "preset:tiny"
    assert meta["model"]["preset"]["name"] == "tiny"
    assert meta["model"]["d_model"] == D and meta["model"]["pred_hidden"] == H
    assert meta["model"]["vocab_size"] == V and meta["model"]["blank_id"] == V
    assert meta["model"]["tdt_durations"] == [0, 1, 2, 3, 4]
    assert "checkpoint_sha256" not in meta["model"]
    assert meta["audio"] == {"sample_rate": 16000, "window_seconds": 15.0, "window_samples": 240000, "hop_samples": 160}
    assert meta["deployment_target"] == "iOS17"
    assert meta["versions"]["torch"] == torch.__version__
    assert meta["versions"]["coremltools"] == ct.__version__
    assert meta["versions"]["nemo_toolkit"] == nemo.__version__
    assert list(meta["components"]) == EXPORTED


@pytest.mark.parametrize("name", EXPORTED)
def test_metadata_inputs_and_outputs_follow_the_contract(tiny_export, name):
    file, inputs, outputs = CONTRACT[name]
    entry = _metadata(tiny_export)["components"][name]
    assert entry["file"] == file
    assert _triples(entry["inputs"]) == inputs
    assert _triples(entry["outputs"]) == outputs
    # and the saved package itself declares them
    loaded = load_program(tiny_export / file)
    assert [(v.name, [int(s) for s in v.shape]) for v in loaded.main.inputs.values()] == [(n, s) for n, s, _ in inputs]
    assert [(v.name, [int(s) for s in v.shape]) for v in loaded.main.outputs] == [(n, s) for n, s, _ in outputs]
    assert entry["ops"] == sum(1 for op in loaded.main.operations if op.op_type != "const")
    assert 0 <= entry["checks"]["trace_vs_eager_max_abs_diff"] <= exporter.TRACE_ATOL


@pytest.mark.parametrize("name", EXPORTED)
def test_metadata_precision_is_what_the_program_computes_in(tiny_export, name):
    entry = _metadata(tiny_export)["components"][name]
    counts = _dtype_counts(tiny_export / CONTRACT[name][0])
    profile = entry["precision"]["profile"]
    requested = component_precision(profile, name)
    # fp16 chunked front ends keep their float32 island: typed "mixed"
    used = "mixed" if requested == "fp16" and name.endswith("_chunked") else requested
    assert entry["precision"] == {
        "profile": profile, "requested": requested, "used": used,
        "op_outputs_fp16": counts["fp16"], "op_outputs_fp32": counts["fp32"],
    }
    assert (counts["fp16"] > 0) == (requested == "fp16") and counts["fp32"] > 0


@pytest.mark.parametrize("name", EXPORTED)
def test_metadata_audit_agrees_with_the_auditor_on_the_written_file(tiny_export, name):
    entry = _metadata(tiny_export)["components"][name]
    report = audit(tiny_export / CONTRACT[name][0])
    assert entry["audit"] == {
        "clean": report.clean,
        "widest_axis": report.widest_axis,
        "widest_tensor": report.widest_tensor,
        "offending_tensors": report.offending_tensors(),
        "first_error_text": report.first_error_text,
    }


def test_audit_verdicts_of_the_split_and_fused_models(tiny_export):
    components = _metadata(tiny_export)["components"]
    over = {name for name, c in components.items() if not c["audit"]["clean"]}
    assert over == {"preprocessor", "mel_encoder"}
    for name in over:
        assert components[name]["audit"]["first_error_text"] == W240000_TEXT
        assert "audio_signal" in components[name]["audit"]["offending_tensors"]


@pytest.mark.parametrize("name", ["preprocessor", "mel_encoder"])
def test_waveform_components_are_recommended_cpu_and_gpu(tiny_export, name):
    units = _metadata(tiny_export)["components"][name]["compute_units"]
    assert units["compute_units"] == "CPU_AND_GPU"
    assert units["swift"] == ".cpuAndGPU"
    assert "N1D1C1H1W240000" in units["reason"] and "16384" in units["reason"]


@pytest.mark.parametrize("name", WITHIN_LIMITS)
def test_components_within_the_limits_follow_typed_execution(tiny_export, name):
    entry = _metadata(tiny_export)["components"][name]
    units = entry["compute_units"]
    if entry["precision"]["used"] in ("fp16", "mixed"):
        assert units["compute_units"] == "CPU_AND_NE"
        assert units["swift"] == ".cpuAndNeuralEngine"
        assert "within the ANE limits" in units["reason"]
    else:
        assert units["compute_units"] == "CPU_AND_GPU"
        assert units["reason"].startswith("fp32-typed: Core ML runs it on CPU/GPU")


@pytest.mark.parametrize("name", EXPORTED)
def test_no_fp32_typed_component_is_recommended_the_ane(tiny_export, name):
    entry = _metadata(tiny_export)["components"][name]
    if entry["precision"]["used"] == "fp32":
        assert entry["compute_units"]["compute_units"] in ("CPU_ONLY", "CPU_AND_GPU")
        assert "fp32-typed: Core ML runs it on CPU/GPU" in entry["compute_units"]["reason"]


@pytest.mark.parametrize("name", EXPORTED)
def test_metadata_placement_is_the_typed_plan_under_the_recommended_units(tiny_export, name):
    from parakeet_nb.ane.planner import plan

    entry = _metadata(tiny_export)["components"][name]
    units = entry["compute_units"]["compute_units"]
    counts = plan(tiny_export / CONTRACT[name][0], units, "greedy", typed_execution=True).counts()
    assert entry["placement"] == {
        "predicted": True, "compute_units": units, "policy": "greedy", "typed_execution": True,
        "ops": {"ANE": counts["ANE"], "GPU": counts["GPU"], "CPU": counts["CPU"]},
    }
    assert sum(entry["placement"]["ops"].values()) == entry["ops"]
    if units != "CPU_AND_NE":
        assert entry["placement"]["ops"]["ANE"] == 0
    elif name in ("encoder", "joint", "mel_encoder_chunked"):
        assert entry["placement"]["ops"]["ANE"] > 0


def test_the_decoder_recommendation_says_the_lstm_runs_on_cpu(tiny_export):
    entry = _metadata(tiny_export)["components"]
    assert "LSTM" in entry["decoder"]["compute_units"]["reason"]
    assert "LSTM" not in entry["encoder"]["compute_units"]["reason"]


def test_export_result_matches_what_was_written(tiny_export_result, tiny_export):
    assert json.loads(json.dumps(tiny_export_result.metadata)) == _metadata(tiny_export)
    assert [c.name for c in tiny_export_result.components] == EXPORTED
    table = tiny_export_result.table().splitlines()
    assert table[0].split()[:2] == ["component", "size"]
    rows = {line.split()[0]: line for line in table[1:]}
    assert set(rows) == set(EXPORTED)
    assert "OVER" in rows["mel_encoder"] and "CPU_AND_GPU" in rows["mel_encoder"]
    encoder = tiny_export_result.components[EXPORTED.index("encoder")]
    assert "clean" in rows["encoder"] and encoder.recommendation.units in rows["encoder"]
    assert encoder.precision["used"] in rows["encoder"].split()


def test_recommend_is_derived_from_the_audit(tiny_export):
    clean = audit(tiny_export / CONTRACT["joint"][0])
    assert compute_units.recommend(clean, {"linear"}, "fp16").units == "CPU_AND_NE"
    assert compute_units.recommend(clean, {"linear"}, "fp32").units == "CPU_AND_GPU"
    assert "LSTM" in compute_units.recommend(clean, {"lstm"}, "fp16").reason
    over = audit(tiny_export / CONTRACT["preprocessor"][0])
    assert compute_units.recommend(over, {"lstm"}, "fp16").units == "CPU_AND_GPU"


# --------------------------------------------------------------------------- precision


def test_fp16_records_fp16_and_keeps_float32_io(tmp_path, capsys):
    out = tmp_path / "fp16"
    code = cli.main(["export", "--only", "joint", "--precision", "fp16", "--out", str(out), "--quiet"])
    assert code == 0, capsys.readouterr().err
    entry = _metadata(out)["components"]["joint"]
    counts = _dtype_counts(out / "parakeet_joint.mlpackage")
    assert counts["fp16"] > 0
    assert entry["precision"] == {
        "profile": "fp16", "requested": "fp16", "used": "fp16",
        "op_outputs_fp16": counts["fp16"], "op_outputs_fp32": counts["fp32"],
    }
    file, inputs, outputs = CONTRACT["joint"]
    assert _triples(entry["inputs"]) == inputs and _triples(entry["outputs"]) == outputs
    spec = ct.models.MLModel(str(out / file), skip_model_load=True).get_spec()
    float32 = ct.proto.FeatureTypes_pb2.ArrayFeatureType.FLOAT32
    assert [f.type.multiArrayType.dataType for f in spec.description.input] == [float32, float32]
    assert [f.type.multiArrayType.dataType for f in spec.description.output] == [float32]


def test_unknown_precision_is_refused(tiny_modules, tmp_path):
    with pytest.raises(ValueError, match="fp8"):
        exporter.export(tiny_modules, tmp_path / "out", only=["joint"], precision="fp8")
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------- --only


def test_only_replaces_just_those_packages_and_keeps_the_other_entries(tiny_modules, tiny_export, tmp_path):
    out = tmp_path / "parakeet_coreml"
    shutil.copytree(tiny_export, out)
    before = _snapshot(out)
    old = _metadata(out)
    result = exporter.export(tiny_modules, out, only=["joint"])
    assert [c.name for c in result.components] == ["joint"]
    after = _snapshot(out)
    assert set(after) == set(before)
    joint = "parakeet_joint.mlpackage"
    assert after[joint][0] != before[joint][0]  # a new package moved into place
    for key in before:
        if key.startswith(joint) or key in ("metadata.json", "compile.sh"):
            continue
        assert after[key] == before[key], key  # untouched: same inode, mtime, bytes
    assert after["compile.sh"][2] == before["compile.sh"][2]  # rewritten, the same packages
    new = _metadata(out)
    assert list(new["components"]) == EXPORTED
    for name in EXPORTED:
        if name != "joint":
            assert new["components"][name] == old["components"][name]
    assert _triples(new["components"]["joint"]["outputs"]) == CONTRACT["joint"][2]
    assert _leftovers(tmp_path) == []


def test_select_validates_names():
    assert exporter.select(None) == [n for n in COMPONENTS if n != "joint_decision_topk"]  # opt-in only
    assert exporter.select(["joint_decision_topk"]) == ["joint_decision_topk"]
    assert exporter.select(["joint", "encoder"]) == ["encoder", "joint"]  # contract order
    with pytest.raises(ValueError, match="unknown components bogus, nope"):
        exporter.select(["joint", "bogus", "nope"])
    with pytest.raises(ValueError, match="unknown component bogus: expected names from preprocessor"):
        exporter.select(["bogus"])


def test_unknown_names_are_refused_before_anything_is_written(tiny_modules, tmp_path):
    with pytest.raises(ValueError, match="unknown component bogus"):
        exporter.export(tiny_modules, tmp_path / "out", only=["bogus"])
    assert list(tmp_path.iterdir()) == []


def test_export_into_a_file_is_refused(tiny_modules, tmp_path):
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(exporter.ExportError, match="exists and is a file"):
        exporter.export(tiny_modules, target, only=["joint"])
    assert target.read_text() == "x"
    assert _leftovers(tmp_path) == []


# --------------------------------------------------------------------------- atomicity


def _fail_on_second(monkeypatch, error: Exception):
    original = exporter.export_component
    calls = []

    def flaky(name, *args, **kwargs):
        calls.append(name)
        if len(calls) == 2:
            raise error
        return original(name, *args, **kwargs)

    monkeypatch.setattr(exporter, "export_component", flaky)
    return calls


def test_failure_midway_creates_nothing(tiny_modules, tmp_path, monkeypatch):
    calls = _fail_on_second(monkeypatch, RuntimeError("simulated failure"))
    out = tmp_path / "parakeet_coreml"
    with pytest.raises(RuntimeError, match="simulated failure"):
        exporter.export(tiny_modules, out, only=["decoder", "joint"])
    assert calls == ["decoder", "joint"]  # the first component really was exported
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []  # no staging folder left beside it


def test_failure_midway_leaves_an_existing_export_unchanged(tiny_modules, tiny_export, tmp_path, monkeypatch, capsys):
    out = tmp_path / "parakeet_coreml"
    shutil.copytree(tiny_export, out)
    before = _snapshot(out)
    calls = _fail_on_second(monkeypatch, exporter.ExportError("joint: simulated failure"))
    code = cli.main(["export", "--only", "decoder,joint", "--out", str(out), "--quiet"])
    assert code == 2
    assert calls == ["decoder", "joint"]
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == "parakeet-nb export: error: joint: simulated failure"
    assert _snapshot(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["parakeet_coreml"]


# --------------------------------------------------------------------------- traced vs eager


class _Noisy(torch.nn.Module):
    """The joint plus fresh noise on every call: tracing records the noise op, so traced != eager."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, encoder, decoder):
        logits = self.inner(encoder, decoder)
        return logits + torch.rand_like(logits)


def test_traced_vs_eager_disagreement_raises_export_error(tiny_modules, tmp_path, monkeypatch):
    original = exporter.wrappers

    def noisy_wrappers(modules, precision="fp32"):
        found = original(modules, precision)
        found["joint"] = _Noisy(found["joint"]).eval()
        return found

    monkeypatch.setattr(exporter, "wrappers", noisy_wrappers)
    out = tmp_path / "out"
    with pytest.raises(exporter.ExportError, match=r"^joint: the traced module differs from the eager one by "):
        exporter.export(tiny_modules, out, only=["joint"])
    assert list(tmp_path.iterdir()) == []


def test_a_package_that_breaks_the_contract_names_raises_export_error(tiny_modules, tmp_path, monkeypatch):
    original = exporter.to_coreml

    def misnamed(traced, component, modules, precision="fp32"):
        return original(traced, dataclasses.replace(component, outputs=("scores",)), modules, precision)

    monkeypatch.setattr(exporter, "to_coreml", misnamed)
    with pytest.raises(exporter.ExportError, match=r"^joint: the saved package declares .*'scores'.*the contract says .*'logits'"):
        exporter.export(tiny_modules, tmp_path / "out", only=["joint"])
    assert list(tmp_path.iterdir()) == []


def test_trace_tolerance_is_enforced_through_the_cli(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(exporter, "TRACE_ATOL", -1.0)  # nothing can pass
    out = tmp_path / "out"
    assert cli.main(["export", "--only", "joint", "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("parakeet-nb export: error: joint: the traced module differs from the eager one")
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- the full preset (slow)


@pytest.mark.slow
def test_full_preset_encoder_exports_and_audits_clean(tmp_path):
    """Parakeet TDT 0.6B v2 shapes: the split encoder is within the ANE limits. Minutes; ``-m slow``."""
    from parakeet_nb.model import presets

    modules = presets.build("full")
    out = tmp_path / "full"
    result = exporter.export(modules, out, only=["encoder"])
    assert sorted(p.name for p in out.iterdir()) == ["metadata.json", "parakeet_encoder.mlpackage"]
    entry = result.metadata["components"]["encoder"]
    full = PRESETS["full"]
    assert _triples(entry["inputs"]) == CONTRACT["encoder"][1]
    assert _triples(entry["outputs"]) == [("encoder", [1, full.d_model, T], "fp32"), ("encoder_length", [1], "int32")]
    report = audit(out / "parakeet_encoder.mlpackage")
    assert report.clean, report.format_text(limit=10)
    assert report.widest_axis <= 16384
    assert entry["audit"]["clean"] and entry["audit"]["widest_axis"] == report.widest_axis
    assert entry["compute_units"]["compute_units"] == "CPU_AND_NE"
    assert _metadata(out)["model"]["preset"]["name"] == "full"


def test_fp16_export_uses_the_fp16_safe_chunked_design(tiny_modules, tmp_path):
    """--precision fp16 builds ChunkedPreprocessor(fp16_safe=True) and keeps its float32 island."""
    from parakeet_nb.frontend.chunked import ChunkedPreprocessor
    from parakeet_nb.model.components import wrappers

    assert wrappers(tiny_modules, "fp16")["preprocessor_chunked"].fp16_safe
    assert not wrappers(tiny_modules)["preprocessor_chunked"].fp16_safe
    front = wrappers(tiny_modules, "fp16")["mel_encoder_chunked"].front
    assert isinstance(front, ChunkedPreprocessor) and front.fp16_safe
    with pytest.raises(ValueError, match="unknown precision 'bf16'"):
        wrappers(tiny_modules, "bf16")
    result = exporter.export(tiny_modules, tmp_path / "fp16", only=["preprocessor_chunked"], precision="fp16")
    counts = _dtype_counts(tmp_path / "fp16" / COMPONENTS["preprocessor_chunked"].file)
    assert counts["fp16"] > 0 and counts["fp32"] > 0  # the float32 island survives conversion
    assert result.components[0].precision["op_outputs_fp32"] == counts["fp32"]
    assert result.components[0].audit.clean


def test_nonfinite_constants_flags_overflow_but_not_unbounded_clips():
    from coremltools.converters.mil import Builder as mb
    from coremltools.converters.mil.mil import types as mil_types

    from parakeet_nb.coreml.convert import nonfinite_constants

    @mb.program(input_specs=[mb.TensorSpec(shape=(4,), dtype=mil_types.fp16)])
    def prog(x):
        y = mb.clip(x=x, alpha=np.float16(-1.0), beta=np.float16(np.inf))
        return mb.mul(x=y, y=np.array([1.0, 2.0, np.inf, 3.0], dtype=np.float16), name="scaled")

    found = nonfinite_constants(prog)
    assert len(found) == 1 and found[0].startswith("mul scaled.")


# --------------------------------------------------------------------------- profiles (issue 14)


def test_the_precision_profiles():
    ane = ["encoder", "preprocessor_chunked", "mel_encoder_chunked", "decoder", "joint", "joint_decision"]
    assert {n for n in COMPONENTS if component_precision("auto", n) == "fp32"} == {"preprocessor", "mel_encoder"}
    assert {component_precision("auto", n) for n in ane} == {"fp16"}
    assert {component_precision("fp32", n) for n in COMPONENTS} == {"fp32"}
    assert {component_precision("fp16", n) for n in COMPONENTS} == {"fp16"}
    with pytest.raises(ValueError, match="unknown precision 'bf16'"):
        component_precision("bf16", "encoder")
    import inspect

    assert inspect.signature(exporter.export).parameters["precision"].default == "auto"
    assert cli.build_parser().parse_args(["export"]).precision == "auto"


@pytest.fixture(scope="module")
def encoders(tiny_modules, tmp_path_factory):
    """The tiny encoder exported with the default profile and with fp32: ``{profile: folder}``."""
    tmp = tmp_path_factory.mktemp("encoders")
    exporter.export(tiny_modules, tmp / "auto", only=["encoder"])
    exporter.export(tiny_modules, tmp / "fp32", only=["encoder"], precision="fp32")
    return {"auto": tmp / "auto", "fp32": tmp / "fp32"}


def test_default_plans_show_ane_ops_for_the_default_encoder_and_none_for_fp32(encoders):
    from parakeet_nb.ane.planner import plan

    package = COMPONENTS["encoder"].file
    default = plan(encoders["auto"] / package)
    assert default.typed_execution and default.precision == "fp16" and default.counts()["ANE"] > 0
    fp32 = plan(encoders["fp32"] / package)
    assert fp32.precision == "fp32" and fp32.counts()["ANE"] == 0
    assert any(n.startswith("fp32-typed: Core ML runs it on CPU/GPU") for n in fp32.notes)
    untyped = plan(encoders["fp32"] / package, typed_execution=False)  # the hypothetical reading
    assert untyped.counts()["ANE"] > 0 and any("untyped, hypothetical" in n for n in untyped.notes)
    meta = {p: _metadata(f)["components"]["encoder"] for p, f in encoders.items()}
    assert meta["auto"]["compute_units"]["compute_units"] == "CPU_AND_NE"
    assert meta["auto"]["placement"]["ops"]["ANE"] > 0
    assert meta["fp32"]["compute_units"]["compute_units"] == "CPU_AND_GPU"
    assert meta["fp32"]["placement"]["ops"]["ANE"] == 0


def test_compile_script_compiles_every_package_of_the_folder(encoders, tiny_modules, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(encoders["auto"], out)
    exporter.export(tiny_modules, out, only=["joint"])  # keeps the encoder: both in compile.sh
    script = (out / "compile.sh").read_text()
    lines = script.splitlines()
    assert lines[0] == "#!/bin/sh" and "set -eu" in lines
    assert lines[-2:] == [
        'xcrun coremlcompiler compile "$here/parakeet_encoder.mlpackage" "$out"',
        'xcrun coremlcompiler compile "$here/parakeet_joint.mlpackage" "$out"',
    ]
    assert script == exporter.compile_script(["parakeet_encoder.mlpackage", "parakeet_joint.mlpackage"])


@pytest.mark.skipif(platform.system() == "Darwin", reason="checks the non-macOS refusal")
def test_compile_is_refused_off_macos_before_anything_is_done(tiny_modules, tmp_path, capsys):
    with pytest.raises(exporter.CompileUnavailable, match="--compile needs macOS.*compile.sh"):
        exporter.export(tiny_modules, tmp_path / "out", only=["joint"], compile=True)
    assert cli.main(["export", "--only", "joint", "--compile", "--out", str(tmp_path / "cli"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("parakeet-nb export: error: --compile needs macOS") and "\n" not in err
    assert not (tmp_path / "out").exists() and not (tmp_path / "cli").exists() and not _leftovers(tmp_path)


def test_the_fp32_only_chunked_design_is_refused_at_fp16(tiny_modules):
    from parakeet_nb.coreml.convert import convert
    from parakeet_nb.frontend.chunked import ChunkedPreprocessor

    with pytest.raises(Fp32OnlyDesignError, match=r"fp16_safe=False.*fp16_safe=True"):
        convert("preprocessor_chunked", ChunkedPreprocessor(), tiny_modules, "fp16")
