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


def test_transcribe_all_pytorch_and_exported(nemo_export, clips):
    """fp32 packages (``--precision fp32``) against PyTorch: the same tokens at the same times.
    (The default export's float16 packages of a random-weight model need not agree.)"""
    folder, modules = nemo_export
    result = pipeline.transcribe_all(modules, clips["speech_short"], exported=["split"], export_dir=folder)
    assert [t.variant for t in result.runs] == ["split", "fused", "chunked", "split (exported packages, as typed)"]
    assert result.agree and result.correct is None and result.runs[0].tokens
    lines = result.table().splitlines()
    assert lines[0].split()[:2] == ["split", "(PyTorch)"] and result.runs[0].text is not None
    assert lines[-1] == "same tokens at the same times from every run: True" and len(lines) == 5


def test_transcribe_all_shows_token_counts_without_a_tokenizer(tiny_modules, clips):
    result = pipeline.transcribe_all(tiny_modules, clips["speech_short"], pytorch=["split"])
    assert result.table().splitlines()[0].split() == ["split", "(PyTorch)", str(len(result.runs[0].tokens)), "tokens"]


def test_transcripts_verdicts_and_table():
    def run(variant, text, tokens):
        return pipeline.Transcript(variant, tokens, [0.0] * len(tokens), [1] * len(tokens), text, 3)

    same = pipeline.Transcripts(
        [run("split", "one two", [1, 2]), run("split (exported packages, as typed)", "one two", [1, 2])], reference="one  two"
    )
    assert same.agree and same.correct is True
    assert same.table().splitlines() == [
        "reference                            one  two",
        "split (PyTorch)                      one two",
        "split (exported packages, as typed)  one two",
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


# --------------------------------------------------------------------------- transcribe --packages


@pytest.fixture(scope="module")
def nemo_export(tiny_nemo, tmp_path_factory):
    """The split set of ``tiny_nemo`` exported at fp32: ``(folder, modules)``."""
    from parakeet_nb.coreml.export import export
    from parakeet_nb.model.checkpoint import load_nemo

    modules = load_nemo(tiny_nemo)
    out = tmp_path_factory.mktemp("nemo_export") / "parakeet_coreml"
    export(modules, out, only=pipeline.exported_components(["split"]), precision="fp32")
    return out, modules


def _one_error_line(capsys, argv) -> str:
    assert cli.main(argv) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.strip().splitlines()) == 1, err
    return err.strip()


def test_transcribe_packages_gives_pytorch_words_with_the_checkpoint_tokenizer(nemo_export, tiny_nemo, clips, capsys):
    folder, modules = nemo_export
    assert cli.main(["transcribe", "data/speech_short.wav", "--packages", str(folder), "--nemo", str(tiny_nemo),
                     "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    reference = pipeline.transcribe(modules, clips["speech_short"], "split")
    assert len(reference.tokens) > 0
    assert doc["model"] == "checkpoint:parakeet_tiny.nemo" and doc["variant"].startswith("split (exported packages")
    assert doc["tokens"] == reference.tokens and doc["text"] == reference.text is not None


def test_transcribe_packages_errors_are_one_line(nemo_export, tiny_nemo, capsys, tmp_path):
    folder, _ = nemo_export
    wav = "data/speech_short.wav"
    err = _one_error_line(capsys, ["transcribe", wav, "--packages", str(folder), "--variant", "chunked",
                                   "--nemo", str(tiny_nemo)])
    assert "the chunked variant needs parakeet_mel_encoder_chunked.mlpackage, missing here" in err
    assert "--only mel_encoder_chunked,decoder,joint_decision" in err
    err = _one_error_line(capsys, ["transcribe", wav, "--packages", str(folder)])
    assert "made from checkpoint parakeet_tiny.nemo, not found at" in err and "--nemo" in err
    err = _one_error_line(capsys, ["transcribe", wav, "--packages", str(folder), "--preset", "tiny"])
    assert "drop --preset" in err
    err = _one_error_line(capsys, ["transcribe", wav, "--packages", str(tmp_path)])
    assert "no metadata.json" in err
    other = tmp_path / "other.nemo"
    other.write_bytes(b"not the checkpoint")
    err = _one_error_line(capsys, ["transcribe", wav, "--packages", str(folder), "--nemo", str(other)])
    assert "sha256 differs" in err


def test_transcribe_packages_runs_the_default_export_of_a_preset(tiny_export, clips, capsys):
    assert cli.main(["transcribe", "data/speech_short.wav", "--packages", str(tiny_export), "--variant", "chunked",
                     "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    direct = pipeline.transcribe_exported(tiny_export, clips["speech_short"], "chunked")
    assert doc["model"] == "preset:tiny" and doc["text"] is None
    assert doc["tokens"] == direct.tokens and len(direct.tokens) > 0
