"""Figures of the ANE layout model: shapes drawn on N D C H W, and axis histograms."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from parakeet_nb.ane.layout import AXES, LIMITS, WIDTH_LIMIT, Size, to_layout
from parakeet_nb.ane.planner import tensor_table
from parakeet_nb.teach.plots import DISPLAY_DPI, new_figure

OK_COLOR = "#3a9d5d"
OVER_COLOR = "#d62728"
PAD_COLOR = "#dddddd"


def plot_ndchw(shapes: Mapping[str, Sequence[Size]], path: str | os.PathLike | None = None) -> Figure:
    """One row per tensor: its five axes as boxes whose width grows with log10(size).

    Axes that come from the shape are green (red when over their limit); padding 1s
    added by right alignment are grey. Each box is labelled ``axis=size`` and the shape's
    own axis index, so the mapping can be read off.
    """
    fig = new_figure((9, 0.75 * len(shapes) + 1.0))
    ax = fig.add_subplot()
    widest = 0.0
    for row, (label, shape) in enumerate(shapes.items()):
        layout = to_layout(shape)
        y = len(shapes) - 1 - row
        x = 0.0
        for axis in AXES:
            size = layout.bound(axis) or 1
            width = 1.0 + np.log10(max(size, 1))
            source = layout.source_axis[axis]
            over = not LIMITS[axis][0] <= size <= LIMITS[axis][1]
            color = PAD_COLOR if source is None else (OVER_COLOR if over else OK_COLOR)
            ax.add_patch(Rectangle((x, y + 0.1), width - 0.08, 0.8, color=color, alpha=0.85))
            text = f"{axis}={size}" + ("" if source is None else f"\naxis {source}")
            ax.text(x + width / 2, y + 0.5, text, ha="center", va="center", fontsize=7.5,
                    color="white" if color != PAD_COLOR else "#444444")
            x += width
        widest = max(widest, x)
        ax.text(-0.2, y + 0.5, f"{label}  {list(shape)}", ha="right", va="center", fontsize=9)
    ax.set_xlim(-0.1, widest + 0.1)
    ax.set_ylim(0, len(shapes))
    ax.axis("off")
    ax.set_title("right-aligned N D C H W (box width ~ log10 size; grey = padding 1; red = over its limit)", fontsize=10)
    if path is not None:
        fig.savefig(path, dpi=DISPLAY_DPI, bbox_inches="tight")
    return fig


def largest_axes(source) -> np.ndarray:
    """The largest N D C H W axis of every non-constant tensor of a program (path or loaded)."""
    return np.array([t.largest_axis for t in tensor_table(source) if t.largest_axis is not None and not t.const])


def plot_axis_histogram(
    sources: Mapping[str, object], path: str | os.PathLike | None = None
) -> Figure:
    """Histogram (log bins) of every tensor's largest axis, one panel per program, with the limit."""
    fig = new_figure((11, 2.2 * len(sources) + 0.6))
    axes = np.atleast_1d(fig.subplots(len(sources), 1, sharex=True))
    bins = np.logspace(0, 6, 49)
    for ax, (label, source) in zip(axes, sources.items()):
        values = largest_axes(source)
        over = int((values > WIDTH_LIMIT).sum())
        ax.hist(values[values <= WIDTH_LIMIT], bins=bins, color=OK_COLOR, label="within the limit")
        ax.hist(values[values > WIDTH_LIMIT], bins=bins, color=OVER_COLOR, label="over the limit")
        ax.axvline(WIDTH_LIMIT, color=OVER_COLOR, ls="--", lw=1)
        ax.set_xscale("log")
        ax.set_ylabel("tensors")
        ax.set_title(f"{label}: {len(values)} tensors, {over} over 16384", fontsize=10, loc="left")
    axes[0].legend(fontsize=8, loc="upper right")
    axes[-1].set_xlabel("largest axis of the tensor (N D C H W)")
    if path is not None:
        fig.savefig(path, dpi=DISPLAY_DPI, bbox_inches="tight")
    return fig
