"""A program as a graph for the planner: op records, tensors, segments and the borders between them.

:func:`collect` walks a loaded ML Program (nested blocks included, as the auditor does)
into :class:`OpRecord` working records and a table of :class:`~parakeet_nb.ane.plan.TensorInfo`;
:func:`group_segments` groups same-device ops into an acyclic chain of segments; the other
functions derive the plan's borders, segments and rejections from a placement.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from parakeet_nb.ane import op_table
from parakeet_nb.ane.audit import ShapeResolver, tensor_shape, walk_ops
from parakeet_nb.ane.layout import WIDTH_LIMIT, Flexible, ShapeError, to_layout
from parakeet_nb.ane.plan import Border, Rejection, Segment, TensorInfo
from parakeet_nb.mlprogram.load import LoadedProgram

# coremltools is imported (with its known noise filtered) by parakeet_nb.mlprogram.load above.
from coremltools.converters.mil.mil import types as _types  # noqa: E402


def dtype_name(var: Any) -> str:
    if _types.is_list(var.sym_type):
        return "list"
    try:
        return _types.builtin_to_string(var.dtype) or str(var.dtype)
    except Exception:  # states, exotic types
        return type(var.dtype).__name__ if getattr(var, "dtype", None) is not None else "?"

def is_const_op(op: Any) -> bool:
    return op is not None and op_table.classify(op.op_type).op_class == "const"

def op_inputs(op: Any) -> list[tuple[str, Any]]:
    """``(param, var)`` for every input of ``op``, tuples flattened, in parameter order."""
    found = []
    for param, value in op.inputs.items():
        for var in value if isinstance(value, (list, tuple)) else (value,):
            found.append((param, var))
    return found

def tensor_info(var: Any, producer: int | None, resolver: ShapeResolver) -> TensorInfo:
    const = is_const_op(var.op)
    if tensor_shape(var) is None:
        return TensorInfo(var.name, None, dtype_name(var), producer, const, None, False, None, None)
    resolved = resolver(var)
    try:
        layout = to_layout(resolved)
    except ShapeError:
        return TensorInfo(var.name, resolved, dtype_name(var), producer, const, None, True,
                          f"rank-{len(resolved)} tensor: Core ML and the ANE take at most 5 axes", None)
    bounds_ = [layout.bound(a) for a in ("N", "D", "C", "H", "W")]
    largest = None if any(b is None for b in bounds_) else max(bounds_)
    return TensorInfo(
        name=var.name, shape=resolved, dtype=dtype_name(var), producer=producer, const=const,
        ndchw=layout.ndchw(), over_limit=not layout.ok, error_text=layout.error_text(),
        largest_axis=largest,
    )

@dataclass
class OpRecord:
    """Working record of one op while planning."""

    index: int
    op: Any
    info: op_table.OpInfo
    parent: int | None                  # index of the top-level op holding a nested op
    inputs: list[tuple[str, str]]       # (param, tensor name), constants included
    outputs: list[str]
    producers: list[int]                # indices of non-const producer ops (deduplicated)
    integer: bool = False
    fp32: bool = False
    over_limit: bool = False
    wide_input: bool = False            # some input has a raw axis over 16384 (GPU texture rule)

def collect(loaded: LoadedProgram) -> tuple[list[OpRecord], dict[str, TensorInfo]]:
    resolver = ShapeResolver(loaded)
    main = loaded.main
    tensors: dict[str, TensorInfo] = {}
    for var in main.inputs.values():
        tensors[var.name] = tensor_info(var, None, resolver)
    all_ops = list(walk_ops(main))
    index_of = {id(op): i for i, op in enumerate(all_ops)}
    records: list[OpRecord] = []
    for i, op in enumerate(all_ops):
        for var in op.outputs:
            tensors[var.name] = tensor_info(var, i, resolver)
    for i, op in enumerate(all_ops):
        parent = None
        block = op.enclosing_block
        while block is not main and getattr(block, "outer_op", None) is not None:
            parent = index_of.get(id(block.outer_op), parent)
            block = block.outer_op.enclosing_block
        ins: list[tuple[str, str]] = []
        producers: list[int] = []
        for param, var in op_inputs(op):
            if var.name not in tensors:  # a block input of a nested block
                tensors[var.name] = tensor_info(var, None, resolver)
            ins.append((param, var.name))
            if var.op is not None and not is_const_op(var.op) and id(var.op) in index_of:
                p = index_of[id(var.op)]
                if p not in producers:
                    producers.append(p)
        rec = OpRecord(i, op, op_table.classify(op.op_type), parent, ins, [v.name for v in op.outputs], producers)
        touched = [tensors[n] for _, n in ins] + [tensors[n] for n in rec.outputs]
        data = [t for t in touched if not t.const and t.shape is not None]
        rec.integer = any(wide_int(t.dtype) for t in data) or (bool(data) and not any(is_float(t.dtype) for t in data))
        rec.fp32 = any(t.dtype in ("fp32", "fp64") for t in data)
        rec.over_limit = any(t.over_limit for t in touched)
        rec.wide_input = any(
            isinstance(s, int) and s > WIDTH_LIMIT or isinstance(s, Flexible) and (s.upper is None or s.upper > WIDTH_LIMIT)
            for _, n in ins if tensors[n].shape is not None for s in tensors[n].shape  # type: ignore[union-attr]
        )
        records.append(rec)
    return records, tensors

def wide_int(dtype: str) -> bool:
    """Integer types wider than 8 bits (``int16``, ``int32``, ``int64``, ``uint16``...)."""
    if not dtype.startswith(("int", "uint")):
        return False
    bits = dtype.lstrip("uint")
    return bits.isdigit() and int(bits) > 8

def is_float(dtype: str) -> bool:
    return dtype in ("fp16", "fp32", "fp64", "bf16")

def group_segments(
    top: list[OpRecord], device: dict[int, str],
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

def top_parent(rec: OpRecord, by_index: dict[int, OpRecord]) -> int:
    i = rec.index
    while by_index[i].parent is not None:
        i = by_index[i].parent  # type: ignore[assignment]
    return i

def borders(
    records: list[OpRecord], tensors: dict[str, TensorInfo], placed: dict[int, str],
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

def segment_records(
    records: list[OpRecord], placed: dict[int, str], segment_of: dict[int, int], count: int, borders: list[Border],
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

def rejections(
    records: list[OpRecord], tensors: dict[str, TensorInfo], placed: dict[int, str],
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
