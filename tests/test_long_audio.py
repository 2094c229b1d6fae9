"""Transcripts of any length: window geometry, the seam rule, and the digits model on >60 s concatenations.

The digits model (``data/digits_tdt.nemo``) is trained on single utterances and on 3-15 s
windows of several utterances with up to 6 s of silence before the first
(``parakeet_nb.digits.corpus.compose_windows``), so it hears speech anywhere in a 15 s
window. The end-to-end test requires a 70 s concatenation's transcript to have no more word
errors than the clips transcribed one by one, and compares the merge with a *seam-free
control* built from the same windows: each clip's words taken from the one window that holds
the whole clip farthest from its edges, using the known clip boundaries (which the merge
does not know). The merge may add no error to that control.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from parakeet_nb import cli
from parakeet_nb.digits import corpus, wer
from parakeet_nb.frontend.recipe import SAMPLE_RATE, WINDOW_SAMPLES
from parakeet_nb.paths import ROOT
from parakeet_nb.transcribe import long_audio as la
from parakeet_nb.transcribe import pipeline

# --------------------------------------------------------------------------- geometry


def test_plan_is_fluidaudio_stride_on_encoder_frames():
    plan = la.plan_windows(70 * SAMPLE_RATE)
    assert plan.stride_samples == 207360 == 162 * la.FRAME_SAMPLES  # FluidAudio's no-context stride
    assert plan.overlap_samples == 32640 and la.FRAME_SAMPLES == 1280
    assert plan.starts == (0, 207360, 414720, 622080, 829440, 1036800)
    spans = plan.spans
    assert spans[-1][1] == 70 * SAMPLE_RATE and all(b - a == WINDOW_SAMPLES for a, b in spans[:-1])
    assert spans[-1][1] - spans[-1][0] >= plan.overlap_samples
    lo, hi = plan.cut_bands()[0]
    assert (lo, hi) == pytest.approx((162 + 25.5 / 4, 187.5 - 25.5 / 4))


@pytest.mark.parametrize("samples, windows", [(1, 1), (WINDOW_SAMPLES, 1), (WINDOW_SAMPLES + 1, 2),
                                              (WINDOW_SAMPLES + 207360, 2), (WINDOW_SAMPLES + 207361, 3)])
def test_window_count(samples, windows):
    plan = la.plan_windows(samples)
    assert len(plan.starts) == windows and plan.spans[-1][1] == samples


@pytest.mark.parametrize("samples, overlap, match", [(0, 2.0, "at least 1"), (10, -1.0, "outside"), (10, 8.0, "outside")])
def test_plan_rejects(samples, overlap, match):
    with pytest.raises(ValueError, match=match):
        la.plan_windows(samples, overlap)


# --------------------------------------------------------------------------- the seam rule, synthetic tokens

BAND = (168.0, 181.0)  # the default band of seam 0 is (168.375, 181.125); round numbers here


def _w(tokens, frames):
    return la.WindowTokens(list(tokens), list(frames), [1] * len(tokens))


def test_cut_avoids_a_word_whose_copies_straddle_the_midpoint():
    # both windows hear word 7 around frame 174-175 (one frame of jitter across the midpoint 174.5)
    left, right = _w([1, 7, 2], [170, 174, 178]), _w([1, 7, 2], [170, 175, 178])
    merged, cuts = la.merge_windows([left, right], [BAND])
    assert merged.tokens == [1, 7, 2] and merged.frames == [170, 174, 178]
    assert cuts[0] not in (174, 175) and (cuts[0] < 174 or cuts[0] > 175)
    # plain midpoint ownership (left keeps < 174.5, right keeps >= 174.5) doubles it, and swapped copies drop it
    assert [t for t, f in zip(left.tokens, left.frames) if f < 174.5] + \
           [t for t, f in zip(right.tokens, right.frames) if f >= 174.5] == [1, 7, 7, 2]
    swapped, _ = la.merge_windows([_w([1, 7, 2], [170, 175, 178]), _w([1, 7, 2], [170, 174, 178])], [BAND])
    assert swapped.tokens == [1, 7, 2]


def test_cut_is_the_point_farthest_from_every_token():
    assert la.seam_cut([169, 171], [179], BAND) == 175.0  # widest gap 171..179, its middle
    assert la.seam_cut([], [], BAND) == 174.5  # no token: the centre
    assert la.seam_cut([100], [300], BAND) == 174.5  # tokens beyond the margin: the centre
    assert la.seam_cut([178], [178], BAND) == 174.0  # 0.32 s (the margin) before it, nearest the centre
    assert la.seam_cut([174], [174], BAND, margin=10) == 181.0  # a larger margin: the farthest band end
    assert la.seam_cut([174], [175], (174.0, 175.0)) == 174.5


def test_each_window_contributes_its_own_region_in_order():
    w0, w1, w2 = _w([1, 2, 3], [10, 150, 185]), _w([4, 5, 6, 7], [166, 176, 300, 349]), _w([8, 9], [330, 400])
    merged, cuts = la.merge_windows([w0, w1, w2], [BAND, (330.0, 343.0)])
    assert merged.frames == sorted(merged.frames)
    owners = [0 if f < cuts[0] else 1 if f < cuts[1] else 2 for f in merged.frames]
    assert owners == sorted(owners)
    assert merged.tokens == [1, 2, 5, 6, 9] and cuts == [172.0, 336.5]


def test_one_window_is_passed_through_and_bad_inputs_are_refused():
    w = _w([3, 1, 2], [0, 0, 40])
    merged, cuts = la.merge_windows([w], [])
    assert (merged.tokens, merged.frames, cuts) == ([3, 1, 2], [0, 0, 40], [])
    with pytest.raises(ValueError, match="need 1 cut bands"):
        la.merge_windows([w, w], [])
    with pytest.raises(ValueError, match="no windows"):
        la.merge_windows([], [])
    with pytest.raises(ValueError, match="empty cut band"):
        la.seam_cut([], [], (2.0, 1.0))


def test_transcribe_long_offsets_window_frames_with_a_fake_backend():
    """Window ``k`` reports its own start (in frames) as a token at local frame 100:
    the merged frames are absolute and the JSON carries frames and seconds."""
    def backend(window):
        start = int(np.rint(window[0]))  # the window's first sample holds its start frame
        return pipeline.Transcript("fake", [start], [100 * 0.08], [1], None, len(window) // 1280 + 1)

    total = 40 * SAMPLE_RATE
    wave = np.repeat(np.arange(total // 1280 + 1, dtype=np.float32), 1280)[:total]
    t = la.transcribe_long(wave, backend)
    starts = [s // 1280 for s in la.plan_windows(total).starts]
    assert t.tokens == starts and t.frames == [s + 100 for s in starts]
    assert t.timestamps == pytest.approx([f * 0.08 for f in t.frames])
    doc = t.as_dict()
    assert doc["frames"] == t.frames and len(doc["windows"]) == 3 and len(doc["cuts"]) == 2
    assert t.encoder_frames == starts[-1] + (total - starts[-1] * 1280) // 1280 + 1
    with pytest.raises(ValueError, match="NaN"):
        la.transcribe_long(np.full(10, np.nan, np.float32), backend)
    with pytest.raises(ValueError, match="1-D"):
        la.transcribe_long(np.zeros((2, 10), np.float32), backend)


# --------------------------------------------------------------------------- the digits model


@pytest.fixture(scope="module")
def digits_modules():
    from parakeet_nb.model.checkpoint import load_nemo

    return load_nemo(ROOT / "data" / "digits_tdt.nemo")


@pytest.fixture(scope="module")
def test_set():
    return corpus.load_split(corpus.TEST_DIR / "manifest.jsonl")


def words_in(tokens, frames, tokenizer, start, end):
    """Words of the tokens with frames in ``[start, end)`` samples."""
    ids = [t for t, f in zip(tokens, frames) if start <= f * la.FRAME_SAMPLES < end]
    return tokenizer.ids_to_text(ids).split() if ids else []


def seam_free_control(windows, plan, spans, tokenizer):
    """Each clip's words from the window holding most of the clip (all of it when one window
    can), farthest from its edges, between the midpoints of the silences around the clip."""
    words = []
    bounds = [0] + [(a_end + b_start) // 2 for (_, a_end, _), (b_start, _, _) in zip(spans, spans[1:])] + [1 << 40]
    for k, (start, end, _) in enumerate(spans):
        j = max(range(len(plan.spans)), key=lambda j: (min(end, plan.spans[j][1]) - max(start, plan.spans[j][0]),
                                                        min(start - plan.spans[j][0], plan.spans[j][1] - end)))
        words += words_in(windows[j].tokens, windows[j].frames, tokenizer, bounds[k], bounds[k + 1])
    return words


def run_long(modules, wave):
    """The long transcript, and every window's tokens in clip frames (recorded from the backend)."""
    backend, seen = la.pytorch_window(modules), []

    def recording(window):
        seen.append(backend(window))
        return seen[-1]

    t = la.transcribe_long(wave, recording, tokenizer=modules.tokenizer)
    plan = la.plan_windows(len(wave))
    windows = [la.WindowTokens(w.tokens, [round(s / 0.08) + plan.frame_offset(k) for s in w.timestamps], w.durations)
               for k, w in enumerate(seen)]
    return t, windows, plan


def test_short_clip_is_exactly_the_pipeline(digits_modules, test_set):
    clip = test_set[21].waveform
    direct = pipeline.transcribe(digits_modules, clip)
    t = la.transcribe_long(clip, la.pytorch_window(digits_modules), tokenizer=digits_modules.tokenizer)
    assert (t.tokens, t.timestamps, t.durations, t.text, t.encoder_frames) == \
           (direct.tokens, direct.timestamps, direct.durations, direct.text, direct.encoder_frames)
    assert t.text == test_set[21].text and t.cuts == [] and t.notes == []


def test_long_concatenation_with_words_on_the_seams(digits_modules, test_set):
    """A 70 s concatenation (6 windows) with a clip centred on the midpoint of seams 0 and 2."""
    plan = la.plan_windows(70 * SAMPLE_RATE)
    midpoints = tuple((plan.starts[k + 1] + plan.starts[k] + WINDOW_SAMPLES) // 2 for k in (0, 2))
    wave, spans = corpus.concatenate(test_set, seed=1, seconds=70, straddle=midpoints)
    assert len(wave) > 60 * SAMPLE_RATE
    t, windows, plan = run_long(digits_modules, wave)
    tok = digits_modules.tokenizer
    assert len(t.windows) == len(plan.starts) >= 6 and len(t.cuts) == len(plan.starts) - 1
    assert all(b > a for a, b in zip(t.timestamps, t.timestamps[1:])), "timestamps must strictly increase"
    assert t.frames == [round(s / 0.08) for s in t.timestamps] and t.timestamps[-1] < len(wave) / SAMPLE_RATE

    # the reference words, as well as the clips one by one give them
    reference = " ".join(e.text for _, _, e in spans)
    per_clip = " ".join(pipeline.transcribe(digits_modules, e.waveform).text for _, _, e in spans)
    long_errors, words = wer.word_errors(reference, t.text)
    clip_errors, _ = wer.word_errors(reference, per_clip)
    assert long_errors <= clip_errors, f"long {long_errors} vs per-clip {clip_errors} errors of {words}"
    # and the merge adds no error to the seam-free control (same windows, cut at known clip boundaries)
    control_errors, _ = wer.word_errors(reference, " ".join(seam_free_control(windows, plan, spans, tok)))
    assert long_errors <= control_errors, f"long {long_errors} vs seam-free {control_errors} errors of {words}"

    # the clips centred on a seam: heard once, as the window that holds them far from its edge heard them
    for target in midpoints:
        start, end, example = next(s for s in spans if s[0] <= target < s[1])
        assert start < target < end and example.text
        got = words_in(t.tokens, t.frames, tok, start - 1280, end + 1280)
        heard = [words_in(w.tokens, w.frames, tok, start - 1280, end + 1280) for w in windows]
        assert got and got in heard, f"seam clip {example.text!r}: merged {got}, windows heard {heard}"


def test_cli_transcribes_a_clip_longer_than_the_window(tmp_path, capsys):
    wav = tmp_path / "long.wav"
    speech, _ = sf.read(ROOT / "data" / "speech_short.wav", dtype="float32")
    sf.write(wav, np.concatenate([speech, np.zeros(16 * SAMPLE_RATE, np.float32), speech]), SAMPLE_RATE)
    assert cli.main(["transcribe", str(wav), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert len(doc["windows"]) == 2 and len(doc["cuts"]) == 1 and doc["windows"][-1][1] == pytest.approx(
        sf.info(wav).frames / SAMPLE_RATE, abs=1e-3)
    assert len(doc["tokens"]) == len(doc["timestamps"]) == len(doc["frames"]) > 0
    assert doc["timestamps"] == sorted(doc["timestamps"]) and "2 windows of 15 s" in doc["notes"][0]


def test_figure_draws_every_window_and_cut(tmp_path):
    from parakeet_nb.teach.long_audio_figures import plot_long_transcript

    wave = np.sin(np.arange(30 * SAMPLE_RATE) / 50.0).astype(np.float32)
    plan = la.plan_windows(len(wave))
    t = la.LongTranscript("split", [1, 2], [3.0, 20.0], [1, 1], None, 375, frames=[37, 250],
                          windows=[(a / SAMPLE_RATE, b / SAMPLE_RATE) for a, b in plan.spans], cuts=[14.0, 27.0])
    fig = plot_long_transcript(wave, t, path=tmp_path / "seams.png")
    bars, axes = fig.axes
    assert len(bars.patches) == 3 and [line.get_xdata()[0] for line in axes.lines] == [14.0, 27.0]
    assert [x.get_text() for x in axes.texts] == ["1", "2"] and (tmp_path / "seams.png").stat().st_size < 100_000
