"""What a partition plan holds: placements, segments, borders, rejections, and its reports.

The result type of :func:`parakeet_nb.ane.planner.plan`, with the vocabulary it uses
(compute units, policies, devices, the reasons an op got its device) and its text and JSON
forms (schema :data:`SCHEMA`). A plan is a *prediction* of a model of Core ML, never a
measurement: :data:`MODEL_NOTICE` says so in every report.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from parakeet_nb.ane.layout import Flexible, Size

ComputeUnits = Literal["CPU_ONLY", "CPU_AND_GPU", "CPU_AND_NE", "ALL"]
Policy = Literal["conservative", "greedy"]
Device = Literal["ANE", "GPU", "CPU"]

COMPUTE_UNITS: tuple[str, ...] = ("CPU_ONLY", "CPU_AND_GPU", "CPU_AND_NE", "ALL")
POLICIES: tuple[str, ...] = ("conservative", "greedy")
DEVICES: tuple[str, ...] = ("ANE", "GPU", "CPU")
#: One colour per device, shared by every figure that draws a placement.
DEVICE_COLORS: dict[str, str] = {"ANE": "#3a9d5d", "GPU": "#4f7fd9", "CPU": "#9a9a9a"}

#: Version of the JSON layout of :meth:`Plan.as_dict`.
SCHEMA = "parakeet-nb/plan/1"

MODEL_NOTICE = (
    "This plan comes from a model of Core ML's partitioning built from public reports "
    "(see parakeet_nb.ane.planner and parakeet_nb.ane.op_table), not from Apple's compiler. Apple "
    "documents neither the ANE op set nor the partitioning rules; check a real device "
    "with Xcode's Core ML performance report."
)

#: Why an op got its device (``OpPlacement.reason``).
REASONS: dict[str, str] = {
    "const": "a constant: no device, folded into the segments that use it",
    "compute_units": "CPU_ONLY: every op runs on the CPU",
    "cpu_only_op": "the op type has no ANE kernel (ane_ops: cpu_only)",
    "unknown_op": "the op type is not in the ANE op table; treated as not ANE-capable",
    "integer_only": "touches integer data (or only booleans): the ANE computes in float16",
    "fp32_typed": "typed execution: fp32-typed ops run on GPU/CPU only",
    "heavy": "a heavy op: starts a segment on the accelerator",
    "follows": "consumes a tensor made on the accelerator: joins its segment",
    "absorbed": "greedy: pulled into the ANE segment backwards (it feeds ANE ops)",
    "over_limit": "touches a tensor over the ANE limits: left off the ANE (conservative)",
    "not_reached": "ANE-capable, but no heavy op upstream starts a segment for it",
    "gpu_texture_limit": "a convolution with an input axis over 16384: not on the GPU (texture limit)",
    "nested": "inside a control-flow block: runs where the block's op runs",
}



@dataclass(frozen=True)
class TensorInfo:
    """One tensor of the program, its shape resolved to numbers where flexible.

    ``producer`` is the index of the op that makes it (``None`` for function inputs);
    ``ndchw`` is ``None`` when the shape cannot be placed (rank over 5, or not a tensor).
    """

    name: str
    shape: tuple[Size, ...] | None
    dtype: str
    producer: int | None
    const: bool
    ndchw: str | None
    over_limit: bool
    error_text: str | None
    largest_axis: int | None

    def shape_list(self) -> list[int | str] | None:
        return None if self.shape is None else [str(s) if isinstance(s, Flexible) else s for s in self.shape]

    def shape_text(self) -> str:
        return "?" if self.shape is None else "[" + ", ".join(str(s) for s in self.shape) + "]"

@dataclass(frozen=True)
class OpPlacement:
    """Where one op runs. ``index`` is its position in program order (constants and
    nested ops included, the auditor's numbering); ``device`` is ``None`` for constants;
    ``reason`` is a key of :data:`REASONS`; ``over_limit`` says the op touches a tensor
    over the ANE limits (on any device)."""

    index: int
    name: str
    op_type: str
    op_class: str
    device: Device | None
    segment: int | None
    reason: str
    over_limit: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "index": self.index, "name": self.name, "op_type": self.op_type,
            "op_class": self.op_class, "device": self.device, "segment": self.segment,
            "reason": self.reason, "over_limit": self.over_limit,
        }

@dataclass(frozen=True)
class Segment:
    """A group of ops that run together on one device, in program order.

    ``inputs``/``outputs`` are the names of the border tensors entering and leaving it.
    """

    id: int
    device: Device
    ops: tuple[int, ...]
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    op_types: dict[str, int]

    @property
    def first(self) -> int:
        return self.ops[0]

    @property
    def last(self) -> int:
        return self.ops[-1]

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "device": self.device, "op_count": len(self.ops),
            "first_op": self.first, "last_op": self.last, "ops": list(self.ops),
            "op_types": dict(self.op_types), "inputs": list(self.inputs),
            "outputs": list(self.outputs),
        }

@dataclass(frozen=True)
class Border:
    """A tensor that crosses between segments (or in from the caller, or out to it).

    ``from_segment`` is ``None`` for a function input; ``to_segments`` lists the other
    segments that use it; ``error_text`` is the ANE's rejection text when the tensor is
    over the limits and an ANE segment is on either side.
    """

    tensor: str
    shape: tuple[Size, ...] | None
    ndchw: str | None
    dtype: str
    from_segment: int | None
    from_device: str
    to_segments: tuple[int, ...]
    to_devices: tuple[str, ...]
    function_input: bool
    function_output: bool
    over_limit: bool
    error_text: str | None

    @property
    def touches_ane(self) -> bool:
        return self.from_device == "ANE" or "ANE" in self.to_devices

    def as_dict(self) -> dict[str, Any]:
        return {
            "tensor": self.tensor,
            "shape": None if self.shape is None else [str(s) if isinstance(s, Flexible) else s for s in self.shape],
            "ndchw": self.ndchw, "dtype": self.dtype,
            "from_segment": self.from_segment, "from_device": self.from_device,
            "to_segments": list(self.to_segments), "to_devices": list(self.to_devices),
            "function_input": self.function_input, "function_output": self.function_output,
            "over_limit": self.over_limit, "error_text": self.error_text,
        }

@dataclass(frozen=True)
class Rejection:
    """A tensor over the limits that an ANE segment touches: the device would reject it.

    ``where`` is ``"input"`` (it enters the segment), ``"output"`` (made in the segment and
    used outside it) or ``"internal"``; ``op_*`` name the first ANE op that touches it.
    """

    segment: int
    tensor: str
    shape: tuple[Size, ...] | None
    ndchw: str | None
    where: Literal["input", "internal", "output"]
    op_index: int
    op_type: str
    op_name: str
    error_text: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "segment": self.segment, "tensor": self.tensor,
            "shape": None if self.shape is None else [str(s) if isinstance(s, Flexible) else s for s in self.shape],
            "ndchw": self.ndchw, "where": self.where, "op_index": self.op_index,
            "op_type": self.op_type, "op_name": self.op_name, "error_text": self.error_text,
        }

@dataclass
class Plan:
    """The planner's result for one program under one compute-unit setting and policy.

    ``ops`` are in program order (every op, constants included); ``segments`` are sorted
    by their first op; ``borders`` are in program order of the tensors; ``rejections``
    are the ANE validation failures in program order, and ``validation_error`` is the
    device's text for the first (``None`` when the ANE would accept every segment).
    """

    path: str
    compute_units: ComputeUnits
    policy: Policy
    typed_execution: bool
    precision: str
    ops: list[OpPlacement]
    segments: list[Segment]
    borders: list[Border]
    rejections: list[Rejection]
    notes: list[str] = field(default_factory=list)
    tensors: dict[str, TensorInfo] = field(default_factory=dict, repr=False)
    function_inputs: tuple[str, ...] = ()
    function_outputs: tuple[str, ...] = ()

    model_notice: str = MODEL_NOTICE

    @property
    def validation_error(self) -> str | None:
        """The ANE's error text for the first rejected tensor, or ``None``."""
        return self.rejections[0].error_text if self.rejections else None

    @property
    def valid(self) -> bool:
        """True when no ANE segment touches a tensor over the limits."""
        return not self.rejections

    @property
    def exit_code(self) -> int:
        """Suggested CLI exit code: 0 when valid, 1 when the ANE would reject the plan
        (2 is for unreadable input, raised as ``ModelReadError`` before a plan exists)."""
        return 0 if self.valid else 1

    def counts(self) -> dict[str, int]:
        """Ops per device (``const`` for constants, ``ops`` for non-constant ops)."""
        c = Counter(p.device or "const" for p in self.ops)
        out = {"ops": sum(v for k, v in c.items() if k != "const"), "const": c.get("const", 0)}
        out.update({d: c.get(d, 0) for d in DEVICES})
        return out

    def device_of(self, op_name: str) -> Device | None:
        """The device of the op called ``op_name`` (``KeyError`` if there is none)."""
        for p in self.ops:
            if p.name == op_name:
                return p.device
        raise KeyError(op_name)

    def segment(self, segment_id: int) -> Segment:
        return self.segments[segment_id]

    def ane_segments(self) -> list[Segment]:
        return [s for s in self.segments if s.device == "ANE"]

    def border(self, tensor: str) -> Border:
        """The border record of ``tensor`` (``KeyError`` if it crosses no border)."""
        for b in self.borders:
            if b.tensor == tensor:
                return b
        raise KeyError(tensor)

    def as_dict(self) -> dict[str, Any]:
        """The plan as JSON-ready data. Schema (``"schema": "parakeet-nb/plan/1"``):

        * ``model_notice`` (str), ``path`` (str), ``compute_units`` (str), ``policy`` (str),
          ``typed_execution`` (bool), ``precision`` (``fp32``/``fp16``/``mixed``/``none``)
        * ``valid`` (bool), ``validation_error`` (str or null: the device's text)
        * ``counts``: ``{"ops", "const", "ANE", "GPU", "CPU"}`` -> int
        * ``function_inputs``, ``function_outputs``: [str]
        * ``segments``: [{``id``, ``device``, ``op_count``, ``first_op``, ``last_op``,
          ``ops`` [int], ``op_types`` {str: int}, ``inputs`` [str], ``outputs`` [str]}]
        * ``borders``: [{``tensor``, ``shape`` [int or str], ``ndchw``, ``dtype``,
          ``from_segment`` (int or null), ``from_device``, ``to_segments`` [int],
          ``to_devices`` [str], ``function_input``, ``function_output``, ``over_limit``
          (bool), ``error_text`` (str or null)}]
        * ``rejections``: [{``segment``, ``tensor``, ``shape``, ``ndchw``, ``where``,
          ``op_index``, ``op_type``, ``op_name``, ``error_text``}]
        * ``ops``: [{``index``, ``name``, ``op_type``, ``op_class``, ``device`` (str or
          null), ``segment`` (int or null), ``reason``, ``over_limit``}]
        * ``reasons``: {reason: explanation}, ``notes``: [str]
        """
        return {
            "schema": SCHEMA,
            "model_notice": self.model_notice,
            "path": self.path,
            "compute_units": self.compute_units,
            "policy": self.policy,
            "typed_execution": self.typed_execution,
            "precision": self.precision,
            "valid": self.valid,
            "validation_error": self.validation_error,
            "counts": self.counts(),
            "function_inputs": list(self.function_inputs),
            "function_outputs": list(self.function_outputs),
            "segments": [s.as_dict() for s in self.segments],
            "borders": [b.as_dict() for b in self.borders],
            "rejections": [r.as_dict() for r in self.rejections],
            "ops": [p.as_dict() for p in self.ops],
            "reasons": dict(REASONS),
            "notes": list(self.notes),
        }

    def to_json(self, indent: int | None = 2) -> str:
        """:meth:`as_dict` as JSON text."""
        return json.dumps(self.as_dict(), indent=indent)

    def format_text(self, limit: int | None = 12) -> str:
        """A readable summary: segments, the borders that touch the ANE, the verdict.

        ``limit`` caps the number of border lines and of tensors listed per segment
        (``None``: no cap).
        """
        name = Path(self.path).name
        counts = self.counts()
        lines = [
            f"{name}: compute units {self.compute_units}, policy {self.policy}"
            + (f", typed execution ({self.precision})" if self.typed_execution
               else ", untyped (hypothetical: placed as if fp16-typed)"),
            f"  {counts['ops']} ops ({counts['const']} constants hidden): "
            + ", ".join(f"{d} {counts[d]}" for d in DEVICES if counts[d]),
            f"segments ({len(self.segments)}):",
        ]

        def cap(items: list[str]) -> list[str]:
            if limit is None or len(items) <= limit:
                return items
            return items[:limit] + [f"... {len(items) - limit} more"]

        for s in self.segments:
            top = ", ".join(f"{t} {n}" for t, n in Counter(s.op_types).most_common(3))
            lines.append(f"  #{s.id:<3} {s.device:<4} ops {s.first}..{s.last} ({len(s.ops)}: {top})")
            entering = [self._tensor_line(t) for t in s.inputs]
            if entering:
                lines.append("        in:  " + "; ".join(cap(entering)))
        ane_borders = [b for b in self.borders if b.touches_ane]
        if ane_borders:
            lines.append(f"borders touching the ANE ({len(ane_borders)} of {len(self.borders)}):")
            for b in ane_borders if limit is None else ane_borders[:limit]:
                src = "input" if b.from_segment is None else f"#{b.from_segment} {b.from_device}"
                dst = ", ".join(f"#{s} {d}" for s, d in zip(b.to_segments, b.to_devices))
                if b.function_output:
                    dst = (dst + ", " if dst else "") + "output"
                flag = "  OVER THE ANE LIMITS" if b.over_limit else ""
                lines.append(f"  {b.tensor} {self._shape(b.shape)} {b.ndchw} {b.dtype}: {src} -> {dst}{flag}")
            if limit is not None and len(ane_borders) > limit:
                lines.append(f"  ... {len(ane_borders) - limit} more")
        if not any(s.device == "ANE" for s in self.segments):
            lines.append("no op is placed on the ANE")
        if self.valid:
            lines.append("ANE validation: passes (no ANE segment touches a tensor over the limits)")
        else:
            first = self.rejections[0]
            lines.append(
                f"ANE validation: FAILS on {len({r.tensor for r in self.rejections})} tensor(s); first: "
                f"{first.tensor} {self._shape(first.shape)} ({first.where} of ANE segment #{first.segment}, "
                f"at {first.op_type} {first.op_name}):"
            )
            lines.append(self.validation_error or "")
        for note in self.notes:
            lines.append(f"note: {note}")
        lines.append(f"notice: {self.model_notice}")
        return "\n".join(lines)

    @staticmethod
    def _shape(shape: tuple[Size, ...] | None) -> str:
        return "?" if shape is None else "[" + ", ".join(str(s) for s in shape) + "]"

    def _tensor_line(self, name: str) -> str:
        t = self.tensors.get(name)
        if t is None:
            return name
        flag = " OVER" if t.over_limit else ""
        return f"{name} {t.shape_text()} {t.ndchw}{flag}"
