"""Plots of audio and mel spectrograms (matplotlib ``Figure`` objects, no pyplot state).

A notebook displays a returned :class:`~matplotlib.figure.Figure`; pass ``path`` to also
write a PNG.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

from parakeet_nb.models import HOP, SAMPLE_RATE


def _save(fig: Figure, path: str | os.PathLike | None) -> Figure:
    if path is not None:
        fig.savefig(path, dpi=110, bbox_inches="tight")
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
    fig = Figure(figsize=(10, 5.2), layout="constrained")
    top, bottom = fig.subplots(2, 1, height_ratios=[1, 2])
    seconds = np.arange(len(samples)) / SAMPLE_RATE
    top.plot(seconds, samples, lw=0.4, color="#333333")
    top.set(xlim=(0, len(samples) / SAMPLE_RATE), ylabel="amplitude",
            title=title or f"waveform: {len(samples)} samples ({len(samples) / SAMPLE_RATE:.2f} s)")
    frames = mel.shape[-1]
    image = bottom.imshow(
        mel, origin="lower", aspect="auto", cmap="magma",
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
    fig = Figure(figsize=(5 * len(mels), 3.6), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(mels), sharey=True))
    vmin = min(float(m.min()) for m in mels)
    vmax = max(float(m.max()) for m in mels)
    for ax, mel, title in zip(axes, mels, titles):
        image = ax.imshow(mel, origin="lower", aspect="auto", cmap="magma", vmin=vmin, vmax=vmax)
        for seam in seams:
            ax.axvline(seam, color="white", lw=0.5, alpha=0.6)
        ax.set(title=title, xlabel="frame")
    axes[0].set_ylabel("mel bin")
    fig.colorbar(image, ax=list(axes), pad=0.01)
    return _save(fig, path)
