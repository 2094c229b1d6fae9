"""Predicted and measured placement, drawn one above the other.

One panel per package and compute-unit setting: the top strip is the planner's device for
each op (*predicted*), the strip below is the device Core ML's compute plan prefers
(*measured*), ops in program order left to right; a red tick marks every disagreement
and white means that side has no such op (or gives it no device). Built on matplotlib
``Figure`` objects (no pyplot state), so it is safe in notebooks and child processes.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from parakeet_nb.ane.plan import DEVICE_COLORS as COLORS
from parakeet_nb.device.compare import PlacementComparison

#: Anything else a compute plan may name, and "no device on this side".
OTHER, NONE = "#c9a227", "#ffffff"


def _strip(devices: list[str | None]) -> np.ndarray:
    return np.array([[to_rgb(COLORS.get(d, OTHER) if d is not None else NONE) for d in devices]])


def placement_figure(panels: list[tuple[str, PlacementComparison]]) -> Figure:
    """The figure for ``panels`` (``(title, comparison)`` each; at least one)."""
    if not panels:
        raise ValueError("nothing to draw: no package had both a prediction and a compute plan")
    fig = Figure(figsize=(10, 0.3 + 1.05 * len(panels)), layout="constrained")
    axes = fig.subplots(len(panels), 1, squeeze=False)[:, 0]
    for ax, (title, comparison) in zip(axes, panels):
        ops = [o for o in comparison.ops if o.predicted is not None or o.actual is not None]
        image = np.concatenate([_strip([o.predicted for o in ops]), _strip([o.actual for o in ops])])
        ax.imshow(image, aspect="auto", interpolation="nearest", extent=(0, max(len(ops), 1), 2, 0))
        for x, o in enumerate(ops):
            if o.status == "differ":
                ax.plot([x + 0.5, x + 0.5], [0.9, 1.1], color="#d62728", linewidth=1.2)
        ax.set_yticks([0.5, 1.5], ["predicted", "Core ML"], fontsize=8)
        ax.set_xticks([])
        agreement = comparison.agreement
        rate = "no op compared" if agreement is None else f"{agreement:.0%} of {comparison.compared} ops agree"
        ax.set_title(f"{title}: {rate}", fontsize=9, loc="left")
        ax.set_xlim(0, max(len(ops), 1))
    seen = {d for _, c in panels for o in c.ops for d in (o.predicted, o.actual) if d is not None}
    handles = [Patch(facecolor=COLORS[d], label=d) for d in COLORS if d in seen]
    if seen - set(COLORS):
        handles.append(Patch(facecolor=OTHER, label="other"))
    handles.append(Patch(facecolor=NONE, edgecolor="#888888", label="absent / no device"))
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), fontsize=8, frameon=False)
    return fig


def save_png(fig: Figure, path: str | os.PathLike) -> Path:
    """Write ``fig`` to ``path`` atomically (a temporary file, then a rename), at 80 dpi."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=80)
    tmp.replace(path)
    return path
