"""`parakeet-nb plan` and `parakeet-nb run` on the tiny exports."""

import json

import numpy as np
import pytest

from parakeet_nb import cli
from parakeet_nb.ane.layout import device_error_text


def test_plan_greedy_fails_the_fused_model_with_the_device_text(tiny_export, capsys, tmp_path):
    """The default export keeps the fused model float32 (CPU/GPU); read as if fp16-typed it fails."""
    png = tmp_path / "plan.png"
    code = cli.main(["plan", str(tiny_export / "parakeet_mel_encoder.mlpackage"),
                     "--compute-units", "CPU_AND_NE", "--png", str(png), "--json", "--assume-fp16"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 1 and not doc["valid"]
    assert doc["validation_error"] == device_error_text("N1D1C1H1W240000")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plan_typed_default_fails_an_fp16_fused_model(tiny_modules, capsys, tmp_path):
    """What users ship when they convert at coremltools' default (FLOAT16): the typed reading fails it."""
    from parakeet_nb.coreml.export import export

    export(tiny_modules, tmp_path / "fp16", only=["mel_encoder"], precision="fp16")
    fused = str(tmp_path / "fp16" / "parakeet_mel_encoder.mlpackage")
    code = cli.main(["plan", fused, "--compute-units", "CPU_AND_NE", "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 1 and doc["typed_execution"] and doc["validation_error"] == device_error_text("N1D1C1H1W240000")
    assert cli.main(["plan", fused, "--compute-units", "CPU_AND_GPU"]) == 0  # no ANE, no failure


@pytest.mark.parametrize("name", ["parakeet_encoder.mlpackage", "parakeet_mel_encoder_chunked.mlpackage"])
def test_plan_passes_the_encoder_and_the_chunked_model(tiny_export, capsys, name):
    assert cli.main(["plan", str(tiny_export / name)]) == 0
    assert "ANE validation" in capsys.readouterr().out


def test_plan_unreadable_input(capsys, tmp_path):
    assert cli.main(["plan", str(tmp_path)]) == 2
    assert "not a Core ML package" in capsys.readouterr().err


def test_run_audio_then_npy_inputs(tiny_export, capsys, tmp_path):
    assert cli.main(["run", str(tiny_export / "parakeet_preprocessor_chunked.mlpackage"),
                     "--audio", "data/speech_short.wav", "--out", str(tmp_path)]) == 0
    mel = np.load(tmp_path / "mel.npy")
    assert mel.shape == (1, 128, 1501) and int(np.load(tmp_path / "mel_length.npy")[0]) == 35947 // 160
    assert cli.main(["run", str(tiny_export / "parakeet_encoder.mlpackage"), "--input", f"mel={tmp_path / 'mel.npy'}",
                     "--input", f"mel_length={tmp_path / 'mel_length.npy'}", "--out", str(tmp_path)]) == 0
    assert np.load(tmp_path / "encoder.npy").shape[:2] == (1, 64)


@pytest.mark.parametrize("args, match", [
    (["--input", "mel"], "expected NAME=FILE.npy"),
    (["--input", "nope=x.npy"], "has no input 'nope'"),
    (["--input", "mel=/nonexistent.npy"], "cannot read"),
    ([], "missing inputs mel, mel_length"),
])
def test_run_errors(tiny_export, capsys, args, match):
    assert cli.main(["run", str(tiny_export / "parakeet_encoder.mlpackage"), *args]) == 2
    assert match in capsys.readouterr().err
