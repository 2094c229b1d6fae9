"""Export every component of the contract to ``.mlpackage`` files plus ``metadata.json``.

Each component is traced, checked (the traced module agrees with its eager original on
the example inputs), converted, saved, reloaded with ``skip_model_load`` (its declared
inputs and outputs must be the contract's), and audited. Everything is written into a
staging folder beside the output folder and moved into place only when every requested
component succeeded, so a failure never leaves a half-written package or metadata.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

import parakeet_nb
from parakeet_nb.ane import compute_units
from parakeet_nb.ane.audit import AuditReport, audit_program
from parakeet_nb.model.components import wrappers
from parakeet_nb.coreml.convert import COMPONENTS, Precision, contract_dtype, example_inputs, to_coreml, trace
from parakeet_nb.frontend.recipe import HOP, SAMPLE_RATE, WINDOW_SAMPLES
from parakeet_nb.model.presets import ParakeetModules
from parakeet_nb.mlprogram.load import load_program

#: Tolerance for traced-vs-eager agreement (the same code on the same inputs).
TRACE_ATOL = 1e-5


class ExportError(RuntimeError):
    """A component failed a post-conversion check; the message names it and the check."""


@dataclass
class ComponentResult:
    """What was written and checked for one component."""

    name: str
    file: str
    seconds: float
    trace_max_abs_diff: float
    inputs: list[dict[str, Any]]
    outputs: list[dict[str, Any]]
    ops: int
    op_types: list[str]
    precision: dict[str, Any]
    audit: AuditReport
    recommendation: compute_units.Recommendation
    size_bytes: int

    def metadata(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "summary": COMPONENTS[self.name].summary,
            "inputs": self.inputs,
            "outputs": self.outputs,
            "ops": self.ops,
            "size_bytes": self.size_bytes,
            "precision": self.precision,
            "compute_units": self.recommendation.as_dict(),
            "audit": {
                "clean": self.audit.clean,
                "widest_axis": self.audit.widest_axis,
                "widest_tensor": self.audit.widest_tensor,
                "offending_tensors": self.audit.offending_tensors(),
                "first_error_text": self.audit.first_error_text,
            },
            "checks": {"trace_vs_eager_max_abs_diff": self.trace_max_abs_diff},
        }


@dataclass
class ExportResult:
    out_dir: Path
    components: list[ComponentResult] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)

    def table(self, timings: bool = True) -> str:
        """A short text table: component, file size, ops, audit verdict, compute units
        (and export seconds unless ``timings=False``, for output that must not vary)."""
        rows = [("component", "size", "ops", "audit", "compute units", "seconds")]
        for c in self.components:
            rows.append((
                c.name, _human(c.size_bytes), str(c.ops),
                "clean" if c.audit.clean else f"OVER ({c.audit.widest_axis})",
                c.recommendation.units, f"{c.seconds:.1f}",
            ))
        if not timings:
            rows = [r[:-1] for r in rows]
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in rows)


def _human(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _dtype_name(var) -> str:
    from coremltools.converters.mil.mil import types

    return types.builtin_to_string(var.dtype)


def _describe(vars_) -> list[dict[str, Any]]:
    return [{"name": v.name, "shape": [int(s) for s in v.shape], "dtype": _dtype_name(v)} for v in vars_]


def _precision_used(loaded, requested: Precision) -> dict[str, Any]:
    """The precision the program really computes in: counts of fp16 and fp32 op outputs."""
    counts = {"fp16": 0, "fp32": 0}
    for op in loaded.main.operations:
        if op.op_type == "const":
            continue
        for var in op.outputs:
            name = _dtype_name(var)
            if name in counts:
                counts[name] += 1
    used = "fp16" if counts["fp16"] > 0 else "fp32"
    return {"requested": requested, "used": used, "op_outputs_fp16": counts["fp16"], "op_outputs_fp32": counts["fp32"]}


def _max_abs_diff(a, b) -> float:
    a = a if isinstance(a, (tuple, list)) else (a,)
    b = b if isinstance(b, (tuple, list)) else (b,)
    return max(float((x.double() - y.double()).abs().max()) if x.numel() else 0.0 for x, y in zip(a, b))


def export_component(
    name: str,
    wrapper: torch.nn.Module,
    modules: ParakeetModules,
    staging: Path,
    precision: Precision,
) -> ComponentResult:
    """Trace, check, convert, save into ``staging``, reload, check and audit one component."""
    component = COMPONENTS[name]
    start = time.perf_counter()
    inputs = example_inputs(component, modules)
    traced = trace(wrapper, inputs)
    with torch.no_grad():
        diff = _max_abs_diff(traced(*inputs), wrapper(*inputs))
    if not diff <= TRACE_ATOL:
        raise ExportError(f"{name}: the traced module differs from the eager one by {diff:.3g} (> {TRACE_ATOL})")
    mlmodel = to_coreml(traced, component, modules, precision)
    path = staging / component.file
    mlmodel.save(str(path))
    loaded = load_program(path)
    declared_in = [v.name for v in loaded.main.inputs.values()]
    declared_out = [v.name for v in loaded.main.outputs]
    expected_in = [s.name for s in component.inputs]
    if declared_in != expected_in or declared_out != list(component.outputs):
        raise ExportError(
            f"{name}: the saved package declares inputs {declared_in} and outputs {declared_out}; "
            f"the contract says {expected_in} and {list(component.outputs)}"
        )
    described_in, described_out = _describe(loaded.main.inputs.values()), _describe(loaded.main.outputs)
    wrong = [f"{t['name']} is {t['dtype']}" for t in described_in + described_out if t["dtype"] != contract_dtype(t["name"])]
    if wrong:
        raise ExportError(f"{name}: {', '.join(wrong)}; the contract says int32 for lengths, labels and decisions, fp32 otherwise")
    report = audit_program(loaded)
    op_types = {op.op_type for op in loaded.main.operations}
    return ComponentResult(
        name=name,
        file=component.file,
        seconds=time.perf_counter() - start,
        trace_max_abs_diff=diff,
        inputs=described_in,
        outputs=described_out,
        ops=sum(1 for op in loaded.main.operations if op.op_type != "const"),
        op_types=sorted(op_types - {"const"}),
        precision=_precision_used(loaded, precision),
        audit=report,
        recommendation=compute_units.recommend(report, op_types),
        size_bytes=_dir_size(path),
    )


def versions() -> dict[str, str]:
    """Versions of everything that shapes the exported programs."""
    import coremltools
    import nemo

    return {
        "parakeet_nb": parakeet_nb.__version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "coremltools": coremltools.__version__,
        "nemo_toolkit": nemo.__version__,
        "numpy": np.__version__,
    }


def _model_metadata(modules: ParakeetModules) -> dict[str, Any]:
    data: dict[str, Any] = {
        "source": modules.source,
        "d_model": modules.d_model,
        "pred_hidden": modules.pred_hidden,
        "pred_rnn_layers": modules.pred_rnn_layers,
        "vocab_size": modules.vocab_size,
        "blank_id": modules.blank_id,
        "tdt_durations": list(modules.durations),
    }
    if modules.preset is not None:
        data["preset"] = modules.preset.as_dict()
    if modules.sha256 is not None:
        data["checkpoint_sha256"] = modules.sha256
    return data


def _check_out_dir(out_dir: Path) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise ExportError(f"{out_dir}: exists and is a file; expected a folder (or a path that does not exist)")


def select(only: Sequence[str] | None) -> list[str]:
    """Validate ``--only`` names; ``None`` means every component, in contract order."""
    if not only:
        return list(COMPONENTS)
    unknown = [n for n in only if n not in COMPONENTS]
    if unknown:
        raise ValueError(
            f"unknown component{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}: "
            f"expected names from {', '.join(COMPONENTS)}"
        )
    return [n for n in COMPONENTS if n in only]


def export(
    modules: ParakeetModules,
    out_dir: str | os.PathLike,
    *,
    only: Sequence[str] | None = None,
    precision: Precision = "fp32",
    progress: Callable[[str], None] | None = None,
) -> ExportResult:
    """Export the selected components of ``modules`` into ``out_dir`` with ``metadata.json``.

    ``progress`` is called with each component's name before it starts. Existing packages
    of the selected components are replaced; others in ``out_dir`` are kept, and
    ``metadata.json`` keeps their entries when they came from the same model source.
    """
    out_dir = Path(out_dir)
    _check_out_dir(out_dir)
    names = select(only)
    if precision not in ("fp32", "fp16"):
        raise ValueError(f"unknown precision {precision!r}: expected fp32 or fp16")
    all_wrappers = wrappers(modules, precision)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.staging-", dir=out_dir.parent))
    try:
        results = []
        for name in names:
            if progress is not None:
                progress(name)
            results.append(export_component(name, all_wrappers[name], modules, staging, precision))
        metadata = _metadata(modules, results, out_dir)
        (staging / "metadata.json").write_text(json.dumps(metadata, indent=2) + "\n")
        _publish(staging, out_dir, [r.file for r in results])
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return ExportResult(out_dir=out_dir, components=results, metadata=metadata)


def _metadata(modules: ParakeetModules, results: list[ComponentResult], out_dir: Path) -> dict[str, Any]:
    components: dict[str, Any] = {}
    previous = out_dir / "metadata.json"
    if previous.is_file():
        try:
            old = json.loads(previous.read_text())
        except json.JSONDecodeError:
            old = {}
        if old.get("model", {}).get("source") == modules.source:
            components.update({k: v for k, v in old.get("components", {}).items() if (out_dir / v["file"]).exists()})
    for r in results:
        components[r.name] = r.metadata()
    ordered = {name: components[name] for name in COMPONENTS if name in components}
    return {
        "format": "parakeet-nb export 1",
        "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "model": _model_metadata(modules),
        "audio": {
            "sample_rate": SAMPLE_RATE,
            "window_seconds": WINDOW_SAMPLES / SAMPLE_RATE,
            "window_samples": WINDOW_SAMPLES,
            "hop_samples": HOP,
        },
        "deployment_target": "iOS17",
        "components": ordered,
        "versions": versions(),
        "platform": {"system": platform.system(), "machine": platform.machine(), "python": sys.version.split()[0]},
    }


def _publish(staging: Path, out_dir: Path, files: list[str]) -> None:
    """Move staged packages and metadata into ``out_dir``, replacing older ones last-moment."""
    out_dir.mkdir(parents=True, exist_ok=True)
    trash = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old-", dir=out_dir.parent))
    try:
        for name in [*files, "metadata.json"]:
            target = out_dir / name
            if target.exists():
                os.replace(target, trash / name)
            os.replace(staging / name, target)
    finally:
        shutil.rmtree(trash, ignore_errors=True)
