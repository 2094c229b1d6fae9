"""The spoken-digits model: WER, the committed test set, the shipped checkpoint and its exports.

``data/digits_tdt.nemo`` is made by ``python -m parakeet_nb.digits train``; the committed
test set ``data/digits/test/`` by ``data/digits/make_digits.py`` (voice variants the
training set never saw).
"""

from __future__ import annotations

import json
import shutil
import wave
from pathlib import Path

import numpy as np
import pytest
import torch

from parakeet_nb.digits import corpus, evaluation, training, wer
from parakeet_nb.paths import ROOT

TEST_DIR = ROOT / "data" / "digits" / "test"
MANIFEST = TEST_DIR / "manifest.jsonl"
CHECKPOINT = ROOT / "data" / "digits_tdt.nemo"
#: Clips (by index in the manifest) whose transcripts must agree across the pipeline variants.
PIPELINE_CLIPS = (0, 21, 47)


@pytest.fixture(scope="module")
def make_digits():
    return corpus.data_script()


@pytest.fixture(scope="module")
def manifest() -> list[dict]:
    return [json.loads(line) for line in MANIFEST.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def test_set():
    return corpus.load_split(MANIFEST)


@pytest.fixture(scope="module")
def digits_modules():
    from parakeet_nb.model.checkpoint import load_nemo

    return load_nemo(CHECKPOINT)


# --------------------------------------------------------------------------- word error rate


@pytest.mark.parametrize(
    ("ref", "hyp", "edits"),
    [
        ("one two three", "one two three", 0),
        ("one two three", "one three", 1),  # a deletion
        ("one two three", "one two two three", 1),  # an insertion
        ("one two three", "one five three", 1),  # a substitution
        ("one two three four", "two three four five", 2),  # delete "one", insert "five" (not 4 substitutions)
        ("one two three", "", 3),
        ("", "one two", 2),
        ("", "", 0),
        ("oh seven", "zero seven", 1),  # "oh" and "zero" are different words
        ("nine nine nine", "nine", 2),
        ("three one four", "four one three", 2),  # two substitutions
    ],
)
def test_edit_distance_hand_checked(ref, hyp, edits):
    assert wer.edit_distance(ref.split(), hyp.split()) == edits
    assert wer.edit_distance(hyp.split(), ref.split()) == edits  # symmetric
    assert wer.word_errors(ref, hyp) == (edits, len(ref.split()))


def test_wer_is_corpus_level():
    refs = ["one two three", "four five"]
    hyps = ["one two three", "four six five"]  # 1 insertion over 5 reference words
    assert wer.wer(refs, hyps) == pytest.approx(0.2)
    # not the mean of per-utterance rates (0 and 0.5)
    refs = ["one", "two three four five six seven eight nine"]
    assert wer.wer(refs, ["", refs[1]]) == pytest.approx(1 / 9)
    assert wer.wer(["one two"], ["three four five"]) == pytest.approx(1.5)  # can exceed 1
    assert wer.wer(["  one   two "], ["one two"]) == 0.0  # whitespace does not count


def test_wer_rejects_undefined_cases():
    with pytest.raises(ValueError, match="2 references but 1"):
        wer.wer(["one", "two"], ["one"])
    with pytest.raises(ValueError, match="undefined"):
        wer.wer(["", " "], ["one", ""])


# --------------------------------------------------------------------------- the committed test set


def test_manifest_matches_the_files(manifest, make_digits):
    assert 40 <= len(manifest) <= 200
    names = [e["path"] for e in manifest]
    assert len(set(names)) == len(names)
    assert sorted(p.name for p in TEST_DIR.glob("*.wav")) == sorted(names), "WAV files not in the manifest or missing"
    total = 0
    for e in manifest:
        path = TEST_DIR / e["path"]
        with wave.open(str(path)) as w:
            assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (16000, 1, 2), e["path"]
            assert w.getnframes() == e["samples"], e["path"]
        total += path.stat().st_size
        words = e["text"].split()
        assert 1 <= len(words) <= 8 and set(words) <= set(corpus.WORDS), e["text"]
        assert e["text"] == " ".join(words)
        assert e["voice"] in make_digits.VOICES
        assert make_digits.SPEED_RANGE[0] <= e["speed"] <= make_digits.SPEED_RANGE[1]
        assert make_digits.PITCH_RANGE[0] <= e["pitch"] <= make_digits.PITCH_RANGE[1]
        assert 0.2 < e["samples"] / 16000 < 6.0
    assert total < 3_000_000, f"the committed test set is {total} bytes"
    assert {len(e["text"].split()) for e in manifest} == set(range(1, 9))


def test_test_variants_are_never_used_in_training(manifest, make_digits):
    used = {e["variant"] for e in manifest}
    assert used == set(make_digits.TEST_VARIANTS)
    assert not used & set(make_digits.TRAIN_VARIANTS)
    assert "" not in used  # the plain voices are training voices
    info = json.loads((TEST_DIR / "info.json").read_text())
    assert info["variants"] == list(make_digits.TEST_VARIANTS)


def test_digit_words_match_the_data_script(make_digits):
    assert tuple(corpus.WORDS) == tuple(make_digits.WORDS)


def test_test_set_is_reproducible(tmp_path, make_digits, manifest):
    """The script remakes the committed test set byte for byte (same espeak-ng and sox)."""
    if shutil.which("espeak-ng") is None or shutil.which("sox") is None:
        pytest.skip("espeak-ng or sox not installed")
    info = json.loads((TEST_DIR / "info.json").read_text())
    if make_digits.versions() != info["tools"]:
        pytest.skip(f"tool versions differ from the committed set's {info['tools']}")
    subset = 8
    make_digits.main(["--splits", "test", "--test", str(subset), "--test-dir", str(tmp_path), "--jobs", "1"])
    remade = [json.loads(line) for line in (tmp_path / "manifest.jsonl").read_text().splitlines()]
    assert remade == manifest[:subset]
    for e in remade:
        assert (tmp_path / e["path"]).read_bytes() == (TEST_DIR / e["path"]).read_bytes(), e["path"]


# --------------------------------------------------------------------------- training code


def test_tokenizer_has_one_piece_per_word(tmp_path):
    import sentencepiece as spm

    folder = corpus.train_tokenizer(tmp_path / "tok")
    sp = spm.SentencePieceProcessor(model_file=str(folder / "tokenizer.model"))
    assert sp.get_piece_size() == training.DIGITS_PRESET.vocab_size
    for word in corpus.WORDS:
        assert sp.encode(word, out_type=str) == ["▁" + word]
    assert len(sp.encode("three seven two nine oh")) == 5
    assert (folder / "vocab.txt").read_text().split("\n")[: sp.get_piece_size()] == [
        sp.id_to_piece(i) for i in range(sp.get_piece_size())
    ]


def test_length_batches_cover_every_index_once():
    lengths = list(np.random.default_rng(1).integers(10, 500, size=103))
    batches = corpus.length_batches(lengths, 8, np.random.default_rng(0), pool=4)
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(103))
    assert all(1 <= len(b) <= 8 for b in batches)
    assert batches == corpus.length_batches(lengths, 8, np.random.default_rng(0), pool=4)  # seeded


def test_compose_windows(test_set):
    """Seeded 3-15 s windows of several clips: the clips' samples at their places, silence
    around them, the transcripts joined in order."""
    windows = corpus.compose_windows(test_set, 30, seed=0)
    assert [w.text for w in windows] == [w.text for w in corpus.compose_windows(test_set, 30, seed=0)]
    assert [w.text for w in windows] != [w.text for w in corpus.compose_windows(test_set, 30, seed=1)]
    by_path = {e.entry["path"]: e for e in test_set}
    for w in windows:
        parts = [by_path[p] for p in w.entry["parts"]]
        assert 3.0 <= w.seconds <= 15.0 and w.entry["samples"] == len(w.samples)
        assert 0.0 <= w.entry["lead"] <= 6.0 and w.text == " ".join(p.text for p in parts)
        starts = w.entry["starts"]
        assert w.entry["lead"] == round(starts[0] / 16000, 3) and not w.samples[: starts[0]].any()
        for k, (p, start) in enumerate(zip(parts, starts)):  # each clip in its place, then silence
            end = start + len(p.samples)
            assert np.array_equal(w.samples[start:end], p.samples)
            following = starts[k + 1] if k + 1 < len(starts) else len(w.samples)
            assert not w.samples[end:following].any()
            assert following == len(w.samples) or 1600 <= following - end <= 19200  # 0.1-1.2 s
    assert max(len(w.entry["parts"]) for w in windows) >= 3 and max(w.entry["lead"] for w in windows) > 3.0
    with pytest.raises(ValueError, match="at least one"):
        corpus.compose_windows([], 1, seed=0)


def test_spec_augment_masks_within_limits():
    mel = torch.randn(3, 128, 100) + 5.0  # no zeros before masking
    lengths = torch.tensor([100, 60, 20])
    out = corpus.spec_augment(mel, lengths, torch.Generator().manual_seed(0), freq_masks=2, freq_width=10,
                              time_masks=2, time_width=0.1)
    again = corpus.spec_augment(mel, lengths, torch.Generator().manual_seed(0), freq_masks=2, freq_width=10,
                                time_masks=2, time_width=0.1)
    assert torch.equal(out, again)
    assert not torch.equal(out, mel) and (mel != 0).all()  # the input is not modified
    for b in range(3):
        zero_bins = (out[b] == 0).all(dim=1).sum()
        zero_frames = (out[b] == 0).all(dim=0).sum()
        assert zero_bins <= 20
        assert zero_frames <= 2 * max(1, int(int(lengths[b]) * 0.1))


def test_lr_schedule():
    cfg = training.TrainConfig(lr=1e-3, warmup_steps=10, min_lr_ratio=0.1)
    lrs = [training.lr_at(s, 100, cfg) for s in range(100)]
    assert lrs[0] == pytest.approx(1e-4) and lrs[9] == pytest.approx(1e-3)
    assert max(lrs) == pytest.approx(1e-3)
    assert all(a >= b for a, b in zip(lrs[9:], lrs[10:]))
    assert training.lr_at(100, 100, cfg) == pytest.approx(1e-4)


def test_cached_mels_match_batched_preprocessing(test_set, digits_modules):
    examples = test_set[:6]
    mels = corpus.compute_mels(digits_modules.preprocessor, examples, batch_size=4)
    for e, m in zip(examples, mels):
        batch = corpus.collate([e])
        with torch.inference_mode():
            single, length = digits_modules.preprocessor(input_signal=batch.audio, length=batch.audio_len)
        assert m.shape == (128, len(e.samples) // 160) and int(length) == m.shape[1]
        torch.testing.assert_close(m, single[0, :, : m.shape[1]], atol=1e-4, rtol=1e-4)


def test_training_step_reduces_the_loss(tmp_path, test_set):
    """A few steps of the real training code on committed clips lower the TDT loss."""
    import dataclasses

    from parakeet_nb.model.checkpoint import build_tdt_model

    preset = dataclasses.replace(training.DIGITS_PRESET, d_model=32, n_layers=1, subsampling_conv_channels=8,
                                 pred_hidden=32, joint_hidden=32)
    cfg = training.TrainConfig(preset=preset, spec_augment=False, omega=0.0)
    torch.manual_seed(0)
    model = build_tdt_model(preset, corpus.train_tokenizer(tmp_path / "tok"))
    model.train()
    examples = test_set[:8]
    mels = corpus.compute_mels(model.preprocessor, examples)
    batch = corpus.collate_mels(mels, [model.tokenizer.text_to_ids(e.text) for e in examples],
                                pad_id=model.decoder.blank_idx)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(6):
        loss, frames = training.batch_loss(model, batch, cfg, generator)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    expected = max(m.shape[1] for m in mels)
    for _ in range(3):  # three stride-2 convolutions (kernel 3, padding 1)
        expected = (expected - 1) // 2 + 1
    assert frames == expected
    assert all(np.isfinite(losses)) and losses[-1] < losses[0]


def test_train_end_to_end_is_deterministic(tmp_path, monkeypatch):
    """``train`` twice on a few committed clips (a toy preset, one epoch): the same weights,
    a checkpoint that ``load_nemo`` restores, and a model card."""
    import dataclasses

    from parakeet_nb.model.checkpoint import load_nemo

    data = tmp_path / "data"
    for split in ("train", "val", "heldout", "test"):  # present, so no data is synthesised
        (data / split).mkdir(parents=True)
        lines = MANIFEST.read_text().splitlines()[: 24 if split == "train" else 8]
        shutil.copy(TEST_DIR / "info.json", data / split / "info.json")
        entries = [json.loads(line) for line in lines]
        for e in entries:
            e["path"] = str(TEST_DIR / e["path"])  # absolute paths stay absolute
        (data / split / "manifest.jsonl").write_text("".join(json.dumps(e) + "\n" for e in entries))
    preset = dataclasses.replace(training.DIGITS_PRESET, d_model=32, n_layers=1, subsampling_conv_channels=8,
                                 pred_hidden=32, joint_hidden=32)
    monkeypatch.setattr(evaluation, "EVALUATION_WINDOWS", {"test": 4, "heldout": 4})
    states = []
    for run in ("a", "b"):
        cfg = training.TrainConfig(
            preset=preset, epochs=1, batch_size=8, warmup_steps=2, windows=4, val_windows=2,
            data_dir=str(data), test_dir=str(data / "test"),
            out=str(tmp_path / f"{run}.nemo"), card=str(tmp_path / f"{run}.md"), progress=False,
        )
        result = training.train(cfg)
        assert result.steps == 4 and len(result.history) == 1  # 24 clips and 4 windows in batches of 8
        assert {k: v.clips for k, v in result.evaluations.items()} == {
            "test": 8, "test windows": 4, "heldout": 8, "heldout windows": 4}
        modules = load_nemo(cfg.out)
        states.append({
            f"{m}.{k}": v for m in ("encoder", "decoder", "joint") for k, v in getattr(modules, m).state_dict().items()
        })
    assert states[0].keys() == states[1].keys()
    for k in states[0]:
        assert torch.equal(states[0][k], states[1][k]), k
    card = (tmp_path / "a.md").read_text()
    assert "python -m parakeet_nb.digits train" in card and "f4, m5, klatt4" in card


# --------------------------------------------------------------------------- the shipped checkpoint


def test_checkpoint_loads(digits_modules):
    m = digits_modules
    assert m.durations == (0, 1, 2, 3, 4)
    assert m.vocab_size == training.DIGITS_PRESET.vocab_size and m.blank_id == m.vocab_size
    assert m.d_model == training.DIGITS_PRESET.d_model and m.pred_rnn_layers == 1
    assert m.tokenizer is not None
    assert m.tokenizer.ids_to_text(m.tokenizer.text_to_ids("three seven two nine")) == "three seven two nine"
    assert CHECKPOINT.stat().st_size < 10_000_000


def test_checkpoint_wer_on_held_out_voices(digits_modules, test_set):
    """The whole committed test set (voice variants never seen in training): WER <= 5 %."""
    result = evaluation.evaluate_examples(digits_modules, test_set, "test")
    wrong = [(r, h) for r, h in zip(result.refs, result.hyps) if r.split() != h.split()]
    assert result.words == sum(len(e.text.split()) for e in test_set)
    assert result.wer <= 0.05, f"{result.summary()}; errors: {wrong[:10]}"


def test_pipeline_variants_agree(digits_modules, test_set):
    from parakeet_nb.transcribe import pipeline

    for i in PIPELINE_CLIPS:
        clip = test_set[i]
        waveform = clip.samples.astype(np.float32) / 32768.0
        texts = {v: pipeline.transcribe(digits_modules, waveform, variant=v) for v in ("split", "fused", "chunked")}
        split = texts["split"]
        assert split.text is not None and split.tokens, f"clip {i}: nothing recognised"
        for v, t in texts.items():
            assert t.tokens == split.tokens and t.text == split.text, f"clip {i}: {v} {t.text!r} vs split {split.text!r}"
        # the padded 15 s window gives the same words as the batched evaluation
        assert split.text.split() == evaluation.transcribe_examples(digits_modules, [clip])[0].split()


def test_held_out_clip(manifest):
    clip = corpus.held_out_clip()
    assert corpus.NOTEBOOK_CLIP == 21
    assert clip.text == manifest[21]["text"] == "five five one eight zero nine"
    assert clip.voice == f"{manifest[21]['voice']}+{manifest[21]['variant']}" == "en-gb-scotland+linda"
    assert clip.samples.dtype == np.int16
    wave = clip.waveform
    assert wave.dtype == np.float32 and np.array_equal(wave * 32768.0, clip.samples.astype(np.float32))
    assert corpus.held_out_clip(-1).text == manifest[-1]["text"]
    with pytest.raises(IndexError, match="48 clips"):
        corpus.held_out_clip(48)


def test_export_of_the_checkpoint(digits_modules, tmp_path):
    """The split set exported through the ``--nemo`` route transcribes a held-out clip right,
    run by the MIL executor, with the same tokens as PyTorch."""
    from parakeet_nb.transcribe import pipeline
    from parakeet_nb.model.checkpoint import load_nemo
    from parakeet_nb.coreml.export import export

    only = pipeline.exported_components(["split"])
    assert only == ["preprocessor", "encoder", "decoder", "joint_decision"]
    out = tmp_path / "digits_coreml"
    result = export(load_nemo(CHECKPOINT), out, only=only)
    assert [c.name for c in result.components] == only
    for c in result.components:
        assert (out / c.file).exists()
        assert c.trace_max_abs_diff < 1e-4
    metadata = json.loads((out / "metadata.json").read_text())
    assert set(only) <= set(metadata["components"])
    clip = corpus.held_out_clip()
    runs = pipeline.transcribe_all(
        digits_modules, clip.waveform, ["split"], ["split"], export_dir=out, reference=clip.text
    )
    assert runs.agree and runs.correct, runs.table()
