"""The results of ``parakeet-nb device-check``: what was measured, what could not be, and why.

Every measurement is either a number taken on the Mac or a :class:`NotMeasured` with the
reason (a load Core ML refused, a child process that crashed, a package with no inputs to
feed, a compiled ``.mlmodelc`` the planner cannot read): a report never holds a number it
did not measure. The placement columns pair a *prediction* (the planner's model) with a
*measurement* (Core ML's compute plan); :data:`NOTICE` says so in every report.

JSON schema ``parakeet-nb/device-check/1`` (:meth:`DeviceReport.as_dict`):

* ``schema``, ``notice`` (str), ``machine`` {``system``, ``macos``, ``machine``, ``python``,
  ``coremltools``}, ``runs``, ``warmup`` (int)
* ``devices``: [{``device``: ``ANE``/``GPU``/``CPU``, ``cores``: int or null}] as
  ``MLModel.get_available_compute_devices()`` lists them, or a not-measured object
* ``packages``: [{``name``, ``file``, ``inputs`` (str: what was fed), ``compile_seconds``,
  ``settings``: [{``compute_units``, ``load_seconds``, ``placement`` (see
  :meth:`parakeet_nb.device.compare.PlacementComparison.as_dict`), ``latency`` {``runs``,
  ``warmup``, ``median_ms``, ``p10_ms``, ``p90_ms``, ``min_ms``, ``max_ms``}, ``errors``
  {``pytorch``, ``executor``: [{``output``, ``max_abs``, ``mean_abs``, ``ref_max``}]}}]}]
* ``notes``: [str]

Any measured field may instead be ``{"measured": false, "reason": str}``. A non-finite
error (a NaN or an infinity in Core ML's output) is written as the string ``"nan"`` /
``"inf"``, never as a bare number.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np

from parakeet_nb.device.compare import PlacementComparison

SCHEMA = "parakeet-nb/device-check/1"

NOTICE = (
    "Measured on this Mac by Core ML: compile, load and predict times, predict outputs, and each op's "
    "device from Core ML's compute plan (MLComputePlan, macOS 14.4+; "
    "https://developer.apple.com/documentation/coreml/mlcomputeplan). The 'predicted' placement is the "
    "planner's model (parakeet_nb.ane.planner), not a measurement. 'devices' records what Core ML lists as "
    "available on this machine: a virtual machine may list no Neural Engine."
)

#: The references predict outputs are compared with.
REFERENCES: dict[str, str] = {
    "pytorch": "the float32 PyTorch module the package was converted from (parakeet_nb.model.components.wrappers)",
    "executor": "the package run as typed by the reference MIL executor (parakeet_nb.mlprogram.milexec)",
}


@dataclass(frozen=True)
class NotMeasured:
    """A measurement that could not be taken, and why (one line)."""

    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"measured": False, "reason": self.reason}


T = TypeVar("T")
Maybe = T | NotMeasured


def _number(x: float) -> float | str:
    """A finite float as itself, a non-finite one as ``"nan"``/``"inf"``/``"-inf"``."""
    return float(x) if math.isfinite(x) else str(float(x))


def _json(value: Any) -> Any:
    if isinstance(value, NotMeasured):
        return value.as_dict()
    if isinstance(value, float):
        return _number(value)
    return value.as_dict() if hasattr(value, "as_dict") else value


def _counts(placement: PlacementComparison, side: str) -> str:
    """``ANE/GPU/CPU`` op counts of one side, e.g. ``"12/0/3"``."""
    counts = placement.device_counts(side)
    return "/".join(str(counts[d]) for d in ("ANE", "GPU", "CPU"))


@dataclass(frozen=True)
class Latency:
    """Predict wall-clock times in milliseconds over ``runs`` calls after ``warmup`` calls."""

    runs: int
    warmup: int
    median_ms: float
    p10_ms: float
    p90_ms: float
    min_ms: float
    max_ms: float

    @classmethod
    def from_seconds(cls, seconds: list[float], warmup: int) -> Latency:
        """Summarise per-call times in seconds (at least one)."""
        if not seconds:
            raise ValueError("no predict timings to summarise")
        ms = np.asarray(seconds, dtype=np.float64) * 1e3
        p10, median, p90 = np.percentile(ms, [10, 50, 90])
        return cls(len(ms), warmup, float(median), float(p10), float(p90), float(ms.min()), float(ms.max()))

    def as_dict(self) -> dict[str, Any]:
        return {k: _json(v) for k, v in self.__dict__.items()}


@dataclass(frozen=True)
class OutputError:
    """``|Core ML output - reference|`` of one output: max and mean, and the reference's largest magnitude."""

    output: str
    max_abs: float
    mean_abs: float
    ref_max: float

    @classmethod
    def between(cls, output: str, measured: np.ndarray, reference: np.ndarray) -> OutputError:
        """The error of ``measured`` against ``reference`` (same shape; ``ValueError`` otherwise).

        Accumulated in float64; non-finite values in ``measured`` give an infinite error.
        """
        a = np.asarray(measured, dtype=np.float64)
        b = np.asarray(reference, dtype=np.float64)
        if a.shape != b.shape:
            raise ValueError(f"{output}: Core ML gave shape {list(a.shape)}, the reference {list(b.shape)}")
        if a.size == 0:
            return cls(output, 0.0, 0.0, 0.0)
        ref_max = float(np.abs(b).max())
        if not np.all(np.isfinite(a)):
            return cls(output, math.inf, math.inf, ref_max)
        d = np.abs(a - b)
        return cls(output, float(d.max()), float(d.mean()), ref_max)

    def as_dict(self) -> dict[str, Any]:
        return {k: _json(v) for k, v in self.__dict__.items()}


@dataclass
class SettingResult:
    """One package under one compute-unit setting."""

    compute_units: str
    load_seconds: Maybe[float]
    placement: Maybe[PlacementComparison]
    latency: Maybe[Latency]
    errors: dict[str, Maybe[list[OutputError]]] = field(default_factory=dict)

    def worst_error(self, reference: str) -> Maybe[float]:
        rows = self.errors.get(reference, NotMeasured("not compared"))
        if isinstance(rows, NotMeasured):
            return rows
        return max((r.max_abs for r in rows), default=0.0)

    def as_dict(self) -> dict[str, Any]:
        return {
            "compute_units": self.compute_units,
            "load_seconds": _json(self.load_seconds),
            "placement": _json(self.placement),
            "latency": _json(self.latency),
            "errors": {
                ref: (rows.as_dict() if isinstance(rows, NotMeasured) else [r.as_dict() for r in rows])
                for ref, rows in self.errors.items()
            },
        }


@dataclass
class PackageResult:
    """One package: its compile time and every requested compute-unit setting."""

    name: str
    file: str
    inputs: str
    compile_seconds: Maybe[float]
    settings: list[SettingResult] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "file": self.file, "inputs": self.inputs,
            "compile_seconds": _json(self.compile_seconds),
            "settings": [s.as_dict() for s in self.settings],
        }


@dataclass
class DeviceReport:
    """Everything ``device-check`` measured on one machine."""

    machine: dict[str, str]
    devices: Maybe[list[dict[str, Any]]]
    runs: int
    warmup: int
    packages: list[PackageResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "notice": NOTICE,
            "machine": dict(self.machine),
            "runs": self.runs,
            "warmup": self.warmup,
            "devices": _json(self.devices),
            "references": dict(REFERENCES),
            "packages": [p.as_dict() for p in self.packages],
            "notes": list(self.notes),
        }

    def placement_panels(self) -> list[tuple[str, PlacementComparison]]:
        """``("package units", comparison)`` for every setting whose placement was compared."""
        return [(f"{p.name} {s.compute_units}", s.placement) for p in self.packages for s in p.settings
                if isinstance(s.placement, PlacementComparison)]

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.as_dict(), indent=indent, allow_nan=False)

    def table(self, disagreements: int | None = 8) -> str:
        """A fixed-width table (one line per package and setting), then what was not measured
        and why, then the disagreements (at most ``disagreements`` per setting; ``None``: all)."""
        head = (f"{'package':28s} {'units':11s} {'compile':>8s} {'load':>7s} {'agree':>6s} "
                f"{'actual A/G/C':>13s} {'predicted A/G/C':>15s} {'median':>9s} {'p10-p90':>15s} "
                f"{'vs torch':>9s} {'vs exec':>9s}")
        lines = [head, "-" * len(head)]
        missing: list[str] = []
        differ: list[str] = []
        widths = (8, 7, 6, 13, 15, 9, 15, 9, 9)
        for p in self.packages:
            for s in p.settings:
                where = f"{p.name} {s.compute_units}"

                def text(value: Maybe[Any], fmt: Any, what: str) -> str:
                    if isinstance(value, NotMeasured):
                        missing.append(f"{where}: {what}: {value.reason}")
                        return "-"
                    return fmt(value)

                plc, lat = s.placement, s.latency
                cols = [
                    text(p.compile_seconds, lambda v: f"{v:.2f}s", "compile"),
                    text(s.load_seconds, lambda v: f"{v:.2f}s", "load"),
                    text(plc, lambda v: "n/a" if v.agreement is None else f"{v.agreement:.0%}", "placement"),
                    "-" if isinstance(plc, NotMeasured) else _counts(plc, "actual"),
                    "-" if isinstance(plc, NotMeasured) else _counts(plc, "predicted"),
                    text(lat, lambda v: f"{v.median_ms:.2f}ms", "latency"),
                    "-" if isinstance(lat, NotMeasured) else f"{lat.p10_ms:.2f}-{lat.p90_ms:.2f}ms",
                    *(text(s.worst_error(ref), lambda v: f"{v:.2e}", f"vs {ref}") for ref in REFERENCES),
                ]
                lines.append(f"{p.name[:28]:28s} {s.compute_units:11s} "
                             + " ".join(f"{c:>{w}s}" for c, w in zip(cols, widths)))
                if not isinstance(plc, NotMeasured):
                    bad = plc.disagreements
                    shown = bad if disagreements is None else bad[:disagreements]
                    differ += [f"{where}: {o.key} ({o.op_type}) predicted {o.predicted}, Core ML {o.actual}"
                               + (f" (supports {', '.join(o.supported)})" if o.supported else "") for o in shown]
                    if len(bad) > len(shown):
                        differ.append(f"{where}: ... {len(bad) - len(shown)} more disagreements (see the JSON)")
        devices = self.devices
        listed = ("not measured: " + devices.reason) if isinstance(devices, NotMeasured) else (
            ", ".join(d["device"] + (f" ({d['cores']} cores)" if d["cores"] else "") for d in devices) or "none")
        lines += ["", f"devices Core ML lists as available: {listed}",
                  f"latency: {self.runs} predicts after {self.warmup} warm-up; agree: share of the ops both "
                  "sides place that Core ML's compute plan puts on the predicted device; A/G/C: ops on "
                  "ANE/GPU/CPU; vs torch / vs exec: largest |Core ML - reference| over the outputs"]
        if missing:
            lines += ["", "not measured:"] + [f"  {m}" for m in dict.fromkeys(missing)]
        if differ:
            lines += ["", "disagreements (op, predicted, measured):"] + [f"  {d}" for d in differ]
        lines += [f"note: {n}" for n in self.notes]
        lines.append(f"notice: {NOTICE}")
        return "\n".join(lines)
