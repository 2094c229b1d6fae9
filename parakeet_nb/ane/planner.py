"""A partition planner: a transparent model of how Core ML splits a program across devices.

**This is a model built from public reports, not Apple's compiler.** Core ML decides at
load time which ops run on the Apple Neural Engine (ANE), the GPU and the CPU, and Apple
documents neither the rules nor the ANE's op set (see :mod:`parakeet_nb.ane.op_table`). What
is known: the ANE rejects any tensor with an axis over its limits (``W <= 16384``,
:mod:`parakeet_nb.ane.layout`), iPhones fail the fused ``[1, 240000]`` waveform model with
``Invalid layer: Tensor dimensions N1D1C1H1W240000 ...`` while Macs run it with the
waveform ops on CPU/GPU, and split models run (FluidInference/mobius' Parakeet notes,
https://github.com/FluidInference/mobius, and FluidAudio issue 121,
https://github.com/FluidInference/FluidAudio/issues/121). The planner reproduces those outcomes with a few
stated rules, so a reader can see *why* a program would or would not fail, and where.
Every placement it gives is *predicted*. The measured counterpart is Core ML's own compute
plan: on a Mac with macOS 14.4+, ``parakeet-nb device-check DIR`` (:mod:`parakeet_nb.device`)
joins it op by op with this planner's plan of the same package and lists every
disagreement.

The rules
---------
Ops are taken in program order (nested blocks included, as by the auditor). Constants
get no device.

1. **Compute units.** ``CPU_ONLY``: every op on the CPU. ``CPU_AND_GPU``: no ANE; the GPU
   rule (5) places ops on the GPU or CPU. ``CPU_AND_NE``: ANE segments per policy, every
   other op on the CPU (there is no GPU). ``ALL``: ANE segments per policy, the rest by the
   GPU rule.
2. **ANE-capable ops.** An op may go to the ANE when its op type is ``heavy``,
   ``elementwise``, ``reduction`` or ``shape`` in :data:`parakeet_nb.ane.op_table.OP_TABLE`
   (``cpu_only`` and unknown op types never do), and

   * *integer rule*: it touches no integer tensor wider than 8 bits and at least one
     floating-point tensor (constants aside). The ANE computes in float16; integer length
     arithmetic, length masks from integer comparisons, ``argmax`` and pure boolean logic
     (``logical_not`` of a mask) stay on the CPU. A ``cast`` from an integer to a float is
     therefore the CPU side of a border; a ``cast`` of a bool mask to a float is not.
   * *typed execution* (the default, ``typed_execution=True``): it touches no fp32
     tensor. coremltools' guide says fp32-typed ML programs run on GPU and CPU only
     (https://apple.github.io/coremltools/docs-guides/source/typed-execution.html), so an
     fp32 program gets no ANE op. ``typed_execution=False`` is the *untyped, hypothetical*
     reading: how the same graph would partition if it shipped as fp16 (same ops and
     shapes, plus casts); Core ML does not run an fp32 program that way, and the plan
     says so in a note.
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
   (:meth:`parakeet_nb.ane.layout.Layout.error_text`) for the first one in program order
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

import os
from collections import Counter
from collections.abc import Callable, Iterable

from parakeet_nb.ane.graph import OpRecord, borders, collect, group_segments, is_float, rejections, segment_records, top_parent
from parakeet_nb.ane.plan import (
    COMPUTE_UNITS,
    POLICIES,
    ComputeUnits,
    OpPlacement,
    Plan,
    Policy,
    TensorInfo,
)
from parakeet_nb.mlprogram.load import LoadedProgram, load_program

_CONV_TYPES = frozenset({"conv", "conv_transpose", "conv_quantized"})


def _program_precision(records: list[OpRecord], tensors: dict[str, TensorInfo]) -> str:
    """``fp16``, ``fp32``, ``mixed`` or ``none``: the float types of op outputs, casts left
    out (an fp16 program casts its fp32 inputs and outputs at the edges)."""
    seen = Counter(
        tensors[n].dtype for r in records if r.info.op_class != "const" and r.op.op_type != "cast"
        for n in r.outputs if is_float(tensors[n].dtype)
    )
    if seen.get("fp16") and (seen.get("fp32") or seen.get("fp64")):
        return "mixed"
    if seen.get("fp16"):
        return "fp16"
    if seen.get("fp32") or seen.get("fp64"):
        return "fp32"
    return "none"

def _ane_block_reason(rec: OpRecord, typed_execution: bool) -> str | None:
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
    top: list[OpRecord], capable: dict[int, bool], check_limit: Callable[[OpRecord], str | None], device: str,
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

def plan(
    loaded_or_path: LoadedProgram | str | os.PathLike,
    compute_units: ComputeUnits = "ALL",
    policy: Policy = "greedy",
    *,
    typed_execution: bool = True,
) -> Plan:
    """Plan how Core ML would partition a program (see the module docstring for the rules).

    ``loaded_or_path`` is a :class:`~parakeet_nb.mlprogram.load.LoadedProgram` or a path to an
    ``.mlpackage`` (unreadable input raises :class:`~parakeet_nb.mlprogram.load.ModelReadError`).
    ``compute_units`` is a ``ct.ComputeUnit`` name: ``CPU_ONLY``, ``CPU_AND_GPU``,
    ``CPU_AND_NE`` or ``ALL`` (Core ML's default). ``policy`` is ``greedy`` (default: the
    iPhone-like worst case, the one to check before shipping) or ``conservative`` (the
    Mac-like outcome). ``typed_execution=True`` (default) keeps fp32-typed ops off the ANE,
    as Core ML does; ``False`` is the untyped, hypothetical reading. Raises ``ValueError`` for an unknown setting.
    """
    if compute_units not in COMPUTE_UNITS:
        raise ValueError(f"unknown compute units {compute_units!r}: expected one of {', '.join(COMPUTE_UNITS)}")
    if policy not in POLICIES:
        raise ValueError(f"unknown policy {policy!r}: expected one of {', '.join(POLICIES)}")
    loaded = loaded_or_path if isinstance(loaded_or_path, LoadedProgram) else load_program(loaded_or_path)
    records, tensors = collect(loaded)
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
    raw = group_segments(top, placed)
    keys = sorted(set(raw.values()), key=lambda k: min(i for i, s in raw.items() if s == k))
    seg_id = {k: n for n, k in enumerate(keys)}
    segment_of = {i: seg_id[k] for i, k in raw.items()}
    for rec in records:
        if rec.parent is not None and rec.info.op_class != "const":
            segment_of[rec.index] = segment_of.get(top_parent(rec, by_index), 0)

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
    plan_borders = borders(records, tensors, placed, segment_of, function_inputs, function_outputs)
    segments = segment_records(records, placed, segment_of, len(keys), plan_borders)
    plan_rejections = rejections(records, tensors, placed, segment_of, function_outputs)
    precision = _program_precision(records, tensors)
    result = Plan(
        path=str(loaded.path), compute_units=compute_units, policy=policy,
        typed_execution=typed_execution, precision=precision, ops=placements,
        segments=segments, borders=plan_borders, rejections=plan_rejections, tensors=tensors,
        function_inputs=function_inputs, function_outputs=function_outputs,
    )
    result.notes.extend(_notes(result, records))
    return result

def program_precision(loaded_or_path: LoadedProgram | str | os.PathLike) -> str:
    """``fp16``, ``fp32``, ``mixed`` or ``none``: what a program's ops compute in (casts left
    out), the ``precision`` a :class:`~parakeet_nb.ane.plan.Plan` reports."""
    loaded = loaded_or_path if isinstance(loaded_or_path, LoadedProgram) else load_program(loaded_or_path)
    return _program_precision(*collect(loaded))


def float32_only_note(function_inputs: Iterable[str], precision: str) -> str | None:
    """The note for an fp32-typed chunked front end (input ``audio_chunks``), else ``None``:
    it is the float32-only design, which overflows in float16 (shown in plans and audits)."""
    if "audio_chunks" not in function_inputs or precision != "fp32":
        return None
    return (
        "fp32 chunked front end: float32-only (export --precision fp32 writes ChunkedPreprocessor(fp16_safe=False)); "
        "run in float16 it overflows (inf/NaN). For the ANE, export the fp16-safe design "
        "(parakeet-nb export --precision auto or fp16)"
    )


def tensor_table(loaded_or_path: LoadedProgram | str | os.PathLike, include_const: bool = False) -> list[TensorInfo]:
    """Every tensor of a program in program order: function inputs, then op outputs.

    Flexible sizes are resolved to their declared upper bounds (as by the auditor).
    Constants are left out unless ``include_const``. Unreadable input raises
    :class:`~parakeet_nb.mlprogram.load.ModelReadError`.
    """
    loaded = loaded_or_path if isinstance(loaded_or_path, LoadedProgram) else load_program(loaded_or_path)
    records, tensors = collect(loaded)
    order = [v.name for v in loaded.main.inputs.values()] + [n for r in records for n in r.outputs]
    return [tensors[n] for n in order if include_const or not tensors[n].const]

def _cpu_reason(rec: OpRecord) -> str:
    """Why an op left off the ANE is there: its block reason, else no segment reached it."""
    return _ane_block_reason(rec, typed_execution=False) or "not_reached"

def _greedy_closure(top: list[OpRecord], capable: dict[int, bool], placed: dict[int, str], reasons: dict[int, str]) -> None:
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

def _notes(result: Plan, records: list[OpRecord]) -> Iterable[str]:
    unknown = sorted({r.op.op_type for r in records if r.info.op_class == "unknown"})
    if unknown:
        yield "op types not in the ANE op table (treated as CPU): " + ", ".join(unknown)
    counts = result.counts()
    ane_units = result.compute_units in ("CPU_AND_NE", "ALL")
    if ane_units and not result.typed_execution and counts["ANE"] and result.precision in ("fp32", "mixed"):
        yield (
            f"untyped, hypothetical reading: the program computes in {result.precision}, and "
            "coremltools' typed-execution guide says fp32-typed ops run on GPU/CPU only. This plan "
            "shows the placement of the same graph as an fp16 program, not what Core ML does with it"
        )
    chunked = float32_only_note(result.function_inputs, result.precision)
    if chunked:
        yield chunked
    if ane_units and result.typed_execution and result.precision == "fp32":
        yield "fp32-typed: Core ML runs it on CPU/GPU; no op can reach the ANE (export with --precision auto or fp16)"
    elif ane_units and not counts["ANE"]:
        yield "no op went to the ANE: no ANE-capable heavy op (conv, matmul, linear, ...) could start a segment"
    fallbacks = [p for p in result.ops if p.reason == "over_limit"]
    if fallbacks:
        yield (
            f"{len(fallbacks)} ANE-capable op(s) touching tensors over the ANE limits were left off the ANE "
            f"(first: {fallbacks[0].op_type} {fallbacks[0].name})"
        )
