"""Export every component of the contract to ``.mlpackage`` files plus ``metadata.json``.

Each component is traced, checked (the traced module agrees with its eager original on
the example inputs), converted, saved, reloaded with ``skip_model_load`` (its declared
inputs and outputs must be the contract's), audited and planned. Everything is written into a
staging folder beside the output folder and moved into place only when every requested
component succeeded, so a failure never leaves a half-written package or metadata.

Precision profiles (:func:`parakeet_nb.coreml.convert.component_precision`): ``auto``
(default) converts every component the ANE may take in float16 and keeps the waveform-in
``preprocessor`` and ``mel_encoder`` in float32; ``fp32`` converts everything in float32
(the parity reference; Core ML runs it on CPU/GPU); ``fp16`` everything in float16.
Inputs and outputs stay float32/int32 in every profile. ``metadata.json`` records per
component the precision used, the recommended compute units (which follow typed execution,
:mod:`parakeet_nb.ane.compute_units`) and the *predicted* placement of its ops under them
(:func:`parakeet_nb.ane.planner.plan`, typed reading). Every export folder also gets
``compile.sh``, which compiles the packages to ``.mlmodelc`` with ``xcrun coremlcompiler``
on a Mac; ``compile=True`` does it during the export (macOS only, coremltools'
``compile_model``).
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
from parakeet_nb.ane import compute_units, planner
from parakeet_nb.ane.audit import AuditReport, audit_program
from parakeet_nb.model.components import wrappers
from parakeet_nb.coreml.convert import (
    COMPONENTS,
    PROFILES,
    Precision,
    Profile,
    component_precision,
    contract_dtype,
    example_inputs,
    to_coreml,
    trace,
)
from parakeet_nb.frontend.recipe import HOP, SAMPLE_RATE, WINDOW_SAMPLES
from parakeet_nb.model.presets import ParakeetModules
from parakeet_nb.mlprogram.load import load_program

#: Tolerance for traced-vs-eager agreement (the same code on the same inputs).
TRACE_ATOL = 1e-5


#: The planner settings of the placement recorded in ``metadata.json``.
PLACEMENT_POLICY = "greedy"


class ExportError(RuntimeError):
    """A component failed a post-conversion check; the message names it and the check."""


class CompileUnavailable(ExportError):
    """``compile=True`` on a system without Core ML's compiler (anything but macOS)."""


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
    placement: dict[str, Any]
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
            "placement": self.placement,
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
        """:func:`metadata_table` of this export, with each component's export seconds unless
        ``timings=False`` (for output that must not vary)."""
        seconds = {c.name: c.seconds for c in self.components} if timings else None
        return metadata_table(self.metadata, seconds, only=[c.name for c in self.components])


def metadata_table(metadata: dict[str, Any], seconds: dict[str, float] | None = None,
                   only: Sequence[str] | None = None) -> str:
    """A short text table of an export folder's ``metadata.json``: component, file size, ops,
    audit verdict, precision used, compute units (and export seconds when given)."""
    header = ("component", "size", "ops", "audit", "precision", "compute units") + (("seconds",) if seconds else ())
    rows = [header]
    for name, entry in metadata["components"].items():
        if only is not None and name not in only:
            continue
        audit_ = entry["audit"]
        rows.append((
            name, _human(entry["size_bytes"]), str(entry["ops"]),
            "clean" if audit_["clean"] else f"OVER ({audit_['widest_axis']})",
            entry["precision"]["used"], entry["compute_units"]["compute_units"],
        ) + ((f"{seconds[name]:.1f}",) if seconds else ()))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
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


def _precision_used(loaded, requested: Precision, profile: str) -> dict[str, Any]:
    """The precision the program really computes in (``used``: ``fp16``, ``fp32`` or ``mixed``,
    :func:`parakeet_nb.ane.planner.program_precision`, the reading the compute units follow)
    and the counts of fp16 and fp32 op outputs; ``requested`` is the component's precision
    under the export ``profile``."""
    counts = {"fp16": 0, "fp32": 0}
    for op in loaded.main.operations:
        if op.op_type == "const":
            continue
        for var in op.outputs:
            name = _dtype_name(var)
            if name in counts:
                counts[name] += 1
    used = planner.program_precision(loaded)
    return {
        "profile": profile, "requested": requested, "used": used,
        "op_outputs_fp16": counts["fp16"], "op_outputs_fp32": counts["fp32"],
    }


def _placement(loaded, units: str) -> dict[str, Any]:
    """The planner's *predicted* op counts per device when loaded with ``units`` (typed reading)."""
    result = planner.plan(loaded, units, PLACEMENT_POLICY, typed_execution=True)
    counts = result.counts()
    return {
        "predicted": True,
        "compute_units": units,
        "policy": PLACEMENT_POLICY,
        "typed_execution": True,
        "ops": {device: counts[device] for device in ("ANE", "GPU", "CPU")},
    }


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
    profile: str | None = None,
) -> ComponentResult:
    """Trace, check, convert, save into ``staging``, reload, check, audit and plan one component.

    ``profile`` is the export profile recorded beside ``precision`` (default: ``precision``).
    """
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
    used = _precision_used(loaded, precision, profile or precision)
    recommendation = compute_units.recommend(report, op_types, used["used"])
    return ComponentResult(
        name=name,
        file=component.file,
        seconds=time.perf_counter() - start,
        trace_max_abs_diff=diff,
        inputs=described_in,
        outputs=described_out,
        ops=sum(1 for op in loaded.main.operations if op.op_type != "const"),
        op_types=sorted(op_types - {"const"}),
        precision=used,
        audit=report,
        recommendation=recommendation,
        placement=_placement(loaded, recommendation.units),
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
    """Validate ``--only`` names; ``None`` means every default component, in contract order."""
    if not only:
        return [name for name, c in COMPONENTS.items() if c.default]
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
    precision: Profile = "auto",
    compile: bool = False,
    progress: Callable[[str], None] | None = None,
    layout: str = "parakeet-nb",
) -> ExportResult:
    """Export the selected components of ``modules`` into ``out_dir`` with ``metadata.json``
    and ``compile.sh``.

    ``layout="fluidaudio"`` writes FluidAudio's folder instead
    (:func:`parakeet_nb.coreml.fluidaudio_export.export_layout`; the result's ``out_dir`` is
    that folder and its metadata has a ``layout`` section).

    ``precision`` is a profile, ``auto`` (default), ``fp32`` or ``fp16`` (module docstring).
    ``compile=True`` also writes ``<package>.mlmodelc`` beside each package (macOS only:
    elsewhere :class:`CompileUnavailable` is raised before anything is done).
    ``progress`` is called with each component's name before it starts. Existing packages
    of the selected components are replaced; others in ``out_dir`` are kept, and
    ``metadata.json`` keeps their entries when they came from the same model source.
    """
    if layout != "parakeet-nb":
        from parakeet_nb.coreml import fluidaudio_export  # it builds on this module

        if layout not in fluidaudio_export.LAYOUTS:
            raise ValueError(f"unknown layout {layout!r}: expected one of {', '.join(fluidaudio_export.LAYOUTS)}")
        return fluidaudio_export.export_layout(
            modules, out_dir, only=only, precision=precision, compile=compile, progress=progress).result
    out_dir = Path(out_dir)
    _check_out_dir(out_dir)
    names = select(only)
    if precision not in PROFILES:
        raise ValueError(f"unknown precision {precision!r}: expected one of {', '.join(PROFILES)}")
    if compile:
        check_can_compile()
    precisions = {name: component_precision(precision, name) for name in names}
    wrapper_sets = {p: wrappers(modules, p) for p in sorted(set(precisions.values()))}
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.staging-", dir=out_dir.parent))
    try:
        results = []
        files = []
        for name in names:
            if progress is not None:
                progress(name)
            result = export_component(name, wrapper_sets[precisions[name]][name], modules, staging, precisions[name], precision)
            results.append(result)
            files.append(result.file)
            if compile:
                files.append(_compile(staging / result.file))
        metadata = _metadata(modules, results, out_dir)
        (staging / "metadata.json").write_text(json.dumps(metadata, indent=2) + "\n")
        (staging / COMPILE_SCRIPT).write_text(compile_script([c["file"] for c in metadata["components"].values()]))
        _publish(staging, out_dir, [*files, COMPILE_SCRIPT])
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return ExportResult(out_dir=out_dir, components=results, metadata=metadata)


#: The script every export folder gets: compile each package to ``.mlmodelc`` on a Mac.
COMPILE_SCRIPT = "compile.sh"


def compile_script(packages: Sequence[str]) -> str:
    """``compile.sh`` for ``packages`` (file names in the export folder).

    ``sh compile.sh [OUTDIR]`` runs ``xcrun coremlcompiler compile <package> <OUTDIR>`` for
    each, which writes ``OUTDIR/<name>.mlmodelc`` (default OUTDIR: the export folder);
    Xcode's command-line tools are required (the same call as e.g. the Makefile of
    https://github.com/ishikawa/coreml-llm).
    """
    lines = [
        "#!/bin/sh",
        "# Compile every package of this export to .mlmodelc (macOS with Xcode's command-line tools).",
        "# Written by `parakeet-nb export`. Usage: sh compile.sh [OUTDIR]   (default OUTDIR: this folder)",
        "set -eu",
        'here="$(cd "$(dirname "$0")" && pwd)"',
        'out="${1:-$here}"',
        'mkdir -p "$out"',
    ]
    lines += [f'xcrun coremlcompiler compile "$here/{p}" "$out"' for p in packages]
    return "\n".join(lines) + "\n"


def check_can_compile() -> None:
    """Raise :class:`CompileUnavailable` unless this is macOS (Core ML's compiler)."""
    if platform.system() != "Darwin":
        raise CompileUnavailable(
            f"--compile needs macOS (Core ML's compiler); this is {platform.system()}: "
            f"run the export folder's {COMPILE_SCRIPT} on a Mac instead"
        )


def _compile(package: Path) -> str:
    """Compile ``package`` to ``<name>.mlmodelc`` beside it (coremltools' ``compile_model``); its file name."""
    from coremltools.models.utils import compile_model

    compiled = package.with_suffix(".mlmodelc")
    compile_model(str(package), str(compiled))
    return compiled.name


def previous_metadata(folder: Path) -> dict[str, Any]:
    """The ``metadata.json`` an earlier export left in ``folder``, or ``{}`` (none, or unreadable)."""
    try:
        return json.loads((folder / "metadata.json").read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def _metadata(modules: ParakeetModules, results: list[ComponentResult], out_dir: Path) -> dict[str, Any]:
    components: dict[str, Any] = {}
    old = previous_metadata(out_dir)
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
