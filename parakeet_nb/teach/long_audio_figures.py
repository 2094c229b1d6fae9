"""Figures of long-audio transcription: the windows, their seams and the merged words over the waveform."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from parakeet_nb.frontend.recipe import SAMPLE_RATE
from parakeet_nb.teach.plots import _save, new_figure
from parakeet_nb.transcribe.long_audio import LongTranscript

WINDOW_COLORS = ("#1f77b4", "#ff7f0e")


def plot_long_transcript(
    samples: np.ndarray, transcript: LongTranscript, tokenizer: Any = None, path: str | os.PathLike | None = None
) -> Figure:
    """The waveform ``samples [S]`` (16 kHz) with the transcript's windows as alternating bars
    above it, each overlap shaded, each seam's cut as a red line, and every merged token as a
    tick at its timestamp (its piece when ``tokenizer`` is given, else its id).

    The waveform is drawn as a per-pixel min/max envelope (2000 columns), which keeps the
    PNG small for a minute of audio.
    """
    seconds = len(samples) / SAMPLE_RATE
    fig = new_figure((11, 3.6))
    bars, wave = fig.subplots(2, 1, sharex=True, height_ratios=[1, 3])
    for k, (a, b) in enumerate(transcript.windows):
        bars.barh(k % 2, b - a, left=a, height=0.7, color=WINDOW_COLORS[k % 2], alpha=0.8)
        bars.text((a + b) / 2, k % 2, f"window {k}", ha="center", va="center", fontsize=8, color="white")
    for (a0, b0), (a1, _) in zip(transcript.windows, transcript.windows[1:]):
        wave.axvspan(a1, b0, color="#bbbbbb", alpha=0.5, lw=0)
    bars.set(yticks=[], ylim=(-0.6, 1.6), title=f"{len(transcript.windows)} windows of 15 s, "
             f"{len(transcript.cuts)} seams (grey: overlap, red: cut)")
    columns = 2000
    edges = np.linspace(0, len(samples), columns + 1).astype(int)
    chunks = [samples[a:max(b, a + 1)] for a, b in zip(edges[:-1], edges[1:])]
    x = edges[:-1] / SAMPLE_RATE
    wave.fill_between(x, [c.min() for c in chunks], [c.max() for c in chunks], color="#444444", lw=0)
    for c in transcript.cuts:
        wave.axvline(c, color="#d62728", lw=1.2)
    top = float(np.abs(samples).max()) or 1.0
    for i, (token, t) in enumerate(zip(transcript.tokens, transcript.timestamps)):
        label = tokenizer.ids_to_text([token]) if tokenizer is not None else str(token)
        wave.text(t, top * (1.05 if i % 2 else 1.25), label, fontsize=6, ha="center", rotation=90, va="bottom")
    wave.set(xlim=(0, seconds), ylim=(-top * 1.1, top * 1.9), xlabel="time in the clip (s)", ylabel="amplitude",
             yticks=[])
    return _save(fig, path)
