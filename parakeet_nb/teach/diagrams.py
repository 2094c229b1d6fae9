"""Partition diagrams: where each op of a program runs, and which tensors break the ANE limits.

Figures are built with :class:`matplotlib.figure.Figure` directly (no pyplot state, no
backend switch), so they work headless and in notebooks, which display a returned
Figure. Pass ``path`` to also write a PNG.

* :func:`plot_plan` / :func:`plot_plans`: one row per plan. The top lane is a band with
  one cell per op in program order (constants hidden), coloured by device, with thin
  black ticks where consecutive ops belong to different segments; the lane below marks
  ops that touch a tensor over the ANE limits (red when the op is on the ANE, so the
  device would reject it; orange when it runs off the ANE). Each ANE segment is
  annotated with its widest float input, rejected tensors with their N D C H W; ANE
  segments are numbered 1, 2, ... per diagram. Ticks mark round program op indices
  (:func:`op_index_ticks`), and a dashed line marks where the preprocessor ends and the
  encoder starts in a fused program (:func:`stage_border`).
* :func:`plot_largest_axes`: the largest N D C H W axis of every tensor against the
  16384 line; call it several times with the same ``ax`` to compare models.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from parakeet_nb.ane.audit import AuditReport
from parakeet_nb.ane.layout import WIDTH_LIMIT
from parakeet_nb.ane.plan import DEVICE_COLORS, Plan, TensorInfo
from parakeet_nb.ane.planner import tensor_table
from parakeet_nb.frontend.recipe import MEL_FRAMES, N_MELS
from parakeet_nb.mlprogram.load import LoadedProgram
from parakeet_nb.teach.plots import DISPLAY_DPI, new_figure

#: Colour of each device in the diagrams.
#: Over-limit markers: rejected by the ANE, or over the limits but off the ANE.
REJECTED_COLOR = "#d62728"
OFF_ANE_COLOR = "#ff9f1c"

_BAND_Y, _BAND_H = 1.0, 0.8
_MARK_Y, _MARK_H = 0.25, 0.5


def _runs(values: Sequence[Any]) -> list[tuple[int, int, Any]]:
    """``[(start, length, value)]`` for the runs of equal consecutive values."""
    runs: list[tuple[int, int, Any]] = []
    for i, v in enumerate(values):
        if runs and runs[-1][2] == v and runs[-1][0] + runs[-1][1] == i:
            start, length, _ = runs[-1]
            runs[-1] = (start, length + 1, v)
        else:
            runs.append((i, 1, v))
    return runs


def displayed_ops(plan: Plan) -> list[Any]:
    """The ops a diagram shows, in program order: every op except constants."""
    return [p for p in plan.ops if p.device is not None]


def device_runs(plan: Plan) -> dict[str, list[tuple[int, int]]]:
    """Per device, the ``(start, length)`` runs of consecutive displayed ops on it.

    Positions count displayed ops only (constants hidden); this is exactly what
    :func:`plot_plan` draws in the device band.
    """
    found: dict[str, list[tuple[int, int]]] = {}
    for start, length, device in _runs([p.device for p in displayed_ops(plan)]):
        found.setdefault(device, []).append((start, length))
    return found


#: Round steps for the op-index ticks of a diagram.
_TICK_STEPS = (10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 5000)


def op_index_ticks(plan: Plan, target: int = 8) -> list[tuple[int, int]]:
    """``[(position, op index)]`` for ticks at round program op indices (multiples of a step).

    Op indices count every op of the program, constants included; positions count the
    displayed ops only. Each tick sits at the first displayed op whose index is at least
    the round number (``index`` is that round number); ticks closer than a few positions
    to the previous one (or to the start) are dropped. About ``target`` ticks.
    """
    shown = displayed_ops(plan)
    if not shown:
        return []
    last = shown[-1].index
    step = next((s for s in _TICK_STEPS if last / s <= target), _TICK_STEPS[-1])
    gap = max(1, len(shown) // (3 * target))  # keep labels from overlapping
    ticks: list[tuple[int, int]] = []
    position = 0
    for value in range(step, last + 1, step):
        while shown[position].index < value:
            position += 1
        if position >= (ticks[-1][0] + gap if ticks else gap):
            ticks.append((position, value))
    return ticks


def stage_border(plan: Plan) -> int | None:
    """The displayed position where the preprocessor ends and the encoder starts, if inside.

    The border follows the last op that makes the mel spectrogram ``[1, N_MELS, MEL_FRAMES]``
    (:mod:`parakeet_nb.frontend.recipe`); ``None`` when the program takes the mel as an input
    or makes none (an encoder alone), or ends with it (a preprocessor alone).
    """
    mel_shape = (1, N_MELS, MEL_FRAMES)
    if any(plan.tensors[name].shape == mel_shape for name in plan.function_inputs):
        return None  # the program takes the mel: an encoder alone
    makers = [t.producer for t in plan.tensors.values()
              if t.producer is not None and not t.const and t.shape == mel_shape]
    if not makers:
        return None
    shown = displayed_ops(plan)
    after = [i for i, p in enumerate(shown) if p.index > max(makers)]
    return after[0] if after else None


def _draw_plan(ax: Axes, plan: Plan, annotate: bool = True) -> None:
    shown = displayed_ops(plan)
    n = len(shown)
    for device, spans in device_runs(plan).items():
        coll = ax.broken_barh(spans, (_BAND_Y, _BAND_H), facecolors=DEVICE_COLORS[device], linewidth=0)
        coll.set_gid(f"device:{device}")
        coll.set_label(device)
    # segment borders: between consecutive displayed ops of different segments
    borders = [i for i in range(1, n) if shown[i].segment != shown[i - 1].segment]
    if borders:
        ax.vlines(borders, _BAND_Y, _BAND_Y + _BAND_H, colors="black", linewidth=0.6, gid="segment-borders")
    # over-limit lane
    marks = ["ane" if p.over_limit and p.device == "ANE" else "off" if p.over_limit else None for p in shown]
    for kind, color in (("ane", REJECTED_COLOR), ("off", OFF_ANE_COLOR)):
        spans = [(s, length) for s, length, v in _runs(marks) if v == kind]
        if spans:
            coll = ax.broken_barh(spans, (_MARK_Y, _MARK_H), facecolors=color, linewidth=0)
            coll.set_gid(f"over_limit:{kind}")
    ax.set_xlim(0, max(n, 1))
    ax.set_ylim(-0.45, 2.6 if annotate else 2.0)
    ax.set_yticks([_MARK_Y + _MARK_H / 2, _BAND_Y + _BAND_H / 2], ["over limit", "device"])
    ax.tick_params(axis="y", length=0)
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    # x ticks: round program op indices, each at the first displayed op at or after it
    ticks = op_index_ticks(plan)
    ax.set_xticks([pos + 0.5 for pos, _ in ticks], [str(index) for _, index in ticks], fontsize=7)
    ax.set_xlabel("ops in program order (constants hidden; ticks are program op indices, constants counted)",
                  fontsize=8)
    border = stage_border(plan)
    if border is not None:
        ax.axvline(border, color="black", linestyle="--", linewidth=1.0, gid="stage-border")
        ax.text(border - 0.5, _MARK_Y - 0.15, "preprocessor ", ha="right", va="top", fontsize=7)
        ax.text(border + 0.5, _MARK_Y - 0.15, " encoder", ha="left", va="top", fontsize=7)
    name = Path(plan.path).name
    if not plan.valid:
        verdict = f"ANE rejects {plan.rejections[0].ndchw}"
    elif plan.counts()["ANE"]:
        verdict = "ANE validation passes"
    else:
        verdict = "nothing on the ANE"
    counts = plan.counts()
    mix = ", ".join(f"{d} {counts[d]}" for d in ("ANE", "GPU", "CPU") if counts[d])
    ax.set_title(f"{name}: {plan.compute_units}, {plan.policy} | {mix} | {verdict}", fontsize=9, loc="left")
    if annotate:
        _annotate(ax, plan, shown)


def _annotate(ax: Axes, plan: Plan, shown: list[Any]) -> None:
    position = {p.index: i for i, p in enumerate(shown)}
    texts: list[tuple[float, str, str]] = []
    rejected_tensors = {r.tensor for r in plan.rejections}
    for number, seg in enumerate(plan.ane_segments(), start=1):
        floats = [plan.tensors[t] for t in seg.inputs if plan.tensors[t].dtype.startswith(("fp", "bf"))]
        if not floats:
            texts.append((position[seg.first], f"ANE #{number}: no float input", "black"))
            continue
        widest = max(floats, key=lambda t: t.largest_axis or 0)
        colour = REJECTED_COLOR if widest.name in rejected_tensors else "black"
        label = f"ANE #{number} in: {widest.name} {widest.shape_text()}"
        if widest.over_limit:
            label += f" {widest.ndchw}"
        texts.append((position[seg.first], label, colour))
    for x, (pos, label, colour) in enumerate(texts[:4]):
        ax.annotate(
            label, xy=(pos + 0.5, _BAND_Y + _BAND_H), xytext=(pos + 0.5, _BAND_Y + _BAND_H + 0.35 + 0.3 * (x % 2)),
            fontsize=7, color=colour, ha="left", va="bottom",
            arrowprops={"arrowstyle": "-", "color": colour, "linewidth": 0.6},
        )


def plot_plans(plans: Sequence[Plan], path: str | os.PathLike | None = None, title: str | None = None) -> Figure:
    """One row per plan (for example conservative vs greedy, or several models).

    Returns the Figure; writes a PNG to ``path`` when given. Raises ``ValueError`` for an
    empty sequence.
    """
    if not plans:
        raise ValueError("plot_plans needs at least one plan")
    fig = new_figure((12, 1.9 * len(plans) + 0.9))
    axes = fig.subplots(len(plans), 1, squeeze=False)[:, 0]
    for ax, plan in zip(axes, plans):
        _draw_plan(ax, plan)
    devices = [d for d in DEVICE_COLORS if any(p.counts()[d] for p in plans)]
    handles = [Patch(facecolor=DEVICE_COLORS[d], label=d) for d in devices]
    handles += [
        Patch(facecolor=REJECTED_COLOR, label="on the ANE, touches a tensor over the limits (rejected)"),
        Patch(facecolor=OFF_ANE_COLOR, label="touches a tensor over the limits, off the ANE"),
    ]
    fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), fontsize=8, frameon=False)
    notice = "A model of Core ML partitioning built from public reports, not Apple's compiler."
    fig.suptitle(title or notice, fontsize=10)
    if path is not None:
        fig.savefig(path, dpi=DISPLAY_DPI)
    return fig


def plot_plan(plan: Plan, path: str | os.PathLike | None = None) -> Figure:
    """The partition diagram of one plan (see the module docstring); PNG at ``path`` if given."""
    return plot_plans([plan], path=path)


def _tensors_of(source: Plan | LoadedProgram | AuditReport | str | os.PathLike) -> tuple[list[TensorInfo], str]:
    if isinstance(source, Plan):
        tensors = [source.tensors[n] for n in source.function_inputs]
        tensors += [t for t in source.tensors.values() if t.producer is not None and not t.const]
        tensors.sort(key=lambda t: -1 if t.producer is None else t.producer)
        return tensors, Path(source.path).name
    if isinstance(source, AuditReport):
        return tensor_table(source.path), Path(source.path).name
    if isinstance(source, LoadedProgram):
        return tensor_table(source), Path(source.path).name
    return tensor_table(source), Path(source).name


def plot_largest_axes(
    source: Plan | LoadedProgram | AuditReport | str | os.PathLike,
    ax: Axes | None = None,
    label: str | None = None,
    normalize: bool = False,
) -> Figure:
    """The largest N D C H W axis of every tensor (function inputs, then op outputs, in
    program order; constants left out) against the 16384 line, on a log scale.

    ``source`` is a :class:`~parakeet_nb.ane.planner.Plan`, a loaded program, an audit report
    or a path. Pass the same ``ax`` again to overlay several models (the limit line is
    drawn once); ``normalize`` puts each program on a 0..1 position axis so programs of
    different lengths line up. Tensors over the limit are outlined in red. Flexible sizes
    are plotted at their upper bound; unbounded ones are left out. Returns the Figure.
    """
    tensors, name = _tensors_of(source)
    if ax is None:
        fig = new_figure((10, 3.6))
        ax = fig.add_subplot()
    fig = ax.figure  # type: ignore[assignment]
    points = [(i, t) for i, t in enumerate(tensors) if t.largest_axis is not None]
    span = max(len(tensors) - 1, 1)
    xs = [i / span if normalize else i for i, _ in points]
    ys = [t.largest_axis for _, t in points]
    line = ax.plot(xs, ys, marker="o", markersize=3, linestyle="none", alpha=0.8, label=label or name)[0]
    over = [(x, t.largest_axis) for x, (_, t) in zip(xs, points) if t.over_limit]
    if over:
        ax.scatter([x for x, _ in over], [y for _, y in over], s=28, facecolors="none",
                   edgecolors=REJECTED_COLOR, linewidths=1.0, zorder=3, gid=f"over:{line.get_label()}")
    if not any(getattr(child, "get_gid", lambda: None)() == "ane-limit" for child in ax.get_children()):
        ax.axhline(WIDTH_LIMIT, color=REJECTED_COLOR, linestyle="--", linewidth=1, gid="ane-limit",
                   label=f"ANE limit {WIDTH_LIMIT} (D, H, W)")
    ax.set_yscale("log")
    ax.set_ylabel("largest axis (N D C H W)")
    ax.set_xlabel("position in program (0..1)" if normalize else "tensor # in program order (constants left out)")
    ax.legend(fontsize=8, loc="upper right")
    ax.grid(True, which="major", axis="y", alpha=0.3)
    return fig  # type: ignore[return-value]
