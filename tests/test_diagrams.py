"""Tests of the partition diagrams (parakeet_nb.teach.diagrams): real properties of the figures.

Uses the tiny fused and split encoder packages from conftest's session-wide ``tiny_export``.
Those are float32 programs, which typed execution keeps off the ANE, so the plans here use
the planner's untyped reading (``typed_execution=False``) to have ANE segments to draw.
"""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.collections import PolyCollection
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from matplotlib.image import imread

from parakeet_nb.teach import diagrams
from parakeet_nb.ane.audit import audit
from parakeet_nb.coreml.convert import COMPONENTS
from parakeet_nb.ane.layout import WIDTH_LIMIT
from parakeet_nb.ane import planner
from parakeet_nb.frontend.recipe import MEL_FRAMES, N_MELS
from parakeet_nb.mlprogram.load import load_program


@pytest.fixture(scope="module")
def fused(tiny_export):
    return load_program(tiny_export / COMPONENTS["mel_encoder"].file)


@pytest.fixture(scope="module")
def encoder(tiny_export):
    return load_program(tiny_export / COMPONENTS["encoder"].file)


def plan(program, compute_units, policy):
    """The planner's untyped reading: the tiny packages are float32 (see the module docstring)."""
    return planner.plan(program, compute_units, policy, typed_execution=False)


def _collections(fig: Figure, prefix: str) -> dict[str, PolyCollection]:
    found = {}
    for ax in fig.axes:
        for c in ax.collections:
            gid = c.get_gid() or ""
            if gid.startswith(prefix):
                found[gid.split(":", 1)[1]] = c
    return found


def _pixels_near(image: np.ndarray, colour: str, tol: float = 0.02) -> int:
    rgb = np.array(to_rgba(colour)[:3])
    return int((np.abs(image[..., :3] - rgb).max(axis=-1) < tol).sum())


def test_plot_plan_writes_a_png_with_one_patch_per_device_run(fused, tmp_path):
    p = plan(fused, "CPU_AND_NE", "greedy")
    out = tmp_path / "greedy.png"
    fig = diagrams.plot_plan(p, path=out)
    assert isinstance(fig, Figure)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000
    bands = _collections(fig, "device:")
    runs = diagrams.device_runs(p)
    assert set(bands) == {"ANE", "CPU"} == set(runs)
    for device, coll in bands.items():
        assert len(coll.get_paths()) == len(runs[device])
        assert tuple(coll.get_facecolor()[0]) == pytest.approx(to_rgba(diagrams.DEVICE_COLORS[device]))
    # every non-constant op is drawn exactly once; constants are hidden
    assert sum(length for spans in runs.values() for _, length in spans) == p.counts()["ops"]
    assert len(diagrams.displayed_ops(p)) == p.counts()["ops"] < len(p.ops)
    # ops on the ANE touching the waveform are marked as rejected
    marks = _collections(fig, "over_limit:")
    assert "ane" in marks
    rejected_ops = sum(1 for o in diagrams.displayed_ops(p) if o.over_limit and o.device == "ANE")
    assert rejected_ops > 0
    assert "N1D1C1H1W240000" in fig.axes[0].get_title(loc="left")
    # the PNG really shows the device colours and the rejection colour
    image = imread(out)
    for colour in (diagrams.DEVICE_COLORS["ANE"], diagrams.DEVICE_COLORS["CPU"], diagrams.REJECTED_COLOR):
        assert _pixels_near(image, colour) > 50, colour
    assert _pixels_near(image, diagrams.DEVICE_COLORS["GPU"]) == 0


def test_conservative_diagram_has_no_rejection_marks(fused, tmp_path):
    p = plan(fused, "CPU_AND_NE", "conservative")
    fig = diagrams.plot_plan(p, path=tmp_path / "conservative.png")
    marks = _collections(fig, "over_limit:")
    assert "ane" not in marks and "off" in marks
    assert "ANE validation passes" in fig.axes[0].get_title(loc="left")
    # segment borders drawn between consecutive ops of different segments
    shown = diagrams.displayed_ops(p)
    expected = sum(1 for a, b in zip(shown, shown[1:]) if a.segment != b.segment)
    (borders,) = [c for c in fig.axes[0].collections if c.get_gid() == "segment-borders"]
    assert len(borders.get_segments()) == expected > 0


def test_plot_plans_stacks_one_row_per_plan(fused, tmp_path):
    plans = [plan(fused, "CPU_AND_NE", "conservative"), plan(fused, "CPU_AND_NE", "greedy"),
             plan(fused, "CPU_AND_GPU", "greedy")]
    fig = diagrams.plot_plans(plans, path=tmp_path / "three.png")
    assert len(fig.axes) == 3
    assert set(_collections(fig, "device:")) == {"ANE", "CPU", "GPU"}
    assert "nothing on the ANE" in fig.axes[2].get_title(loc="left")
    with pytest.raises(ValueError):
        diagrams.plot_plans([])


def test_plot_largest_axes_overlays_models_against_the_limit(fused, encoder, tmp_path):
    fig = Figure()
    ax = fig.add_subplot()
    assert diagrams.plot_largest_axes(fused, ax=ax) is fig
    diagrams.plot_largest_axes(plan(encoder, "CPU_AND_NE", "greedy"), ax=ax, label="encoder")
    diagrams.plot_largest_axes(audit(encoder.path), ax=ax, label="encoder (audit)")
    limit_lines = [line for line in ax.lines if line.get_gid() == "ane-limit"]
    assert len(limit_lines) == 1 and limit_lines[0].get_ydata()[0] == WIDTH_LIMIT
    data = [line for line in ax.lines if line.get_gid() != "ane-limit"]
    assert [line.get_label() for line in data] == ["parakeet_mel_encoder.mlpackage", "encoder", "encoder (audit)"]
    assert max(data[0].get_ydata()) == 240512
    assert max(data[1].get_ydata()) < WIDTH_LIMIT
    assert list(data[1].get_ydata()) == list(data[2].get_ydata())
    over = [c for c in ax.collections if (c.get_gid() or "").startswith("over:")]
    assert [c.get_gid() for c in over] == ["over:parakeet_mel_encoder.mlpackage"]
    assert len(over[0].get_offsets()) == sum(1 for y in data[0].get_ydata() if y > WIDTH_LIMIT)
    assert ax.get_yscale() == "log"
    out = tmp_path / "axes.png"
    fig.savefig(out)
    assert out.stat().st_size > 5_000


def test_plot_largest_axes_normalised_positions(fused, encoder):
    fig = diagrams.plot_largest_axes(fused, normalize=True)
    diagrams.plot_largest_axes(encoder, ax=fig.axes[0], normalize=True)
    for line in (line for line in fig.axes[0].lines if line.get_gid() != "ane-limit"):
        xs = line.get_xdata()
        assert min(xs) == 0.0 and max(xs) <= 1.0


def test_ticks_are_round_op_indices_at_the_first_op_reaching_them(fused):
    p = plan(fused, "CPU_AND_NE", "greedy")
    shown = diagrams.displayed_ops(p)
    ticks = diagrams.op_index_ticks(p)
    assert 3 <= len(ticks) <= 9
    values = [v for _, v in ticks]
    step = min(b - a for a, b in zip(values, values[1:]))
    assert step in diagrams._TICK_STEPS and all(v % step == 0 for v in values)
    positions = [pos for pos, _ in ticks]
    assert positions == sorted(set(positions)) and positions[0] > 0
    for pos, value in ticks:
        assert shown[pos].index >= value > shown[pos - 1].index
    fig = diagrams.plot_plan(p)
    labels = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert labels == [str(v) for v in values]


def test_stage_border_follows_the_last_op_making_the_mel(fused, encoder, tiny_export):
    p = plan(fused, "CPU_AND_NE", "greedy")
    border = diagrams.stage_border(p)
    shown = diagrams.displayed_ops(p)
    assert border is not None and 0 < border < len(shown)
    mel_makers = {t.producer for t in p.tensors.values()
                  if t.producer is not None and not t.const and t.shape == (1, N_MELS, MEL_FRAMES)}
    assert shown[border - 1].index <= max(mel_makers) < shown[border].index
    fig = diagrams.plot_plan(p)
    (line,) = [ln for ln in fig.axes[0].lines if ln.get_gid() == "stage-border"]
    assert line.get_xdata()[0] == border
    # an encoder alone makes no mel; a preprocessor alone ends with it: no border in either
    assert diagrams.stage_border(plan(encoder, "CPU_AND_NE", "greedy")) is None
    pre = plan(tiny_export / COMPONENTS["preprocessor"].file, "CPU_AND_NE", "greedy")
    assert diagrams.stage_border(pre) is None


def test_ane_segments_are_numbered_from_one_in_each_diagram(fused):
    for policy in ("greedy", "conservative"):
        p = plan(fused, "CPU_AND_NE", policy)
        fig = diagrams.plot_plan(p)
        labels = [t.get_text() for t in fig.axes[0].texts if t.get_text().startswith("ANE #")]
        numbers = [int(label.split("#")[1].split()[0].rstrip(":")) for label in labels]
        assert numbers == list(range(1, min(len(p.ane_segments()), 4) + 1)), labels
