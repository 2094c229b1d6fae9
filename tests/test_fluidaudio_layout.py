"""``export --layout fluidaudio`` and ``check-layout``: FluidAudio's folder, checked against its loader's facts.

Two real exports are shared by the module (each costs ~20-60 s): ``tiny`` (FluidAudio v3, the
loader's default) and the shipped digits checkpoint through the CLI (v2, chosen by the
folder name). Unit tests of the check copy and change those folders, or build small programs.
The 0.6B presets run under ``-m slow``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from parakeet_nb import _quiet, cli
from parakeet_nb.coreml import fluidaudio_contract as fa
from parakeet_nb.coreml.convert import COMPONENTS
from parakeet_nb.coreml.fluidaudio_export import export_layout
from parakeet_nb.coreml.layout_check import LayoutUnreadable, check_layout, read_io
from parakeet_nb.paths import ROOT

_quiet.import_heavy()

DIGITS = ROOT / "data" / "digits_tdt.nemo"
FILES_V3 = ["Decoder.mlpackage", "Encoder.mlpackage", "JointDecisionv3.mlpackage", "Preprocessor.mlpackage",
            "compile.sh", "metadata.json", "parakeet_vocab.json"]


@pytest.fixture(scope="module")
def tiny_v3(tiny_modules, tmp_path_factory):
    """The tiny preset exported as FluidAudio's folder (v3: its vocabulary is not v2's 1024)."""
    return export_layout(tiny_modules, tmp_path_factory.mktemp("fa") / "models")


@pytest.fixture(scope="module")
def digits_v2(tmp_path_factory) -> Path:
    """The digits checkpoint exported by the CLI into a folder named as FluidAudio's v2 folder."""
    out = tmp_path_factory.mktemp("fa_digits") / fa.FOLDER["v2"]
    assert cli.main(["export", "--layout", "fluidaudio", "--preset", "digits", "--out", str(out), "--quiet"]) == 0
    return out


def _kinds(report) -> list[tuple[str, str]]:
    return sorted((f.kind, f.subject) for f in report.findings)


# --------------------------------------------------------------------------- the exports


def test_tiny_v3_export_is_what_fluidaudio_reads(tiny_v3):
    folder = tiny_v3.folder
    assert folder.name == "parakeet-tdt-0.6b-v3" and tiny_v3.version == "v3"
    assert sorted(p.name for p in folder.iterdir()) == FILES_V3
    report = check_layout(folder)
    assert report.exit_code == 0 and report.version == "v3"
    assert report.of("mismatch") == []
    # The sizes are the tiny preset's: right layout, but FluidAudio hard-codes the 0.6B ones.
    assert {f.subject for f in report.of("size")} == {"D", "H", "L", "V"}
    assert report.sizes == {"D": 64, "H": 64, "L": 1, "F": 1501, "T": 188, "K": 33, "V": 32}
    assert check_layout(folder, strict=True).exit_code == 1
    assert tiny_v3.unmet.startswith("FluidAudio v3 cannot run this model: encoder width 64 (needs 1024)")
    meta = json.loads((folder / "metadata.json").read_text())
    assert meta["layout"]["files"]["joint_decision_topk"] == "JointDecisionv3.mlmodelc"
    assert meta["layout"]["runnable_by_fluidaudio"] is False
    assert meta["components"]["encoder"]["file"] == "Encoder.mlpackage"
    vocab = json.loads((folder / fa.VOCABULARY_FILE).read_text())
    assert vocab == {str(i): f"<token_{i}>" for i in range(32)} and meta["layout"]["vocabulary"]["source"] == "placeholder"
    assert "Encoder.mlpackage" in (folder / "compile.sh").read_text()


def test_tiny_v3_joint_declares_fluidaudio_outputs_and_ranks_its_own_decision(tiny_v3, tiny_modules):
    ins, outs = read_io(tiny_v3.folder / "JointDecisionv3.mlpackage")
    assert [(d.name, d.dtype, d.shape) for d in ins] == [("encoder_step", "fp32", (1, 64, 1)), ("decoder_step", "fp32", (1, 64, 1))]
    assert [(d.name, d.dtype, d.shape) for d in outs] == [
        ("token_id", "int32", (1, 1, 1)), ("token_prob", "fp32", (1, 1, 1)), ("duration", "int32", (1, 1, 1)),
        ("top_k_ids", "int32", (1, 1, 1, 33)), ("top_k_logits", "fp32", (1, 1, 1, 33))]
    from parakeet_nb.model.components import JointDecisionTopK

    wrapper = JointDecisionTopK(tiny_modules.joint, tiny_modules.durations).eval()
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for _ in range(5):
            token, _prob, _dur, ids, logits = wrapper(torch.randn(1, 64, 1, generator=g), torch.randn(1, 64, 1, generator=g))
            assert int(ids[0, 0, 0, 0]) == int(token) and ids.dtype == torch.int32
            assert torch.all(logits[..., :-1] >= logits[..., 1:])  # largest first
            assert sorted(ids.reshape(-1).tolist()) == list(range(33))  # K = V + 1: every class once


def test_digits_v2_export_through_the_cli(digits_v2, capsys):
    from parakeet_nb.model.checkpoint import load_nemo

    assert sorted(p.name for p in digits_v2.iterdir()) == [
        "Decoder.mlpackage", "Encoder.mlpackage", "JointDecision.mlpackage", "Preprocessor.mlpackage",
        "compile.sh", "metadata.json", "parakeet_vocab.json"]
    modules = load_nemo(DIGITS)
    vocab = json.loads((digits_v2 / fa.VOCABULARY_FILE).read_text())
    assert list(vocab.values()) == list(modules.tokenizer.ids_to_tokens(list(range(modules.vocab_size))))
    assert cli.main(["check-layout", str(digits_v2)]) == 0
    out = capsys.readouterr().out
    assert "FluidAudio v2 (folder name parakeet-tdt-0.6b-v2)" in out and "layout clean" in out
    assert cli.main(["check-layout", str(digits_v2), "--json", "--strict"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["version"] == "v2" and data["sizes"]["V"] == modules.vocab_size and data["renames"] == []


# --------------------------------------------------------------------------- the check on other folders


def test_default_layout_folder_lists_the_renames(digits_v2, tmp_path, capsys):
    """parakeet-nb's default file names (with v2's plain joint), checked as FluidAudio v3."""
    folder = tmp_path / "parakeet_coreml"
    folder.mkdir()
    for name, stem in (("preprocessor", "Preprocessor"), ("encoder", "Encoder"), ("decoder", "Decoder"),
                       ("joint_decision", "JointDecision")):
        shutil.copytree(digits_v2 / f"{stem}.mlpackage", folder / COMPONENTS[name].file)
    (folder / "metadata.json").write_text("{}")
    report = check_layout(folder, version="v3")
    assert report.renames() == [
        ("parakeet_preprocessor.mlpackage", "Preprocessor.mlpackage"),
        ("parakeet_encoder.mlpackage", "Encoder.mlpackage"),
        ("parakeet_decoder.mlpackage", "Decoder.mlpackage"),
        ("parakeet_joint_decision.mlpackage", "JointDecisionv3.mlpackage"),
    ]
    mismatches = sorted((f.kind, f.subject) for f in report.of("mismatch"))
    assert mismatches == sorted([
        ("folder", "parakeet_coreml"),
        ("name", "JointDecisionv3.top_k_ids"), ("name", "JointDecisionv3.top_k_logits"),
        ("rename", "parakeet_decoder.mlpackage"), ("rename", "parakeet_encoder.mlpackage"),
        ("rename", "parakeet_joint_decision.mlpackage"), ("rename", "parakeet_preprocessor.mlpackage"),
        ("vocabulary", "parakeet_vocab.json"),
    ])
    assert cli.main(["check-layout", str(folder)]) == 1  # inferred: FluidAudio's default, v3
    out = capsys.readouterr().out
    assert "parakeet_encoder.mlpackage" in out and "rename to Encoder.mlpackage" in out and "mismatches" in out


def test_wrong_dtype_and_shape_are_named(save_mlprogram, tmp_path):
    from coremltools.converters.mil import Builder as mb
    from coremltools.converters.mil.mil import types

    @mb.program(input_specs=[mb.TensorSpec((1, 1), types.fp32), mb.TensorSpec((1,), types.int32),
                             mb.TensorSpec((2, 1, 640)), mb.TensorSpec((2, 1, 640))])
    def prog(targets, target_length, h_in, c_in):
        decoder = mb.reshape(x=h_in, shape=[1, 640, 2], name="decoder")
        return decoder, mb.identity(x=h_in, name="h_out"), mb.identity(x=c_in, name="c_out")

    folder = tmp_path / fa.FOLDER["v3"]
    folder.mkdir()
    package = save_mlprogram(prog, "decoder")
    shutil.copytree(package, folder / "Decoder.mlpackage")
    report = check_layout(folder, only=["decoder"])
    found = [(f.kind, f.subject) for f in report.of("mismatch")]
    # The program's inputs are named after its arguments.
    assert ("dtype", "Decoder.targets") in found
    assert ("shape", "Decoder.decoder") in found
    assert ("vocabulary", "parakeet_vocab.json") in found
    assert report.sizes["H"] == 640 and report.sizes["L"] == 2 and report.of("size") == []


def test_vocabulary_and_bundle_findings(tiny_v3, tmp_path):
    folder = tmp_path / fa.FOLDER["v3"]
    shutil.copytree(tiny_v3.folder, folder)
    (folder / fa.VOCABULARY_FILE).write_text(json.dumps(["a", "b"]))
    (folder / "Encoder.mlmodelc").mkdir()  # no coremldata.bin: not a compiled model
    (folder / "README.md").write_text("notes")
    report = check_layout(folder)
    assert ("vocabulary", fa.VOCABULARY_FILE) in _kinds(report) and ("compiled", "Encoder.mlmodelc") in _kinds(report)
    assert [f.subject for f in report.findings if f.kind == "extra"] == ["README.md"]
    assert report.exit_code == 1
    (folder / fa.VOCABULARY_FILE).write_text(json.dumps({"0": "a", "2": "b"}))
    assert any("without gaps" in f.message for f in check_layout(folder).of("mismatch"))
    # A compiled bundle alone is loadable by FluidAudio but unreadable by coremltools: said, not checked.
    (folder / "Encoder.mlmodelc" / "coremldata.bin").write_bytes(b"\0")
    shutil.rmtree(folder / "Encoder.mlpackage")
    (folder / fa.VOCABULARY_FILE).write_text(json.dumps({str(i): f"p{i}" for i in range(32)}))
    report = check_layout(folder)
    assert report.exit_code == 0 and ("unchecked", "Encoder.mlmodelc") in _kinds(report)
    assert "Encoder" not in report.checked


def test_unreadable_folders_exit_2(tmp_path, capsys):
    assert cli.main(["check-layout", str(tmp_path / "nowhere")]) == 2
    assert "no such folder" in capsys.readouterr().err
    folder = tmp_path / fa.FOLDER["v3"]
    (folder / "Encoder.mlpackage").mkdir(parents=True)
    with pytest.raises(LayoutUnreadable, match="Encoder.mlpackage: coremltools cannot read it"):
        check_layout(folder)
    assert cli.main(["check-layout", str(folder), "--json"]) == 2
    assert capsys.readouterr().out == ""
    assert cli.main(["check-layout", str(folder), "--only", "mel_encoder"]) == 2


def test_the_contract_table_states_the_chunking_fluidaudio_uses():
    """ChunkProcessor.swift:59-75 at the default mel-context settings (AsrTypes.swift:82-85)."""
    assert fa.CHUNKING["v2"] == fa.ChunkingFact(240000, 238080, 1280, 32000, 206080)
    assert fa.CHUNKING["v3"] == fa.ChunkingFact(240000, 239360, 0, 32000, 207360)
    for facts in fa.MODELS.values():
        assert [m.stem for m in facts][:3] == ["Preprocessor", "Encoder", "Decoder"]
        assert all(m.component in COMPONENTS for m in facts)
    assert np.all([s.source.path.startswith(("Sources/", "Documentation/")) for s in fa.RUNTIME_SIZES])


# --------------------------------------------------------------------------- the 0.6B presets (slow)


@pytest.mark.slow
@pytest.mark.parametrize("preset", ["v3", "v2"])
def test_06b_presets_pass_the_strict_check(preset, tmp_path):
    """Parakeet TDT 0.6B shapes: the encoder and joint FluidAudio loads, sizes and all. Many minutes; ``-m slow``."""
    out = tmp_path / "models"
    assert cli.main(["export", "--layout", "fluidaudio", "--preset", preset, "--only", "encoder,joint_decision",
                     "--out", str(out), "--quiet"]) == 0
    folder = out / fa.FOLDER[preset]
    report = check_layout(folder, only=["encoder", "joint_decision"], strict=True)
    assert report.exit_code == 0, report.table()
    joint = "JointDecisionv3" if preset == "v3" else "JointDecision"
    assert report.checked == ["Encoder", joint]
    assert report.sizes["D"] == 1024 and report.sizes["H"] == 640 and report.sizes["V"] == fa.RUNTIME_SIZES[3].values[preset]
    assert report.sizes.get("K") == (fa.PUBLISHED_TOP_K if preset == "v3" else None)
