"""The static auditor: every tensor of an ML Program that breaks an ANE axis limit.

Reads a saved ``.mlpackage`` with coremltools (see :mod:`parakeet_nb.mlprogram.load`) and walks
its ``main`` function in program order: the function inputs, then every op's inputs and
outputs (nested blocks included). Each tensor's shape is placed on N D C H W with
:mod:`parakeet_nb.ane.layout`. Flexible input sizes are judged by the upper bound the model
declares (``RangeDim`` or enumerated shapes); intermediate sizes that depend on them are
evaluated at those bounds, including sizes coremltools names with fresh symbols after
shape-dependent ops (:class:`ShapeResolver` re-loads the program at the bounds for them).

This is a static check on any OS: it says which tensors *would* be rejected if they were
placed on the ANE. Whether Core ML places them there is a partitioning question (see the
planner).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from parakeet_nb.ane.layout import Flexible, Layout, Size, Violation, to_layout
from parakeet_nb.mlprogram.load import LoadedProgram, load_program


@dataclass(frozen=True)
class Finding:
    """One tensor, as seen by one op, that is outside the ANE limits.

    ``role`` is ``"function input"``, ``"input"`` (the op takes it, as parameter
    ``param``) or ``"output"`` (the op makes it).
    """

    index: int
    op_type: str
    op_name: str
    role: str
    param: str
    tensor: str
    shape: tuple[Size, ...]
    ndchw: str
    violations: tuple[Violation, ...]
    ambiguous: bool
    error_text: str

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["shape"] = [str(s) if isinstance(s, Flexible) else s for s in self.shape]
        data["violations"] = [
            {**asdict(v), "text": v.describe()} for v in self.violations
        ]
        return data


@dataclass
class AuditReport:
    """The auditor's result for one package. ``findings`` are in program order."""

    path: str
    ops: int
    tensors_checked: int
    widest_axis: int
    widest_tensor: str
    findings: list[Finding] = field(default_factory=list)
    flexible_inputs: dict[str, list[str]] = field(default_factory=dict)

    @property
    def clean(self) -> bool:
        return not self.findings

    @property
    def exit_code(self) -> int:
        return 0 if self.clean else 1

    @property
    def first_error_text(self) -> str | None:
        """The device-style error text of the first tensor over the limits."""
        return self.findings[0].error_text if self.findings else None

    def offending_tensors(self) -> list[str]:
        """Names of the distinct tensors over the limits, in order of first appearance."""
        seen: dict[str, None] = {}
        for finding in self.findings:
            seen.setdefault(finding.tensor, None)
        return list(seen)

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "clean": self.clean,
            "ops": self.ops,
            "tensors_checked": self.tensors_checked,
            "widest_axis": self.widest_axis,
            "widest_tensor": self.widest_tensor,
            "flexible_inputs": self.flexible_inputs,
            "first_error_text": self.first_error_text,
            "findings": [f.as_dict() for f in self.findings],
        }

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), indent=2)

    def format_text(self, limit: int | None = None) -> str:
        """A readable report; ``limit`` caps the number of finding lines shown."""
        name = Path(self.path).name
        lines = [
            f"{name}: {self.ops} ops, {self.tensors_checked} tensor uses checked, "
            f"widest axis {self.widest_axis} ({self.widest_tensor})"
        ]
        if self.clean:
            lines.append("clean: no tensor has an axis outside the ANE limits")
            return "\n".join(lines)
        lines.append(
            f"{len(self.findings)} tensor uses over the ANE limits "
            f"({len(self.offending_tensors())} distinct tensors):"
        )
        shown = self.findings if limit is None else self.findings[:limit]
        for f in shown:
            shape = "[" + ", ".join(str(s) for s in f.shape) + "]"
            reasons = "; ".join(v.describe() for v in f.violations)
            where = f"{f.role} {f.param}" if f.role == "input" else f.role
            flag = " (ambiguous N/D)" if f.ambiguous else ""
            at = "in" if f.index < 0 else f"#{f.index}"
            lines.append(f"  {at:<5} {f.op_type:<16} {f.op_name:<28} {where:<14} {f.tensor} {shape} {f.ndchw}: {reasons}{flag}")
        if limit is not None and len(self.findings) > limit:
            lines.append(f"  ... and {len(self.findings) - limit} more")
        lines.append("device error for the first:")
        lines.append(self.first_error_text or "")
        return "\n".join(lines)


def input_bounds(loaded: LoadedProgram) -> tuple[dict[str, int | None], dict[str, list[str]]]:
    """Upper bounds of the symbolic sizes of the function inputs, from the model description."""
    bounds: dict[str, int | None] = {}
    described: dict[str, list[str]] = {}
    descriptions = {d.name: d for d in loaded.spec.description.input}
    for name, var in loaded.main.inputs.items():
        symbolic = [(i, s) for i, s in enumerate(var.shape) if not _is_int(s)]
        if not symbolic:
            continue
        array = descriptions[name].type.multiArrayType if name in descriptions else None
        per_axis: dict[int, int | None] = {}
        if array is not None and array.WhichOneof("ShapeFlexibility") == "shapeRange":
            for i, r in enumerate(array.shapeRange.sizeRanges):
                per_axis[i] = None if r.upperBound < 0 else int(r.upperBound)
        elif array is not None and array.WhichOneof("ShapeFlexibility") == "enumeratedShapes":
            for shape in array.enumeratedShapes.shapes:
                for i, size in enumerate(shape.shape):
                    per_axis[i] = max(per_axis.get(i) or 0, int(size))
        for i, symbol in symbolic:
            bounds[str(symbol)] = per_axis.get(i)
        described[name] = [
            f"axis {i}: {symbol} <= {per_axis.get(i) if per_axis.get(i) is not None else 'unbounded'}"
            for i, symbol in symbolic
        ]
    return bounds, described


def _is_int(size: object) -> bool:
    return isinstance(size, int) or (hasattr(size, "__index__") and not hasattr(size, "free_symbols"))


def resolve_shape(shape: tuple[Any, ...], bounds: dict[str, int | None]) -> tuple[Size, ...]:
    resolved: list[Size] = []
    for size in shape:
        if _is_int(size):
            resolved.append(int(size))
            continue
        names = {str(s) for s in getattr(size, "free_symbols", set())}
        if names and all(bounds.get(n) is not None for n in names):
            value = size.subs({s: bounds[str(s)] for s in size.free_symbols})
            resolved.append(Flexible(str(size), int(value)))
        else:
            resolved.append(Flexible(str(size), None))
    return tuple(resolved)


class ShapeResolver:
    """Sizes of a program's tensors, flexible inputs taken at their declared upper bounds.

    Call it with a MIL variable; it returns the shape as :data:`~parakeet_nb.ane.layout.Size`
    values. Sizes that are expressions of the input symbols are evaluated at the bounds
    (:func:`resolve_shape`). Sizes coremltools can only name with fresh symbols (after
    shape-dependent ops such as ``shape -> range_1d -> tile``) are read from a second load
    of the program with every flexible input fixed at its upper bound, made once and only
    when needed. A size stays unbounded only when an input it may depend on has no upper
    bound.
    """

    def __init__(self, loaded: LoadedProgram) -> None:
        self.loaded = loaded
        self.bounds, self.flexible_inputs = input_bounds(loaded)
        self._fixed: dict[str, tuple[Any, ...]] | None = None

    def __call__(self, var: Any) -> tuple[Size, ...]:
        resolved = resolve_shape(tuple(var.shape), self.bounds)
        if any(isinstance(size, Flexible) and size.upper is None for size in resolved):
            fixed = self._fixed_shapes().get(var.name)
            if fixed is not None and len(fixed) == len(resolved):
                resolved = tuple(
                    Flexible(size.name, int(f)) if isinstance(size, Flexible) and size.upper is None and _is_int(f)
                    else size
                    for size, f in zip(resolved, fixed)
                )
        return resolved

    def _fixed_shapes(self) -> dict[str, tuple[Any, ...]]:
        """Shapes of every variable of ``main`` with the flexible inputs at their upper bounds."""
        if self._fixed is None:
            self._fixed = {}
            if self.bounds and all(b is not None for b in self.bounds.values()):
                self._fixed = _shapes_at_bounds(self.loaded, self.bounds)
        return self._fixed


def _shapes_at_bounds(loaded: LoadedProgram, bounds: dict[str, int | None]) -> dict[str, tuple[Any, ...]]:
    """Re-load the program with each flexible input axis fixed at its bound: name -> shape.

    Edits a copy of the spec's ``main`` input types (no hand parsing: the protobuf classes
    and coremltools' milproto loader do the work); an empty dict if that load fails.
    """
    from coremltools.converters.mil.frontend.milproto.load import load as load_milproto

    spec = type(loaded.spec)()
    spec.CopyFrom(loaded.spec)
    function = spec.mlProgram.functions["main"]
    for proto_input in function.inputs:
        var = loaded.main.inputs.get(proto_input.name)
        if var is None:
            continue
        dims = proto_input.type.tensorType.dimensions
        for axis, size in enumerate(var.shape):
            if not _is_int(size) and axis < len(dims) and bounds.get(str(size)) is not None:
                dims[axis].constant.size = int(bounds[str(size)])
    log = logging.getLogger("coremltools")
    level = log.level
    log.setLevel(logging.ERROR)  # value inference at fixed sizes logs routine int casts
    try:
        program = load_milproto(spec, specification_version=spec.specificationVersion,
                                file_weights_dir=loaded.model.weights_dir)
    except Exception:  # a program coremltools cannot re-infer at fixed sizes: keep the symbols
        return {}
    finally:
        log.setLevel(level)
    main = program.functions["main"]
    shapes = {name: tuple(var.shape) for name, var in main.inputs.items()}
    for op in walk_ops(main):
        for var in op.outputs:
            shape = tensor_shape(var)
            if shape is not None:
                shapes[var.name] = shape
    return shapes


def tensor_shape(var: Any) -> tuple[Any, ...] | None:
    """``var``'s shape, or ``None`` for a value that is not a tensor: a tensor list
    (``make_list``, ``list_write``...), whose elements are checked where they are read or written."""
    from coremltools.converters.mil.mil import types

    if types.is_list(var.sym_type):
        return None
    shape = getattr(var, "shape", None)
    return None if shape is None else tuple(shape)


def walk_ops(block):
    """Every op of a block in program order, descending into nested blocks."""
    for op in block.operations:
        yield op
        for inner in getattr(op, "blocks", ()) or ():
            yield from walk_ops(inner)


def audit_program(loaded: LoadedProgram) -> AuditReport:
    """Audit an already loaded program (see :func:`audit` for a path)."""
    resolver = ShapeResolver(loaded)
    flexible_inputs = resolver.flexible_inputs
    findings: list[Finding] = []
    checked = 0
    widest = (0, "")

    def check(index: int, op_type: str, op_name: str, role: str, param: str, var) -> None:
        nonlocal checked, widest
        if tensor_shape(var) is None:
            return
        checked += 1
        layout: Layout = to_layout(resolver(var))
        for axis in ("N", "D", "C", "H", "W"):
            value = layout.bound(axis)
            if value is not None and value > widest[0]:
                widest = (value, var.name)
        violations = tuple(layout.violations())
        if violations:
            findings.append(Finding(
                index=index, op_type=op_type, op_name=op_name, role=role, param=param,
                tensor=var.name, shape=layout.shape, ndchw=layout.ndchw(),
                violations=violations, ambiguous=layout.ambiguous,
                error_text=layout.error_text() or "",
            ))

    for name, var in loaded.main.inputs.items():
        check(-1, "input", name, "function input", name, var)
    ops = list(walk_ops(loaded.main))
    for index, op in enumerate(ops):
        for param, value in op.inputs.items():
            for var in value if isinstance(value, (list, tuple)) else (value,):
                check(index, op.op_type, op.name, "input", param, var)
        for var in op.outputs:
            check(index, op.op_type, op.name, "output", "", var)
    return AuditReport(
        path=str(loaded.path), ops=len(ops), tensors_checked=checked,
        widest_axis=widest[0], widest_tensor=widest[1], findings=findings,
        flexible_inputs=flexible_inputs,
    )


def audit(path: str | os.PathLike) -> AuditReport:
    """Audit the package at ``path``. Raises :class:`~parakeet_nb.mlprogram.load.ModelReadError`."""
    return audit_program(load_program(path))
