"""The parity study as data: rows, goals, JSON and the text table."""

from __future__ import annotations

import json

import numpy as np
import pytest

from parakeet_nb.study import parity


@pytest.fixture(scope="module")
def report():
    return parity.run_parity(cases=["speech_short", "silence", "sine_3000_fs", "noise_len_16001"], fp16=False)


@pytest.fixture(scope="module")
def report_fp16():
    return parity.run_parity(cases=["speech_in_digital_silence"], fp16=True)


def test_rows_hold_the_study(report):
    assert [r.case for r in report.rows] == ["speech_short", "silence", "sine_3000_fs", "noise_len_16001"]
    for r in report.rows:
        assert r.mel_length_equal and r.pad_zero_and_finite
        assert r.mel_length == r.length // 160 == len(r.frames_vs_f64) == len(r.frames_vs_nemo)
        assert r.chunked_vs_f64_max == pytest.approx(float(r.frames_vs_f64.max()) if r.mel_length else 0.0)
        assert 0.0 <= r.chunked_vs_nemo_mean <= r.chunked_vs_nemo_max
        assert r.fp16_safe_vs_nemo_max is None
    # judged against bounds far above float32 noise, not against each other (issue 17)
    short = report.row("speech_short")
    bound = parity.F32_BOUNDS["speech"]
    assert short.chunked_vs_nemo_max < bound and short.chunked_vs_f64_max < bound and short.nemo_vs_f64_max < bound
    assert short.rest_vs_f64_max > 0 and short.seam_vs_f64_max <= parity.SEAM_RATIO * short.rest_vs_f64_max
    noise = report.row("noise_len_16001")
    assert noise.mel_length == 100 and noise.chunked_vs_f64_max < parity.F32_BOUNDS["sweep"]


def test_silence_shows_nemos_float32_mean_rounding(report):
    """All-zero audio: every implementation in float32 returns the same constant.

    log(2**-24) is the same in every frame, but float32 may not average 1500 copies of it
    exactly: with ``d = v - mean`` (a few ulps, set by the summation order, so by the
    machine) the normalised value is ``d / (|d| + 1e-5)`` (~0.28 on one machine), always
    below 1 in size, where float64 gives 0. The chunked module reproduces NeMo's value
    exactly, since it normalises in NeMo's float32 order.
    """
    silence = report.row("silence")
    assert silence.chunked_vs_nemo_max == 0.0
    assert silence.nemo_vs_f64_max == pytest.approx(silence.chunked_vs_f64_max)
    assert silence.nemo_vs_f64_max < parity.F32_BOUNDS["silence"] == 1.0


def test_goals_are_evaluated(report):
    goals = {g["goal"]: g for g in report.goals()}
    assert len(goals) == 4  # no fp16 goals without the fp16 study
    seam_goal = next(g for name, g in goals.items() if name.startswith("seam"))
    assert seam_goal["met"]
    lengths = next(g for name, g in goals.items() if name.startswith("mel_length"))
    assert lengths["met"] and lengths["detail"] == "4 cases"


def test_json_and_table(report):
    data = report.to_json()
    text = json.dumps(data)
    back = json.loads(text)
    assert back["meta"]["torch"] and back["meta"]["nemo"] and len(back["meta"]["seam_frames"]) == 42
    assert [r["case"] for r in back["rows"]] == [r.case for r in report.rows]
    assert len(back["rows"][0]["frames_vs_f64"]) == report.rows[0].mel_length
    assert "frames_vs_f64" not in report.to_json(frames=False)["rows"][0]
    table = report.table()
    for r in report.rows:
        assert r.case in table
    assert "[met]" in table and table.count("\n") > len(report.rows)
    # the stored text shows relations to bounds, never float32 digits; digits=True shows them
    speech_line = next(line for line in table.splitlines() if line.startswith("speech_short"))
    assert "<0.001" in speech_line and "e-0" not in speech_line
    assert "e-0" in next(line for line in report.table(digits=True).splitlines() if line.startswith("speech_short"))


def test_bound_text():
    assert parity.bound_text(5e-5, 1e-3) == "<0.001"
    assert parity.bound_text(2e-3, 1e-3) == ">0.001"
    assert parity.bound_text(0.0, 1e-5) == "<1e-5"
    assert parity.bound_text(0.3, 0.5) == "<0.5" and parity.bound_text(0.5, 0.5) == ">0.5"
    assert parity.bound_text(float("inf"), 0.5) == "inf" and parity.bound_text(float("nan"), 0.5) == "nan"
    assert parity.bound_text(None, 0.5) == "-"


def test_fp16_columns(report_fp16):
    row = report_fp16.rows[0]
    assert row.fp16_safe_vs_nemo_max < 0.05 and row.fp16_safe_ftz_vs_nemo_max < 0.05
    assert row.fp16_plain_vs_nemo_max > 0.1
    goals = report_fp16.goals()
    assert len(goals) == 6 and all(g["met"] for g in goals if g["goal"].startswith("fp16"))
    assert json.loads(json.dumps(report_fp16.to_json()))["rows"][0]["fp16_safe_vs_nemo_max"] < 0.05


def test_cases_and_inputs():
    names = [c.name for c in parity.default_cases()]
    assert len(names) == len(set(names))
    assert {f"noise_len_{n}" for n in parity.SWEEP_LENGTHS} <= set(names)
    audio = np.zeros(250000, np.float32)
    cases = parity.default_cases(audio)
    assert cases[0].name == "audio" and cases[0].length == 240000
    with pytest.raises(ValueError, match="unknown case"):
        parity.run_parity(cases=["nope"], fp16=False)
    with pytest.raises(ValueError, match="1-D"):
        parity.run_parity(np.zeros((2, 10)), fp16=False)


def test_seam_frames_span_chunk_boundaries():
    for f in parity.SEAM_FRAMES:
        lo, hi = 160 * f - 200, 160 * f + 199
        assert any(lo < 16000 * c <= hi for c in range(1, 15))
    others = np.setdiff1d(np.arange(1501), parity.SEAM_FRAMES)
    assert not any(160 * f - 200 < 16000 * c <= 160 * f + 199 for f in others for c in range(1, 15))


def test_speech_clips_are_the_committed_ones():
    clips = parity.speech_clips()
    assert set(clips) == {"speech", "speech_short"}
    assert all(c.dtype == np.float32 and 0 < len(c) <= 240000 for c in clips.values())
