"""A partition planner: a transparent model of how Core ML splits a program across devices.

**This is a model built from public reports, not Apple's compiler.** Core ML decides at
load time which ops run on the Apple Neural Engine (ANE), the GPU and the CPU, and Apple
documents neither the rules nor the ANE's op set (see :mod:`parakeet_nb.ane_ops`). What
is known: the ANE rejects any tensor with an axis over its limits (``W <= 16384``,
:mod:`parakeet_nb.layout`), iPhones fail the fused ``[1, 240000]`` waveform model with
``Invalid layer: Tensor dimensions N1D1C1H1W240000 ...`` while Macs run it with the
waveform ops on CPU/GPU, and split models run (``shared/reference/
seed-mel-encoder-ane-behavior.md``). The planner reproduces those outcomes with a few
stated rules, so a reader can see *why* a program would or would not fail, and where.

The rules
---------
Ops are taken in program order (nested blocks included, as by the auditor). Constants
get no device.

1. **Compute units.** ``CPU_ONLY``: every op on the CPU. ``CPU_AND_GPU``: no ANE; the GPU
   rule (5) places ops on the GPU or CPU. ``CPU_AND_NE``: ANE segments per policy, every
   other op on the CPU (there is no GPU). ``ALL``: ANE segments per policy, the rest by the
   GPU rule.
2. **ANE-capable ops.** An op may go to the ANE when its op type is ``heavy``,
   ``elementwise``, ``reduction`` or ``shape`` in :data:`parakeet_nb.ane_ops.OP_TABLE`
   (``cpu_only`` and unknown op types never do), and

   * *integer rule*: it touches no integer tensor wider than 8 bits and at least one
     floating-point tensor (constants aside). The ANE computes in float16; integer length
     arithmetic, length masks from integer comparisons, ``argmax`` and pure boolean logic
     (``logical_not`` of a mask) stay on the CPU. A ``cast`` from an integer to a float is
     therefore the CPU side of a border; a ``cast`` of a bool mask to a float is not.
   * *typed execution* (only with ``typed_execution=True``): it touches no fp32 tensor.
     coremltools' guide says fp32-typed ML programs run on GPU and CPU only. This is off
     by default: the project exports fp32 models for parity, while the question asked of
     the planner is how the same graph partitions when it ships as fp16 (same ops and
     shapes, plus casts); the plan notes when the distinction matters.
3. **Policies** (which ANE-capable ops the ANE takes):

   * ``conservative`` (the Mac-like outcome): an ANE segment starts at a heavy op and
     extends *forward* over ANE-capable ops that consume a tensor made on the ANE. Ops
     before the first heavy op (waveform-side elementwise ops) stay off the ANE. The
     partitioner respects the limits: an op that touches a tensor over them is not placed
     on the ANE (it falls back to CPU/GPU, which splits the segment; the next heavy op
     within the limits starts a new one). So a conservative plan never fails validation.
   * ``greedy`` (the iPhone-like failure): as conservative, without checking the limits,
     and then the ANE compiler extends every segment *backwards* (and sideways) over
     ANE-capable ops: every ANE-capable op connected through ANE-capable ops to a heavy
     op joins the ANE. For the fused model that reaches back to the waveform itself.
4. **Validation.** Every tensor an ANE op touches is placed in ANE layout: its inputs
   (including a tensor that *enters* the segment from the CPU or a function input, and
   weights), its internal tensors and its outputs. Any of them over the limits is a
   *rejection*; the plan's ``validation_error`` is the device's text
   (:meth:`parakeet_nb.layout.Layout.error_text`) for the first one in program order
   (the first ANE op touching it, inputs before outputs). The planner predicts the
   error, not Core ML's recovery: reports show failed loads, hangs and apps falling
   back to ``.cpuOnly``.
5. **GPU rule** (``CPU_AND_GPU``, and the non-ANE ops under ``ALL``): the same start
   rule as conservative, for the GPU: a GPU segment starts at a heavy op and extends
   forward over ANE-capable ops (the ANE op table stands in for a GPU table; the integer
   rule applies, typed execution does not, since the GPU runs fp32). The GPU has no
   per-axis cap in this model except for convolutions with an input axis over 16384,
   which stay on the CPU (onnxruntime PR 24594: texture memory is used for conv on the
   GPU; coremltools issue 283). Everything else runs on the CPU. The CPU/GPU split is the
   least evidenced part of the model; the ANE/not-ANE split is what the planner is for.
6. **Segments.** A segment is a group of same-device ops joined by data edges, built in
   program order: an op joins the segment of a same-device producer (merging segments
   when it has several) unless that would make two segments wait on each other (Core
   ML has to run segments one after another, so the segment graph stays acyclic). Ops
   inside a control-flow block share the device and segment of the block's op.
7. **Borders.** A tensor crosses a border when it is made in one segment (or is a
   function input) and used in another, or is a function output. Constants are folded
   into the segments that use them and never cross.

Devices are ``"ANE"``, ``"GPU"`` and ``"CPU"``; constants have none (``None``).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from parakeet_nb import ane_ops
from parakeet_nb.audit import ShapeResolver, walk_ops
from parakeet_nb.layout import WIDTH_LIMIT, Flexible, ShapeError, Size, to_layout
from parakeet_nb.program import LoadedProgram, load_program

# coremltools is imported (with its known noise filtered) by parakeet_nb.program above.
from coremltools.converters.mil.mil import types as _types  # noqa: E402

ComputeUnits = Literal["CPU_ONLY", "CPU_AND_GPU", "CPU_AND_NE", "ALL"]
Policy = Literal["conservative", "greedy"]
Device = Literal["ANE", "GPU", "CPU"]

COMPUTE_UNITS: tuple[str, ...] = ("CPU_ONLY", "CPU_AND_GPU", "CPU_AND_NE", "ALL")
POLICIES: tuple[str, ...] = ("conservative", "greedy")
DEVICES: tuple[str, ...] = ("ANE", "GPU", "CPU")

#: Version of the JSON layout of :meth:`Plan.as_dict`.
SCHEMA = "parakeet-nb/plan/1"

MODEL_NOTICE = (
    "This plan comes from a model of Core ML's partitioning built from public reports "
    "(see parakeet_nb.planner and parakeet_nb.ane_ops), not from Apple's compiler. Apple "
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

_CONV_TYPES = frozenset({"conv", "conv_transpose", "conv_quantized"})


# ---------------------------------------------------------------- data classes

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
            + (", typed execution" if self.typed_execution else ""),
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


# ---------------------------------------------------------------- the planner

def _dtype_name(var: Any) -> str:
    try:
        return _types.builtin_to_string(var.dtype) or str(var.dtype)
    except Exception:  # lists, states, exotic types
        return type(var.dtype).__name__ if getattr(var, "dtype", None) is not None else "?"


def _is_const_op(op: Any) -> bool:
    return op is not None and ane_ops.classify(op.op_type).op_class == "const"


def _inputs(op: Any) -> list[tuple[str, Any]]:
    """``(param, var)`` for every input of ``op``, tuples flattened, in parameter order."""
    found = []
    for param, value in op.inputs.items():
        for var in value if isinstance(value, (list, tuple)) else (value,):
            found.append((param, var))
    return found


def _tensor_info(var: Any, producer: int | None, resolver: ShapeResolver) -> TensorInfo:
    shape = getattr(var, "shape", None)
    const = _is_const_op(var.op)
    if shape is None:
        return TensorInfo(var.name, None, _dtype_name(var), producer, const, None, False, None, None)
    resolved = resolver(var)
    try:
        layout = to_layout(resolved)
    except ShapeError:
        return TensorInfo(var.name, resolved, _dtype_name(var), producer, const, None, True,
                          f"rank-{len(resolved)} tensor: Core ML and the ANE take at most 5 axes", None)
    bounds_ = [layout.bound(a) for a in ("N", "D", "C", "H", "W")]
    largest = None if any(b is None for b in bounds_) else max(bounds_)
    return TensorInfo(
        name=var.name, shape=resolved, dtype=_dtype_name(var), producer=producer, const=const,
        ndchw=layout.ndchw(), over_limit=not layout.ok, error_text=layout.error_text(),
        largest_axis=largest,
    )


@dataclass
class _Op:
    """Working record of one op while planning."""

    index: int
    op: Any
    info: ane_ops.OpInfo
    parent: int | None                  # index of the top-level op holding a nested op
    inputs: list[tuple[str, str]]       # (param, tensor name), constants included
    outputs: list[str]
    producers: list[int]                # indices of non-const producer ops (deduplicated)
    integer: bool = False
    fp32: bool = False
    over_limit: bool = False
    wide_input: bool = False            # some input has a raw axis over 16384 (GPU texture rule)


def _collect(loaded: LoadedProgram) -> tuple[list[_Op], dict[str, TensorInfo]]:
    resolver = ShapeResolver(loaded)
    main = loaded.main
    tensors: dict[str, TensorInfo] = {}
    for var in main.inputs.values():
        tensors[var.name] = _tensor_info(var, None, resolver)
    all_ops = list(walk_ops(main))
    index_of = {id(op): i for i, op in enumerate(all_ops)}
    records: list[_Op] = []
    for i, op in enumerate(all_ops):
        for var in op.outputs:
            tensors[var.name] = _tensor_info(var, i, resolver)
    for i, op in enumerate(all_ops):
        parent = None
        block = op.enclosing_block
        while block is not main and getattr(block, "outer_op", None) is not None:
            parent = index_of.get(id(block.outer_op), parent)
            block = block.outer_op.enclosing_block
        ins: list[tuple[str, str]] = []
        producers: list[int] = []
        for param, var in _inputs(op):
            if var.name not in tensors:  # a block input of a nested block
                tensors[var.name] = _tensor_info(var, None, resolver)
            ins.append((param, var.name))
            if var.op is not None and not _is_const_op(var.op) and id(var.op) in index_of:
                p = index_of[id(var.op)]
                if p not in producers:
                    producers.append(p)
        rec = _Op(i, op, ane_ops.classify(op.op_type), parent, ins, [v.name for v in op.outputs], producers)
        touched = [tensors[n] for _, n in ins] + [tensors[n] for n in rec.outputs]
        data = [t for t in touched if not t.const and t.shape is not None]
        rec.integer = any(_wide_int(t.dtype) for t in data) or (bool(data) and not any(_float(t.dtype) for t in data))
        rec.fp32 = any(t.dtype in ("fp32", "fp64") for t in data)
        rec.over_limit = any(t.over_limit for t in touched)
        rec.wide_input = any(
            isinstance(s, int) and s > WIDTH_LIMIT or isinstance(s, Flexible) and (s.upper is None or s.upper > WIDTH_LIMIT)
            for _, n in ins if tensors[n].shape is not None for s in tensors[n].shape  # type: ignore[union-attr]
        )
        records.append(rec)
    return records, tensors


def _wide_int(dtype: str) -> bool:
    """Integer types wider than 8 bits (``int16``, ``int32``, ``int64``, ``uint16``...)."""
    if not dtype.startswith(("int", "uint")):
        return False
    bits = dtype.lstrip("uint")
    return bits.isdigit() and int(bits) > 8


def _float(dtype: str) -> bool:
    return dtype in ("fp16", "fp32", "fp64", "bf16")


def _program_precision(records: list[_Op], tensors: dict[str, TensorInfo]) -> str:
    """``fp16``, ``fp32``, ``mixed`` or ``none``: the float types of op outputs, casts left
    out (an fp16 program casts its fp32 inputs and outputs at the edges)."""
    seen = Counter(
        tensors[n].dtype for r in records if r.info.op_class != "const" and r.op.op_type != "cast"
        for n in r.outputs if _float(tensors[n].dtype)
    )
    if seen.get("fp16") and (seen.get("fp32") or seen.get("fp64")):
        return "mixed"
    if seen.get("fp16"):
        return "fp16"
    if seen.get("fp32") or seen.get("fp64"):
        return "fp32"
    return "none"


def _ane_block_reason(rec: _Op, typed_execution: bool) -> str | None:
    """Why ``rec`` can never go to the ANE, or ``None`` if it may."""
    if rec.info.op_class == "unknown":
        return "unknown_op"
    if not rec.info.ane_capable:
        return "cpu_only_op"
    if rec.integer:
        return "integer_only"
    if typed_execution and rec.fp32:
        return "fp32_typed"
    return None


def _forward(
    top: list[_Op], capable: dict[int, bool], check_limit: Callable[[_Op], str | None], device: str,
    placed: dict[int, str], reasons: dict[int, str],
) -> None:
    """The start rule: heavy ops start segments, capable ops fed by ``device`` join.

    ``check_limit(rec) -> str | None`` gives a fallback reason for ops the device
    refuses. Fills ``placed`` (index -> device) and ``reasons`` for the ops it places or
    refuses; leaves every other op alone.
    """
    for rec in top:
        if rec.index in placed or not capable.get(rec.index, False):
            continue
        fed = any(placed.get(p) == device for p in rec.producers)
        if not (rec.info.starts_segment or fed):
            continue
        refusal = check_limit(rec)
        if refusal is not None:
            reasons.setdefault(rec.index, refusal)
            continue
        placed[rec.index] = device
        reasons[rec.index] = "heavy" if rec.info.starts_segment else "follows"


def _segments(
    top: list[_Op], device: dict[int, str],
) -> dict[int, int]:
    """Group same-device ops into segments in program order, keeping the segment graph acyclic.

    Returns op index -> provisional segment key (renumbered by the caller).
    """
    parent: dict[int, int] = {}

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    deps: dict[int, set[int]] = {}  # segment root -> roots of segments it waits on

    def ancestors(root: int) -> set[int]:
        seen: set[int] = set()
        stack = [root]
        while stack:
            s = stack.pop()
            for d in deps.get(s, ()):
                d = find(d)
                if d not in seen and d != root:
                    seen.add(d)
                    stack.append(d)
        return seen

    root_device: dict[int, str] = {}
    segment_of: dict[int, int] = {}
    for rec in top:
        i = rec.index
        dev = device[i]
        producer_roots = []
        for p in rec.producers:
            if p in segment_of:
                r = find(segment_of[p])
                if r not in producer_roots:
                    producer_roots.append(r)
        same = [r for r in producer_roots if root_device[r] == dev]
        chosen: int | None = None
        for r in same:
            if chosen is None:
                others = [o for o in producer_roots if o != r]
                if all(r not in ancestors(o) for o in others):
                    chosen = r
                continue
            # try to merge r into chosen: allowed when neither waits on the other
            if r != chosen and chosen not in ancestors(r) and r not in ancestors(chosen):
                others = [o for o in producer_roots if o not in (r, chosen)]
                if all(r not in ancestors(o) and chosen not in ancestors(o) for o in others):
                    parent[r] = chosen
                    deps[chosen] = {find(d) for d in deps.get(chosen, set()) | deps.pop(r, set())} - {chosen}
        if chosen is None:
            parent[i] = i
            root_device[i] = dev
            chosen = i
        segment_of[i] = chosen
        for o in producer_roots:
            o = find(o)
            if o != find(chosen):
                deps.setdefault(find(chosen), set()).add(o)
    return {i: find(s) for i, s in segment_of.items()}


def plan(
    loaded_or_path: LoadedProgram | str | os.PathLike,
    compute_units: ComputeUnits = "ALL",
    policy: Policy = "greedy",
    *,
    typed_execution: bool = False,
) -> Plan:
    """Plan how Core ML would partition a program (see the module docstring for the rules).

    ``loaded_or_path`` is a :class:`~parakeet_nb.program.LoadedProgram` or a path to an
    ``.mlpackage`` (unreadable input raises :class:`~parakeet_nb.program.ModelReadError`).
    ``compute_units`` is a ``ct.ComputeUnit`` name: ``CPU_ONLY``, ``CPU_AND_GPU``,
    ``CPU_AND_NE`` or ``ALL`` (Core ML's default). ``policy`` is ``greedy`` (default: the
    iPhone-like worst case, the one to check before shipping) or ``conservative`` (the
    Mac-like outcome). ``typed_execution=True`` keeps fp32-typed ops off the ANE, as
    coremltools documents. Raises ``ValueError`` for an unknown setting.
    """
    if compute_units not in COMPUTE_UNITS:
        raise ValueError(f"unknown compute units {compute_units!r}: expected one of {', '.join(COMPUTE_UNITS)}")
    if policy not in POLICIES:
        raise ValueError(f"unknown policy {policy!r}: expected one of {', '.join(POLICIES)}")
    loaded = loaded_or_path if isinstance(loaded_or_path, LoadedProgram) else load_program(loaded_or_path)
    records, tensors = _collect(loaded)
    by_index = {r.index: r for r in records}
    top = [r for r in records if r.parent is None and r.info.op_class != "const"]

    placed: dict[int, str] = {}
    reasons: dict[int, str] = {}
    if compute_units == "CPU_ONLY":
        for rec in top:
            placed[rec.index] = "CPU"
            reasons[rec.index] = "compute_units"
    else:
        if compute_units in ("CPU_AND_NE", "ALL"):
            ane_capable: dict[int, bool] = {}
            for rec in top:
                why = _ane_block_reason(rec, typed_execution)
                ane_capable[rec.index] = why is None
                if why is not None:
                    reasons[rec.index] = why
            if policy == "conservative":
                _forward(top, ane_capable, lambda r: "over_limit" if r.over_limit else None, "ANE", placed, reasons)
            else:
                _forward(top, ane_capable, lambda r: None, "ANE", placed, reasons)
                _greedy_closure(top, ane_capable, placed, reasons)
        if compute_units in ("CPU_AND_GPU", "ALL"):
            gpu_capable = {
                rec.index: rec.index not in placed and rec.info.ane_capable and not rec.integer for rec in top
            }
            gpu_reasons: dict[int, str] = {}
            _forward(
                top, gpu_capable,
                lambda r: "gpu_texture_limit" if r.op.op_type in _CONV_TYPES and r.wide_input else None,
                "GPU", placed, gpu_reasons,
            )
            for i, why in gpu_reasons.items():  # an ANE reason (over_limit) stays the headline
                if placed.get(i) == "GPU" or i not in reasons:
                    reasons[i] = why
        for rec in top:
            if rec.index not in placed:
                placed[rec.index] = "CPU"
                if rec.index not in reasons:
                    reasons[rec.index] = _cpu_reason(rec)
    for rec in records:  # nested ops follow their block's op
        if rec.parent is not None and rec.info.op_class != "const":
            placed[rec.index] = placed.get(rec.parent, "CPU")
            reasons[rec.index] = "nested"

    # segments
    raw = _segments(top, placed)
    keys = sorted(set(raw.values()), key=lambda k: min(i for i, s in raw.items() if s == k))
    seg_id = {k: n for n, k in enumerate(keys)}
    segment_of = {i: seg_id[k] for i, k in raw.items()}
    for rec in records:
        if rec.parent is not None and rec.info.op_class != "const":
            segment_of[rec.index] = segment_of.get(_top_parent(rec, by_index), 0)

    placements = [
        OpPlacement(
            index=r.index, name=r.op.name, op_type=r.op.op_type, op_class=r.info.op_class,
            device=None if r.info.op_class == "const" else placed[r.index],  # type: ignore[arg-type]
            segment=None if r.info.op_class == "const" else segment_of[r.index],
            reason="const" if r.info.op_class == "const" else reasons[r.index],
            over_limit=r.over_limit,
        )
        for r in records
    ]
    function_inputs = tuple(v.name for v in loaded.main.inputs.values())
    function_outputs = tuple(v.name for v in loaded.main.outputs)
    borders = _borders(records, tensors, placed, segment_of, function_inputs, function_outputs)
    segments = _segment_records(records, placed, segment_of, len(keys), borders)
    rejections = _rejections(records, tensors, placed, segment_of, function_outputs)
    precision = _program_precision(records, tensors)
    result = Plan(
        path=str(loaded.path), compute_units=compute_units, policy=policy,
        typed_execution=typed_execution, precision=precision, ops=placements,
        segments=segments, borders=borders, rejections=rejections, tensors=tensors,
        function_inputs=function_inputs, function_outputs=function_outputs,
    )
    result.notes.extend(_notes(result, records))
    return result


def tensor_table(loaded_or_path: LoadedProgram | str | os.PathLike, include_const: bool = False) -> list[TensorInfo]:
    """Every tensor of a program in program order: function inputs, then op outputs.

    Flexible sizes are resolved to their declared upper bounds (as by the auditor).
    Constants are left out unless ``include_const``. Unreadable input raises
    :class:`~parakeet_nb.program.ModelReadError`.
    """
    loaded = loaded_or_path if isinstance(loaded_or_path, LoadedProgram) else load_program(loaded_or_path)
    records, tensors = _collect(loaded)
    order = [v.name for v in loaded.main.inputs.values()] + [n for r in records for n in r.outputs]
    return [tensors[n] for n in order if include_const or not tensors[n].const]


def _top_parent(rec: _Op, by_index: dict[int, _Op]) -> int:
    i = rec.index
    while by_index[i].parent is not None:
        i = by_index[i].parent  # type: ignore[assignment]
    return i


def _cpu_reason(rec: _Op) -> str:
    """Why an op left off the ANE is there: its block reason, else no segment reached it."""
    return _ane_block_reason(rec, typed_execution=False) or "not_reached"


def _greedy_closure(top: list[_Op], capable: dict[int, bool], placed: dict[int, str], reasons: dict[int, str]) -> None:
    """Greedy ANE compiler: every ANE-capable op connected (either direction) to an ANE op joins it."""
    neighbours: dict[int, set[int]] = {r.index: set() for r in top}
    for rec in top:
        for p in rec.producers:
            if p in neighbours:
                neighbours[p].add(rec.index)
                neighbours[rec.index].add(p)
    frontier = sorted(i for i, d in placed.items() if d == "ANE")
    while frontier:
        i = frontier.pop()
        for j in sorted(neighbours.get(i, ())):
            if j not in placed and capable.get(j, False):
                placed[j] = "ANE"
                reasons[j] = "absorbed"
                frontier.append(j)


def _borders(
    records: list[_Op], tensors: dict[str, TensorInfo], placed: dict[int, str],
    segment_of: dict[int, int], function_inputs: tuple[str, ...], function_outputs: tuple[str, ...],
) -> list[Border]:
    users: dict[str, list[int]] = {}
    for rec in records:
        if rec.info.op_class == "const":
            continue
        for _, name in rec.inputs:
            seg = segment_of[rec.index]
            users.setdefault(name, [])
            if seg not in users[name]:
                users[name].append(seg)
    seg_device = {segment_of[i]: d for i, d in placed.items()}
    order = list(function_inputs) + [n for r in records for n in r.outputs]
    found: list[Border] = []
    for name in order:
        t = tensors[name]
        if t.const:
            continue
        source = None if t.producer is None else segment_of.get(t.producer)
        if t.producer is not None and source is None:
            continue
        targets = tuple(s for s in users.get(name, []) if s != source)
        is_input = t.producer is None and name in function_inputs
        is_output = name in function_outputs
        if not (targets or is_input or is_output):
            continue
        from_device = "input" if source is None else seg_device[source]
        to_devices = tuple(seg_device[s] for s in targets)
        touches_ane = from_device == "ANE" or "ANE" in to_devices
        found.append(Border(
            tensor=name, shape=t.shape, ndchw=t.ndchw, dtype=t.dtype, from_segment=source,
            from_device=from_device, to_segments=targets, to_devices=to_devices,
            function_input=is_input, function_output=is_output, over_limit=t.over_limit,
            error_text=t.error_text if (t.over_limit and touches_ane) else None,
        ))
    return found


def _segment_records(
    records: list[_Op], placed: dict[int, str], segment_of: dict[int, int], count: int, borders: list[Border],
) -> list[Segment]:
    members: dict[int, list[int]] = {s: [] for s in range(count)}
    types: dict[int, Counter] = {s: Counter() for s in range(count)}
    for rec in records:
        if rec.info.op_class == "const":
            continue
        s = segment_of[rec.index]
        members[s].append(rec.index)
        types[s][rec.op.op_type] += 1
    inputs: dict[int, list[str]] = {s: [] for s in range(count)}
    outputs: dict[int, list[str]] = {s: [] for s in range(count)}
    for b in borders:
        for s in b.to_segments:
            inputs[s].append(b.tensor)
        if b.from_segment is not None and (b.to_segments or b.function_output):
            outputs[b.from_segment].append(b.tensor)
    return [
        Segment(
            id=s, device=placed[members[s][0]],  # type: ignore[arg-type]
            ops=tuple(members[s]), inputs=tuple(inputs[s]), outputs=tuple(outputs[s]),
            op_types=dict(types[s]),
        )
        for s in range(count)
    ]


def _rejections(
    records: list[_Op], tensors: dict[str, TensorInfo], placed: dict[int, str],
    segment_of: dict[int, int], function_outputs: tuple[str, ...],
) -> list[Rejection]:
    used_outside: dict[str, set[int]] = {}
    for rec in records:
        if rec.info.op_class == "const":
            continue
        for _, name in rec.inputs:
            used_outside.setdefault(name, set()).add(segment_of[rec.index])
    seen: set[str] = set()
    found: list[Rejection] = []
    for rec in records:
        if rec.info.op_class == "const" or placed.get(rec.index) != "ANE":
            continue
        seg = segment_of[rec.index]
        touched = [n for _, n in rec.inputs] + rec.outputs
        for name in touched:
            t = tensors[name]
            if not t.over_limit or name in seen:
                continue
            seen.add(name)
            made_here = t.producer is not None and not t.const and segment_of.get(t.producer) == seg
            if not made_here:
                where = "input"
            elif name in function_outputs or used_outside.get(name, set()) - {seg}:
                where = "output"
            else:
                where = "internal"
            found.append(Rejection(
                segment=seg, tensor=name, shape=t.shape, ndchw=t.ndchw, where=where,  # type: ignore[arg-type]
                op_index=rec.index, op_type=rec.op.op_type, op_name=rec.op.name,
                error_text=t.error_text or "",
            ))
    return found


def _notes(result: Plan, records: list[_Op]) -> Iterable[str]:
    unknown = sorted({r.op.op_type for r in records if r.info.op_class == "unknown"})
    if unknown:
        yield "op types not in the ANE op table (treated as CPU): " + ", ".join(unknown)
    counts = result.counts()
    if result.compute_units in ("CPU_AND_NE", "ALL") and not result.typed_execution and counts["ANE"] and result.precision in ("fp32", "mixed"):
        yield (
            f"the program computes in {result.precision}; coremltools' typed-execution guide says "
            "fp32-typed ops run on GPU/CPU only. This plan shows the placement of the same graph "
            "as an fp16 program (pass typed_execution=True for the fp32 reading)"
        )
    if result.compute_units in ("CPU_AND_NE", "ALL") and not counts["ANE"]:
        yield "no op went to the ANE: no ANE-capable heavy op (conv, matmul, linear, ...) could start a segment"
    fallbacks = [p for p in result.ops if p.reason == "over_limit"]
    if fallbacks:
        yield (
            f"{len(fallbacks)} ANE-capable op(s) touching tensors over the ANE limits were left off the ANE "
            f"(first: {fallbacks[0].op_type} {fallbacks[0].name})"
        )
