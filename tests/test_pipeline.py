"""The end-to-end pipeline and `parakeet-nb transcribe`: transcript-level parity of variants."""

import json

import numpy as np
import pytest
import soundfile as sf

from parakeet_nb import cli
from parakeet_nb.transcribe import pipeline
from parakeet_nb.frontend.audio import data_clip


@pytest.fixture(scope="module")
def clips():
    rng = np.random.default_rng(3)
    return {
        "speech_short": data_clip("speech_short.wav").samples,
        "speech_15s": data_clip("speech_15s.wav").samples,
        "noise_4s": (0.1 * rng.standard_normal(64000)).astype(np.float32),
        "tone_1s": (0.5 * np.sin(2 * np.pi * 300 * np.arange(16000) / 16000)).astype(np.float32),
    }


@pytest.mark.parametrize("name", ["speech_short", "speech_15s", "noise_4s", "tone_1s"])
def test_split_fused_and_chunked_give_identical_tokens(tiny_modules, clips, name):
    results = {v: pipeline.transcribe(tiny_modules, clips[name], v) for v in pipeline.VARIANTS}
    split = results["split"]
    assert len(split.tokens) > 0, "random weights should emit tokens; the comparison would be empty"
    for variant in ("fused", "chunked"):
        assert results[variant].tokens == split.tokens, variant
        assert results[variant].timestamps == split.timestamps, variant


def test_encoder_outputs_of_variants_agree(tiny_modules, clips):
    a, la = pipeline.encode(tiny_modules, clips["speech_short"], "split")
    b, lb = pipeline.encode(tiny_modules, clips["speech_short"], "chunked")
    assert int(la[0]) == int(lb[0]) == 35947 // 160 // 8 + 1 - (1 if (35947 // 160) % 8 == 0 else 0)
    assert float((a - b).abs().max()) < 1e-3


@pytest.mark.parametrize(
    "bad, match",
    [(np.zeros(240001, np.float32), "1 to 240000"), (np.zeros((2, 10), np.float32), "1-D"),
     (np.array([0.0, np.nan], np.float32), "NaN")],
)
def test_window_rejects_bad_waveforms(bad, match):
    with pytest.raises(ValueError, match=match):
        pipeline.window(bad)


def test_unknown_variant(tiny_modules):
    with pytest.raises(ValueError, match="unknown variant"):
        pipeline.encode(tiny_modules, np.zeros(1600, np.float32), "magic")


def test_transcribe_cli_json(capsys, tmp_path):
    assert cli.main(["transcribe", "data/speech_short.wav", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["model"] == "preset:tiny" and doc["variant"] == "split"
    assert len(doc["tokens"]) == len(doc["timestamps"]) > 0
    assert doc["timestamps"] == sorted(doc["timestamps"])


def test_transcribe_cli_converts_and_says_so(capsys, tmp_path):
    stereo_44k = tmp_path / "stereo.wav"
    t = np.arange(44100) / 44100
    sf.write(stereo_44k, np.stack([np.sin(2 * np.pi * 200 * t)] * 2, axis=1) * 0.3, 44100)
    assert cli.main(["transcribe", str(stereo_44k), "--json"]) == 0
    captured = capsys.readouterr()
    assert "mixed 2 channels down to mono" in captured.err
    assert "resampled from 44100 Hz to 16000 Hz" in captured.err
    assert json.loads(captured.out)["notes"]


@pytest.mark.parametrize("make, match", [
    (lambda p: p, "no such file"),
    (lambda p: (p.write_text("not audio"), p)[1], "not a readable audio file"),
    (lambda p: (sf.write(p, np.zeros(16000 * 16), 16000), p)[1], "longer than the 15 s window"),
])
def test_transcribe_cli_rejects_bad_files(capsys, tmp_path, make, match):
    path = make(tmp_path / "clip.wav")
    assert cli.main(["transcribe", str(path)]) == 2
    err = capsys.readouterr().err
    assert match in err and err.count("\n") == 1


# --------------------------------------------------------------------------- every variant, PyTorch and exported


def test_exported_components_are_front_end_plus_decoding():
    assert pipeline.exported_components(["fused"]) == ["mel_encoder", "decoder", "joint_decision"]
    assert pipeline.exported_components(["chunked", "split"]) == [
        "preprocessor", "encoder", "mel_encoder_chunked", "decoder", "joint_decision"]
    assert pipeline.exported_components([]) == ["decoder", "joint_decision"]
    with pytest.raises(ValueError, match="unknown variant 'magic'"):
        pipeline.exported_components(["split", "magic"])


def test_transcribe_all_pytorch_and_exported(tiny_modules, tiny_export, clips):
    result = pipeline.transcribe_all(tiny_modules, clips["speech_short"], exported=pipeline.VARIANTS,
                                     export_dir=tiny_export)
    assert [t.variant for t in result.runs] == [
        "split", "fused", "chunked",
        "split (exported packages, fp32)", "fused (exported packages, fp32)", "chunked (exported packages, fp32)"]
    assert result.agree and result.correct is None and result.runs[0].tokens
    lines = result.table().splitlines()
    # the tiny preset has no tokenizer: the table shows token counts
    assert lines[0].split() == ["split", "(PyTorch)", str(len(result.runs[0].tokens)), "tokens"]
    assert lines[-1] == "same tokens at the same times from every run: True" and len(lines) == 7


def test_transcripts_verdicts_and_table():
    def run(variant, text, tokens):
        return pipeline.Transcript(variant, tokens, [0.0] * len(tokens), [1] * len(tokens), text, 3)

    same = pipeline.Transcripts(
        [run("split", "one two", [1, 2]), run("split (exported packages, fp32)", "one two", [1, 2])], reference="one  two"
    )
    assert same.agree and same.correct is True
    assert same.table().splitlines() == [
        "reference                        one  two",
        "split (PyTorch)                  one two",
        "split (exported packages, fp32)  one two",
        "same tokens at the same times from every run: True",
        "equal to the reference: True",
    ]
    later = run("fused", "one two", [1, 2])
    later.timestamps = [0.0, 0.08]
    assert not pipeline.Transcripts([same.runs[0], later]).agree, "same tokens at other times"
    differ = pipeline.Transcripts([run("split", "one two", [1, 2]), run("fused", "one", [1])], reference="one two")
    assert not differ.agree and differ.correct is False
    assert differ.table().splitlines()[-2:] == [
        "same tokens at the same times from every run: False", "equal to the reference: False"]


def test_transcribe_all_rejects_bad_requests(tiny_modules):
    wave = np.zeros(1600, np.float32)
    with pytest.raises(ValueError, match="need export_dir"):
        pipeline.transcribe_all(tiny_modules, wave, (), ("split",))
    with pytest.raises(ValueError, match="nothing to run"):
        pipeline.transcribe_all(tiny_modules, wave, ())
    with pytest.raises(ValueError, match="unknown variant"):
        pipeline.transcribe_all(tiny_modules, wave, ("magic",))
