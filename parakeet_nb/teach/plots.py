"""Plots of audio and mel spectrograms (matplotlib ``Figure`` objects, no pyplot state).

A notebook displays a returned :class:`~matplotlib.figure.Figure`; pass ``path`` to also
write a PNG. Figures are made at :data:`DISPLAY_DPI` and mel images use a
:data:`MEL_LEVELS`-level colour map, which keeps each stored notebook under 300 KB
(``tests/test_notebook_size.py``): a log-mel image is noise-like and a full colour map
made each mel figure ~390 KB.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from parakeet_nb.frontend.recipe import HOP, SAMPLE_RATE


#: Resolution of every teaching figure, on screen (the notebook) and in a written PNG.
DISPLAY_DPI = 72
#: Colour levels of mel images (a 16-level magma reads as well and stores ~5x smaller).
MEL_LEVELS = 16
MEL_CMAP = colormaps["magma"].resampled(MEL_LEVELS)


def new_figure(figsize: tuple[float, float]) -> Figure:
    """A constrained-layout Figure at :data:`DISPLAY_DPI` (what a notebook stores)."""
    return Figure(figsize=figsize, dpi=DISPLAY_DPI, layout="constrained")


def _save(fig: Figure, path: str | os.PathLike | None) -> Figure:
    if path is not None:
        fig.savefig(path, dpi=DISPLAY_DPI, bbox_inches="tight")
    return fig


def plot_waveform_and_mel(
    samples: np.ndarray,
    mel: np.ndarray,
    mel_length: int | None = None,
    title: str = "",
    path: str | os.PathLike | None = None,
) -> Figure:
    """The waveform ``samples [S]`` above its mel spectrogram ``mel [128, F]``.

    ``mel_length`` draws a line at the first invalid frame (NeMo zeroes frames past it).
    """
    fig = new_figure((10, 5.2))
    top, bottom = fig.subplots(2, 1, height_ratios=[1, 2])
    seconds = np.arange(len(samples)) / SAMPLE_RATE
    top.plot(seconds, samples, lw=0.4, color="#333333", antialiased=False)
    top.set(xlim=(0, len(samples) / SAMPLE_RATE), ylabel="amplitude",
            title=title or f"waveform: {len(samples)} samples ({len(samples) / SAMPLE_RATE:.2f} s)")
    frames = mel.shape[-1]
    image = bottom.imshow(
        mel, origin="lower", aspect="auto", cmap=MEL_CMAP, interpolation_stage="data",
        extent=(0, frames * HOP / SAMPLE_RATE, 0, mel.shape[0]),
    )
    if mel_length is not None:
        bottom.axvline(mel_length * HOP / SAMPLE_RATE, color="cyan", lw=1, ls="--", label=f"mel_length = {mel_length}")
        bottom.legend(loc="upper right", fontsize=8)
    bottom.set(xlabel="time (s)", ylabel="mel bin", title=f"normalised log-mel: {mel.shape[0]} x {frames} frames")
    fig.colorbar(image, ax=bottom, pad=0.01)
    return _save(fig, path)


def plot_mels(
    mels: Sequence[np.ndarray],
    titles: Sequence[str],
    path: str | os.PathLike | None = None,
    seams: Sequence[int] = (),
) -> Figure:
    """Mel spectrograms ``[128, F]`` side by side (same colour scale); ``seams`` marks frames."""
    fig = new_figure((5 * len(mels), 3.6))
    axes = np.atleast_1d(fig.subplots(1, len(mels), sharey=True))
    vmin = min(float(m.min()) for m in mels)
    vmax = max(float(m.max()) for m in mels)
    for ax, mel, title in zip(axes, mels, titles):
        image = ax.imshow(mel, origin="lower", aspect="auto", cmap=MEL_CMAP, vmin=vmin, vmax=vmax,
                          interpolation_stage="data")
        for seam in seams:
            ax.axvline(seam, color="white", lw=0.5, alpha=0.6)
        ax.set(title=title, xlabel="frame")
    axes[0].set_ylabel("mel bin")
    fig.colorbar(image, ax=list(axes), pad=0.01)
    return _save(fig, path)


#: The pipeline stages drawn by :func:`plot_pipeline`: (label, tensor after it, device).
PIPELINE_STAGES: tuple[tuple[str, str, str], ...] = (
    ("waveform", "audio_signal [1, 240000]\nor audio_chunks [1, 15, 16000]", "input"),
    ("preprocessor\n(preemphasis, STFT, mel)", "mel [1, 128, 1501]", "CPU/GPU (split)\nANE (chunked)"),
    ("encoder\n(FastConformer, 8x)", "encoder [1, D, 188]", "ANE"),
    ("decoder\n(LSTM, one step)", "decoder [1, H, 1]", "CPU (LSTM)"),
    ("joint + decision\n(TDT greedy)", "token, duration", "ANE"),
)


def plot_pipeline(path: str | os.PathLike | None = None) -> Figure:
    """The Parakeet TDT pipeline as boxes: each stage, the tensor it hands on, its device."""
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    fig = new_figure((12, 3.0))
    ax = fig.add_subplot()
    colors = {"input": "#dddddd", "ANE": "#3a9d5d", "CPU (LSTM)": "#9a9a9a"}
    n = len(PIPELINE_STAGES)
    for i, (label, tensor, device) in enumerate(PIPELINE_STAGES):
        x = i * 2.4
        color = colors.get(device, "#4f7fd9")
        ax.add_patch(FancyBboxPatch((x, 0.9), 1.8, 1.0, boxstyle="round,pad=0.05", color=color, alpha=0.85))
        ax.text(x + 0.9, 1.4, label, ha="center", va="center", fontsize=9,
                color="white" if device != "input" else "black")
        ax.text(x + 0.9, 0.55, device, ha="center", va="center", fontsize=8, style="italic")
        if i < n - 1:
            ax.add_patch(FancyArrowPatch((x + 1.9, 1.4), (x + 2.35, 1.4), arrowstyle="-|>", mutation_scale=12))
            ax.text(x + 2.1, 2.25, tensor, ha="center", va="center", fontsize=7.5)
    ax.annotate("", xy=(4 * 2.4 - 0.1, 0.2), xytext=(3 * 2.4 + 1.9, 0.2),
                arrowprops=dict(arrowstyle="<->", color="#555555"))
    ax.text(3 * 2.4 + 2.15, 0.05, "loop per token", ha="center", fontsize=7.5, color="#555555")
    ax.set_xlim(-0.2, n * 2.4 - 0.4)
    ax.set_ylim(-0.1, 2.6)
    ax.axis("off")
    return _save(fig, path)


def plot_seams(seam: int = 16000, frames: Sequence[int] = (98, 99, 100, 101, 102), path: str | os.PathLike | None = None) -> Figure:
    """Frames around a chunk seam: each frame's 512-point extent and 400-tap Hann window.

    Frame ``f`` is centred on sample ``160 f``; its window covers ``[160 f - 200, 160 f + 200)``
    and its FFT frame ``[160 f - 256, 160 f + 256)``. Hop-sized blocks (160 samples) and
    the chunk border at ``seam`` are drawn underneath: frames near the seam need samples
    from both chunks, and a chunk with a 256-sample halo would be 16512 wide.
    """
    fig = new_figure((11, 3.4))
    ax = fig.add_subplot()
    lo, hi = HOP * min(frames) - 300, HOP * max(frames) + 300
    for b in range(lo // HOP, hi // HOP + 1):
        ax.axvline(b * HOP, color="#cccccc", lw=0.6, zorder=0)
    ax.axvline(seam, color="#d62728", lw=2, label=f"chunk border (sample {seam})")
    taps = np.arange(400)
    hann = 0.5 - 0.5 * np.cos(2 * np.pi * taps / 399)
    for row, f in enumerate(frames):
        centre = HOP * f
        y = row * 1.2
        ax.add_patch(Rectangle(
            (centre - 256, y), 512, 1.0, color="#4f7fd9", alpha=0.15))
        ax.plot(centre - 200 + taps, y + hann, color="#3a9d5d", lw=1.2)
        ax.plot([centre], [y + 1.0], marker="v", color="black", ms=4)
        ax.text(centre + 262, y + 0.5, f"frame {f}", va="center", fontsize=8)
    ax.set_xlim(lo, hi + 120)
    ax.set_yticks([])
    ax.set_xlabel("sample index (grey lines: 160-sample blocks)")
    ax.set_title("frames near a chunk seam: FFT extent (blue, 512) and Hann window (green, 400 taps)")
    ax.legend(loc="upper left", fontsize=8)
    return _save(fig, path)


def plot_frame_errors(
    errors: Mapping[str, np.ndarray], seams: Sequence[int] = (), path: str | os.PathLike | None = None
) -> Figure:
    """Per-frame max abs error (log scale) for several comparisons, chunk seams marked."""
    fig = new_figure((11, 3.4))
    ax = fig.add_subplot()
    for label, values in errors.items():
        # not antialiased: a noise-like trace antialiased stores ~7x larger, no easier to read
        ax.semilogy(np.maximum(values, 1e-9), lw=0.8, label=label, antialiased=False)
    for i, seam in enumerate(seams):
        ax.axvline(seam, color="#d62728", lw=0.6, alpha=0.5, label="chunk seams" if i == 0 else None)
    ax.set(xlabel="frame", ylabel="max abs error over 128 features")
    ax.legend(fontsize=8, loc="upper right")
    return _save(fig, path)
