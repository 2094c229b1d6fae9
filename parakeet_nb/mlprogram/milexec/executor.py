"""Run a Core ML ML Program's ``main`` function op by op in numpy.

Core ML's ``predict`` exists only on macOS, so on Linux nothing checks that a converted
package computes what its PyTorch source computes. This executor is that check: it walks
``main.operations`` of a program read by :func:`parakeet_nb.mlprogram.load.load_program` (MIL
objects from coremltools' own protobuf loader), evaluates every op with a small numpy
function registered for its op type (:mod:`parakeet_nb.mlprogram.milexec.ops`) and returns the
function's outputs by name.

Control flow runs as defined: ``cond`` runs the block its predicate picks, ``while_loop``
its body while its condition block returns true (nested blocks see the values around them),
and tensor lists (``make_list``, ``list_write``...) are values like tensors.

It never guesses. An op type it does not implement, or an attribute value outside what it
implements (a pad mode, an LSTM activation, ``ceil_mode`` pooling...) raises
:class:`UnsupportedOpError` naming the op type, the op's name and its position in ``main``
(or in a nested block), before any computation. Inputs for which an op's
result is undefined (out-of-bound gather indices, integer division by zero...) raise
:class:`UndefinedBehaviorError` while running. After every op the produced shape and dtype
are checked against the ones the program declares.

Usage::

    from parakeet_nb.mlprogram.milexec import MilExecutor, run_program
    out = run_program("parakeet_encoder.mlpackage", {"mel": mel, "mel_length": n})
    half = MilExecutor("parakeet_encoder.mlpackage", numerics="fp16")  # prepare once,
    out16 = half.run({"mel": mel, "mel_length": n})                    # run many times

A stateful program (iOS 18 ``state`` inputs: streaming caches, key/value caches) runs with
buffers from :meth:`MilExecutor.make_state`, zeroed like Core ML's ``makeState()`` and
carried from run to run (:mod:`parakeet_nb.mlprogram.milexec.state`)::

    step = MilExecutor("streaming_encoder.mlpackage")
    cache = step.make_state()
    for chunk in chunks:
        out = step.run({"audio": chunk}, state=cache)

Numerics
--------
``numerics="fp32"``
    Every tensor keeps the dtype the program declares. fp32 tensors are computed in
    float32. Tensors the program declares as fp16 (an FP16-precision conversion inserts
    ``cast`` ops to fp16 and stores fp16 weights) are rounded to float16 when produced, so
    the program's own casts and fp16 consts are honoured.
``numerics="fp16"``
    Additionally every fp32 tensor (inputs, weights and every op output) is rounded to the
    nearest float16 value, as if the whole program ran in float16 (the Neural Engine
    computes in float16 whatever precision the program declares). Integer and bool tensors
    are unaffected. Outputs keep their declared dtype (fp32 outputs hold float16 values).
``flush_subnormals=True``
    Every value rounded to float16 whose magnitude is below 2**-14 becomes zero (same sign).
    Whether a given device flushes float16 subnormals is not documented; run both ways.
``accumulate="fp64"``
    Products (``matmul``, ``linear``, ``conv``, ``einsum``, attention, the LSTM's gate
    projections) accumulate in float64 and are rounded once to the output type, instead of
    numpy's float32 BLAS. The result no longer depends on a summation order, so parity
    checks see the program's own deviations rather than float32 accumulation noise (for
    a log-mel, float32 accumulation alone moves low-energy bins by ~4e-4). Slower, and it
    converts weights to float64 on every call; the default ``"fp32"`` is what a float32
    device computes, in some order.

What the float16 emulation is, and is not
-----------------------------------------
It is: float16 *storage* of every tensor between ops, with IEEE round-to-nearest-even
(``70000 -> inf``, ``1e-8 -> 0``, ``3e-5`` stays a subnormal unless flushed), so that the
range and resolution limits of float16 show up exactly where a float16 program would hit
them: overflow to inf, loss of small values, coarse steps after large ones.

It is not the Neural Engine's (or the GPU's) arithmetic. Inside an op this executor
computes in float32 (float64 only where that is the definition, e.g. ``range_1d`` values),
then rounds the op's output once. The ANE's accumulation order, the internal precision of
its matmul/conv accumulators, its transcendental-function approximations, and whether it
fuses ops (keeping an intermediate in higher precision) are not public and not modelled.
Results of this mode are therefore a *model* of float16 error, good for finding overflow
and for estimating the size of rounding error, not bit-exact predictions of a device.
The LSTM is rounded after each internal step (gates, cell, hidden state), as a float16
kernel would store them.
"""

from __future__ import annotations

import os
from collections import ChainMap
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from parakeet_nb.mlprogram.milexec import ops as _ops  # noqa: F401  (registers the op implementations)
from parakeet_nb.mlprogram.milexec.constexpr import DECOMPRESSORS, decompress
from parakeet_nb.mlprogram.milexec.ops.lists import TensorList
from parakeet_nb.mlprogram.milexec.state import MilState, StateSlot
from parakeet_nb.mlprogram.milexec.core import (
    COMPUTE_DTYPES,
    FLOAT_TYPES,
    INT_TYPES,
    REGISTRY,
    STORAGE_DTYPES,
    AmbiguityWarning,
    ExecutorInternalError,
    InputValidationError,
    MilExecError,
    Accumulate,
    Numerics,
    OpContext,
    OpImpl,
    UndefinedBehaviorError,
    UnsupportedOpError,
    mil_dtype,
    round_to_fp16,
)

__all__ = [
    "AmbiguityWarning",
    "ExecutorInternalError",
    "InputValidationError",
    "MilExecError",
    "MilExecutor",
    "MilState",
    "NonFiniteError",
    "UndefinedBehaviorError",
    "UnsupportedOpError",
    "run_program",
    "supported_op_types",
    "unsupported_ops",
]

#: Op types whose value coremltools materializes when it loads the program.
_CONST_LIKE_PREFIX = "constexpr_"
#: Ops with nested blocks, run by the executor itself, and their parameters
#: (``coremltools/converters/mil/mil/ops/defs/iOS15/control_flow.py``).
CONTROL_FLOW: dict[str, frozenset[str]] = {
    "cond": frozenset({"pred"}),
    "while_loop": frozenset({"loop_vars"}),
}


class NonFiniteError(MilExecError):
    """``stop_on_nonfinite``: an op made inf/NaN from finite inputs (op, position, numerics)."""


def _nonfinite(a: Any) -> bool:
    a = np.asarray(a)
    return a.dtype.kind == "f" and not np.isfinite(a).all()


def supported_op_types() -> list[str]:
    """Every op type the executor implements: the ops it runs, control flow (``cond``,
    ``while_loop``) and the ``constexpr_*`` weight decompressions (``const`` aside)."""
    return sorted(set(REGISTRY) | set(DECOMPRESSORS) | set(CONTROL_FLOW))


def _is_symbolic(d: Any) -> bool:
    from coremltools.converters.mil.mil.types.symbolic import is_symbolic

    return is_symbolic(d)


def _is_state(var: Any) -> bool:
    from coremltools.converters.mil.mil import types

    return types.is_state(var.sym_type)


def _resolve_function(program: Any, function_name: str):
    """A MIL ``Function`` from a LoadedProgram, a path, a MIL ``Program`` or a ``Function``."""
    from coremltools.converters.mil.mil import Function, Program

    if isinstance(program, Function):
        return program
    if isinstance(program, (str, os.PathLike)):
        from parakeet_nb.mlprogram.load import load_program

        program = load_program(program)
    if hasattr(program, "program") and isinstance(getattr(program, "program"), Program):
        program = program.program  # a LoadedProgram
    if isinstance(program, Program):
        if function_name not in program.functions:
            raise InputValidationError(
                f"the program has no function {function_name!r} (it has {', '.join(program.functions)})"
            )
        return program.functions[function_name]
    raise TypeError(
        "expected a LoadedProgram, a path to an .mlpackage, or a coremltools MIL Program/Function, "
        f"got {type(program).__name__}"
    )


@dataclass
class _Out:
    """A declared output: name, shape (``None`` for a symbolic dim) and MIL dtype."""

    name: str
    shape: tuple[int | None, ...]
    dtype: str


def _declared_shape(var: Any) -> tuple[int | None, ...]:
    return tuple(None if _is_symbolic(d) else int(d) for d in var.shape)


@dataclass
class _Block:
    """A nested block of a ``cond`` or ``while_loop``: its input names (a loop's variables),
    its steps and the names of the values it returns."""

    inputs: list[str]
    steps: list[_Step]
    outputs: list[str]


@dataclass
class _Step:
    position: int
    op: Any
    impl: OpImpl | None  # None for control flow, which the executor runs itself
    n_ops: int
    scope: str
    blocks: list[_Block] = field(default_factory=list)
    free_after: list[str] = field(default_factory=list)
    ctx: OpContext | None = None
    outs: list[_Out] = field(default_factory=list)


def _walk(steps: list[_Step]) -> Iterator[_Step]:
    """Every step, those of nested blocks included."""
    for step in steps:
        yield step
        for block in step.blocks:
            yield from _walk(block.steps)


def _reads(step: _Step) -> set[str]:
    """The names a step reads: its inputs and, for control flow, whatever its blocks read
    from outside themselves (reading more is harmless: it only keeps a value alive longer)."""
    names = {
        var.name
        for value in step.op.inputs.values()
        for var in (value if isinstance(value, (tuple, list)) else (value,))
    }
    for block in step.blocks:
        names.update(block.outputs)
        for inner in block.steps:
            names |= _reads(inner)
    return names


def _plan(function: Any) -> tuple[list[_Step], list[tuple[str, Any]], list[str]]:
    """Split ``function.operations`` (and those of nested blocks) into const-like ops and
    executable steps, checking support; returns ``(steps, consts, problems)`` where
    ``consts`` are ``(where, op)`` pairs and ``problems`` the messages of every unsupported
    op (empty when all are supported)."""
    consts: list[tuple[str, Any]] = []
    problems: list[str] = []
    steps = _plan_block(list(function.operations), "main", consts, problems)
    return steps, consts, problems


def _plan_block(ops: list[Any], scope: str, consts: list[tuple[str, Any]], problems: list[str]) -> list[_Step]:
    n = len(ops)
    steps: list[_Step] = []
    for pos, op in enumerate(ops):
        where = f"op {op.op_type!r} named {op.name!r} (#{pos} of {n} in {scope})"
        if op.op_type == "const" or op.op_type.startswith(_CONST_LIKE_PREFIX):
            if op.op_type not in DECOMPRESSORS and any(v.val is None for v in op.outputs):
                problems.append(
                    f"{where}: op type {op.op_type!r} (weight decompression) is not implemented by milexec"
                    if op.op_type != "const" else f"{where}: no value was materialized for this constant"
                )
            consts.append((where, op))
            continue
        blocks = list(getattr(op, "blocks", None) or ())
        impl = REGISTRY.get(op.op_type)
        params = CONTROL_FLOW.get(op.op_type) if blocks else (impl.params if impl else None)
        if params is None:
            problems.append(f"{where}: op type {op.op_type!r} is not implemented by milexec")
            continue
        extra = sorted(set(op.inputs) - params)
        if extra:
            problems.append(f"{where}: parameter(s) {', '.join(extra)} are not implemented")
            continue
        bad = [mil_dtype(v) for v in op.outputs if mil_dtype(v) not in COMPUTE_DTYPES and mil_dtype(v) != "list"]
        if bad:
            problems.append(f"{where}: output dtype(s) {', '.join(bad)} are not supported")
            continue
        nested = [
            _Block(
                [v.name for v in block.inputs],
                _plan_block(list(block.operations), f"block {i + 1} of {op.name!r}", consts, problems),
                [v.name for v in block.outputs],
            )
            for i, block in enumerate(blocks)
        ]
        steps.append(_Step(pos, op, None if blocks else impl, n, scope, nested))
    return steps


def unsupported_ops(program: Any, function_name: str = "main") -> list[str]:
    """One message per op the executor cannot run (empty when the whole program runs)."""
    return _plan(_resolve_function(program, function_name))[2]


class MilExecutor:
    """A prepared program: constants materialized once, then :meth:`run` any number of times.

    ``program`` is a :class:`~parakeet_nb.mlprogram.load.LoadedProgram`, a path to an
    ``.mlpackage``, or a coremltools MIL ``Program``/``Function`` (e.g. one built with
    ``@mb.program``). See the module docstring for ``numerics``, ``flush_subnormals`` and
    ``accumulate``. Raises :class:`UnsupportedOpError` for the first op it cannot run.
    One executor runs one program at a time (it is not thread-safe); make one per thread.
    """

    def __init__(
        self,
        program: Any,
        *,
        numerics: Numerics = "fp32",
        flush_subnormals: bool = False,
        accumulate: Accumulate = "fp32",
        function_name: str = "main",
    ) -> None:
        if numerics not in ("fp32", "fp16"):
            raise ValueError(f"numerics must be 'fp32' or 'fp16', got {numerics!r}")
        if accumulate not in ("fp32", "fp64"):
            raise ValueError(f"accumulate must be 'fp32' or 'fp64', got {accumulate!r}")
        self.numerics: Numerics = numerics
        self.accumulate: Accumulate = accumulate
        self.flush_subnormals = bool(flush_subnormals)
        self.function = _resolve_function(program, function_name)
        self.n_ops = len(self.function.operations)
        steps, consts, problems = _plan(self.function)
        if problems:
            more = f" (and {len(problems) - 1} more unsupported op(s))" if len(problems) > 1 else ""
            raise UnsupportedOpError(problems[0] + more)
        self._steps = steps
        for step in _walk(steps):
            step.ctx = OpContext(
                step.op, step.position, step.n_ops, numerics, self.flush_subnormals, accumulate, step.scope
            )
            step.outs = [
                _Out(v.name, () if mil_dtype(v) == "list" else _declared_shape(v), mil_dtype(v))
                for v in step.op.outputs
            ]
        declared = [
            (name, _declared_shape(var), mil_dtype(var), _is_state(var))
            for name, var in self.function.inputs.items()
        ]
        self._inputs = [(name, shape, dtype) for name, shape, dtype, state in declared if not state]
        self._states = {name: (shape, dtype) for name, shape, dtype, state in declared if state}
        self._outputs = [(v.name, mil_dtype(v)) for v in self.function.outputs]
        raw = self._materialize(consts)
        read = {v.name for v in self.function.outputs}.union(*(_reads(step) for step in steps))
        self._consts: dict[str, Any] = {
            var.name: self._prepare_const(var, raw[var.name], where, op)
            for where, op in consts
            for var in op.outputs
            if var.name in read
        }
        self._schedule_frees()

    # ---- preparation ------------------------------------------------------------------
    def _rounds(self, dtype: str) -> bool:
        return dtype == "fp16" or (dtype == "fp32" and self.numerics == "fp16")

    def _materialize(self, consts: list[tuple[str, Any]]) -> dict[str, Any]:
        """Every constant's stored value by name; ``constexpr_*`` ops are decompressed here,
        in program order, from their inputs' values (:mod:`~parakeet_nb.mlprogram.milexec.constexpr`)."""
        raw: dict[str, Any] = {}
        for where, op in consts:
            if op.op_type not in DECOMPRESSORS:
                raw.update((var.name, var.val) for var in op.outputs)
                continue
            inputs = {name: raw[var.name] if var.name in raw else var.val for name, var in op.inputs.items()}
            try:
                outputs = decompress(op.op_type, inputs)
            except Exception as exc:  # an inconsistent program: say which op
                raise ExecutorInternalError(f"{where}: {type(exc).__name__}: {exc}") from exc
            for var, value in zip(op.outputs, outputs):
                if tuple(np.shape(value)) != _declared_shape(var):
                    raise ExecutorInternalError(
                        f"{where}: output {var.name!r} has shape {list(np.shape(value))}, the program declares {list(var.shape)}"
                    )
                raw[var.name] = value
        return raw

    def _prepare_const(self, var: Any, value: Any, where: str, op: Any) -> Any:
        dtype = mil_dtype(var)
        if dtype == "string":
            return str(value)
        if dtype not in COMPUTE_DTYPES:
            raise UnsupportedOpError(f"{where}: constant of dtype {dtype} is not supported")
        a = np.asarray(value)
        if dtype in FLOAT_TYPES:
            a = a.astype(np.float32, copy=False)
            if self._rounds(dtype):
                a = round_to_fp16(a, self.flush_subnormals)
        else:
            a = a.astype(COMPUTE_DTYPES[dtype], copy=False)
        return a

    def _schedule_frees(self) -> None:
        """Drop every intermediate right after its last reader (keeps peak memory low)."""
        last_use: dict[str, int] = {}
        for i, step in enumerate(self._steps):
            for name in _reads(step):
                last_use[name] = i
        keep = {v.name for v in self.function.outputs} | set(self._consts)
        for name, i in last_use.items():
            if name not in keep:
                self._steps[i].free_after.append(name)
        for step in self._steps:  # outputs nobody reads: drop at once
            step.free_after.extend(
                o.name for o in step.op.outputs if o.name not in last_use and o.name not in keep
            )

    # ---- inputs -----------------------------------------------------------------------
    def input_specs(self) -> dict[str, tuple[tuple[int | None, ...], str]]:
        """``name -> (shape, MIL dtype)`` of the function's inputs (``None`` for a flexible dim)."""
        return {name: (shape, dtype) for name, shape, dtype in self._inputs}

    def state_specs(self) -> dict[str, tuple[tuple[int, ...], str]]:
        """``name -> (shape, MIL dtype)`` of the function's state inputs (empty when stateless)."""
        return dict(self._states)

    def make_state(self) -> MilState:
        """New zero-initialized state buffers for :meth:`run` (Core ML's ``MLModel.makeState()``)."""
        return MilState(self._states)

    def _bind_state(self, state: MilState | None) -> dict[str, StateSlot]:
        """The state buffers ``run`` reads and updates, by state input name."""
        if state is None:
            if self._states:
                shown = ", ".join(f"{n} {list(s)} {t}" for n, (s, t) in self._states.items())
                raise InputValidationError(
                    f"the program is stateful (states: {shown}): pass state=executor.make_state()"
                )
            return {}
        if not isinstance(state, MilState):
            raise InputValidationError(f"state must be a MilState (executor.make_state()), got {type(state).__name__}")
        if set(state.names) != set(self._states):
            raise InputValidationError(
                f"the state holds {', '.join(state.names) or 'no buffers'}; "
                f"the program's states are {', '.join(self._states) or 'none'}"
            )
        slots = {name: state.slot(name) for name in self._states}
        for name, (shape, dtype) in self._states.items():
            if (slots[name].shape, slots[name].dtype) != (shape, dtype):
                raise InputValidationError(
                    f"state {name!r} is {list(slots[name].shape)} {slots[name].dtype}, "
                    f"the program declares {list(shape)} {dtype}"
                )
        return slots

    def _describe_inputs(self) -> str:
        return ", ".join(
            f"{n} {['?' if d is None else d for d in s]} {t}" for n, s, t in self._inputs
        )

    def _validate_inputs(self, inputs: Mapping[str, Any]) -> dict[str, np.ndarray]:
        if not isinstance(inputs, Mapping):
            raise InputValidationError(f"inputs must be a mapping of name -> array, got {type(inputs).__name__}")
        expected = [name for name, _, _ in self._inputs]
        missing = [n for n in expected if n not in inputs]
        extra = [n for n in inputs if n not in expected]
        if missing or extra:
            parts = []
            if missing:
                parts.append(f"missing {', '.join(missing)}")
            if extra:
                parts.append(f"unexpected {', '.join(map(str, extra))}")
            raise InputValidationError(f"{'; '.join(parts)} (the program expects: {self._describe_inputs()})")
        out: dict[str, np.ndarray] = {}
        for name, shape, dtype in self._inputs:
            arr = np.asarray(inputs[name])
            if arr.ndim != len(shape) or any(d is not None and d != a for d, a in zip(shape, arr.shape)):
                shown = ["?" if d is None else d for d in shape]
                raise InputValidationError(
                    f"input {name!r}: shape {list(arr.shape)} does not match the declared {shown}"
                )
            kind = arr.dtype.kind
            if dtype in FLOAT_TYPES:
                if kind != "f":
                    raise InputValidationError(
                        f"input {name!r}: expects a floating-point array ({dtype}), got {arr.dtype}"
                    )
                if self._rounds(dtype):
                    value = round_to_fp16(arr, self.flush_subnormals)
                else:
                    value = arr.astype(np.float32)
            elif dtype in INT_TYPES:
                if kind not in "iu":
                    raise InputValidationError(f"input {name!r}: expects an integer array ({dtype}), got {arr.dtype}")
                info = np.iinfo(STORAGE_DTYPES[dtype])
                if arr.size and (arr.min() < info.min or arr.max() > info.max):
                    raise InputValidationError(f"input {name!r}: values outside the range of {dtype}")
                value = arr.astype(STORAGE_DTYPES[dtype])
            elif dtype == "bool":
                if kind != "b":
                    raise InputValidationError(f"input {name!r}: expects a bool array, got {arr.dtype}")
                value = arr.astype(np.bool_)
            else:
                raise InputValidationError(f"input {name!r}: dtype {dtype} is not supported")
            out[name] = value
        return out

    # ---- running ----------------------------------------------------------------------
    def _finish(self, value: Any, out: _Out, ctx: OpContext) -> np.ndarray:
        """Check an op's output against its declared type and apply the numerics mode."""
        if out.dtype == "list":
            if not isinstance(value, TensorList):
                raise ExecutorInternalError(f"{ctx.where}: output {out.name!r} is {type(value).__name__}, declared a list")
            return value
        a = np.asarray(value)
        declared = out.shape
        if a.ndim != len(declared) or any(d is not None and d != n for d, n in zip(declared, a.shape)):
            shown = ["?" if d is None else d for d in declared]
            raise ExecutorInternalError(
                f"{ctx.where}: output {out.name!r} has shape {list(a.shape)}, the program declares {shown}"
            )
        dtype = out.dtype
        kind = a.dtype.kind
        if dtype in FLOAT_TYPES:
            if kind != "f":
                raise ExecutorInternalError(f"{ctx.where}: output {out.name!r} is {a.dtype}, declared {dtype}")
            if self._rounds(dtype):
                return round_to_fp16(a, self.flush_subnormals)
            return a.astype(np.float32, copy=False)
        if dtype == "bool":
            if kind != "b":
                raise ExecutorInternalError(f"{ctx.where}: output {out.name!r} is {a.dtype}, declared bool")
            return a
        if kind not in "iu":
            raise ExecutorInternalError(f"{ctx.where}: output {out.name!r} is {a.dtype}, declared {dtype}")
        target = COMPUTE_DTYPES[dtype]
        if a.dtype != target:
            info = np.iinfo(target)
            if a.size and (a.min() < info.min or a.max() > info.max):
                raise ExecutorInternalError(f"{ctx.where}: output {out.name!r} does not fit {dtype}")
            a = a.astype(target)
        return a

    def run(
        self,
        inputs: Mapping[str, Any],
        *,
        state: MilState | None = None,
        on_op: Callable[[Any, tuple[np.ndarray, ...]], None] | None = None,
        stop_on_nonfinite: bool = False,
    ) -> dict[str, np.ndarray]:
        """Run ``main`` on ``inputs`` (name -> array) and return its outputs by name.

        A stateful program (iOS 18 ``state`` inputs) needs ``state``, a
        :class:`~parakeet_nb.mlprogram.milexec.state.MilState` from :meth:`make_state`: its
        buffers are read by ``read_state`` and overwritten by ``coreml_update_state``, and
        keep their values for the next run, as Core ML's ``predict(..., state=...)`` does.

        Floating inputs of any float dtype are accepted and converted to the declared type;
        integer inputs must fit the declared integer type. Outputs have their declared
        dtype (``float16`` arrays for fp16 outputs). ``on_op(op, outputs)`` is called after
        every executed op with its (rounded) output values, for layer-by-layer inspection.
        ``stop_on_nonfinite=True`` raises :class:`NonFiniteError` at the first op whose output
        holds inf or NaN while every non-constant input was finite (a constant that is inf,
        e.g. a large float32 value rounded to float16, is named in the message).
        """
        env: dict[str, Any] = dict(self._consts)
        env.update(self._validate_inputs(inputs))
        env.update(self._bind_state(state))
        with np.errstate(all="ignore"):  # IEEE semantics: inf/nan propagate silently
            try:
                self._run_steps(self._steps, env, on_op, stop_on_nonfinite)
            finally:
                for step in _walk(self._steps):  # do not keep this run's values alive
                    step.ctx.env = {}
        return {
            name: np.array(env[name], dtype=STORAGE_DTYPES.get(dtype), copy=True)
            for name, dtype in self._outputs
        }

    def _run_steps(
        self,
        steps: list[_Step],
        env: MutableMapping[str, Any],
        on_op: Callable[[Any, tuple[np.ndarray, ...]], None] | None,
        stop_on_nonfinite: bool,
    ) -> None:
        """Run ``steps`` in order, each op reading from and writing to ``env``."""
        for step in steps:
            ctx = step.ctx
            ctx.env = env
            if step.blocks:
                results = self._control_flow(step, env, on_op, stop_on_nonfinite)
            else:
                try:
                    result = step.impl.fn(ctx)
                except (MilExecError, Warning):  # ours, or a warning turned into an error
                    raise
                except Exception as exc:  # a numpy error means a bug or an inconsistent program
                    raise ExecutorInternalError(f"{ctx.where}: {type(exc).__name__}: {exc}") from exc
                results = result if isinstance(result, tuple) else (result,)
            if len(results) != len(step.outs):
                raise ExecutorInternalError(
                    f"{ctx.where}: produced {len(results)} outputs, the program declares {len(step.outs)}"
                )
            finished = tuple(self._finish(v, out, ctx) for v, out in zip(results, step.outs))
            if stop_on_nonfinite:
                self._check_finite(step, env, finished)
            for out, v in zip(step.outs, finished):
                env[out.name] = v
            if on_op is not None:
                on_op(step.op, finished)
            for name in step.free_after:
                env.pop(name, None)

    def _run_block(self, block: _Block, env: MutableMapping[str, Any], values: tuple, *run_args: Any) -> tuple:
        """Run a nested block on ``values`` (its inputs) in a scope over ``env``; its own
        values are dropped when it returns."""
        scope = ChainMap(dict(zip(block.inputs, values)), env)
        self._run_steps(block.steps, scope, *run_args)
        return tuple(scope[name] for name in block.outputs)

    def _control_flow(self, step: _Step, env: MutableMapping[str, Any], *run_args: Any) -> tuple:
        """``cond``: the block ``pred`` picks. ``while_loop``: the body while the condition
        block returns true, from ``loop_vars``; the outputs are the last values (a loop whose
        condition never turns false does not end here either)."""
        ctx = step.ctx
        if step.op.op_type == "cond":
            taken = step.blocks[0] if self._truth(ctx, ctx.x("pred"), "pred") else step.blocks[1]
            return self._run_block(taken, env, (), *run_args)
        condition, body = step.blocks
        values = tuple(ctx.values("loop_vars"))
        while self._truth(ctx, self._run_block(condition, env, values, *run_args)[0], "the loop condition"):
            values = self._run_block(body, env, values, *run_args)
        return values

    @staticmethod
    def _truth(ctx: OpContext, value: Any, what: str) -> bool:
        a = np.asarray(value)
        if a.size != 1 or a.dtype != np.bool_:
            raise ctx.undefined(f"{what} is {a.dtype} of shape {list(a.shape)}, not one bool")
        return bool(a.reshape(()))

    def _check_finite(self, step: _Step, env: dict[str, Any], finished: tuple[np.ndarray, ...]) -> None:
        bad = [(out, v) for out, v in zip(step.outs, finished) if _nonfinite(v)]
        if not bad:
            return
        consts = []
        for value in step.op.inputs.values():
            for var in value if isinstance(value, (tuple, list)) else (value,):
                value = env.get(var.name, 0.0)
                if not _nonfinite(value.value if isinstance(value, StateSlot) else value):
                    continue
                if var.name not in self._consts:
                    return  # propagated from a non-finite tensor, not made here
                consts.append(var.name)
        out, v = bad[0]
        a = np.asarray(v)
        mode = f"numerics {self.numerics}" + (", subnormals flushed" if self.flush_subnormals else "")
        via = f"; non-finite constant input(s) {', '.join(consts)}" if consts else ""
        raise NonFiniteError(
            f"{step.ctx.where}: output {out.name!r} ({out.dtype}) has {int(np.isinf(a).sum())} inf and "
            f"{int(np.isnan(a).sum())} NaN of {a.size} values from finite inputs ({mode}{via})"
        )


def run_program(
    lp_or_path: Any,
    inputs: Mapping[str, Any],
    *,
    numerics: Numerics = "fp32",
    flush_subnormals: bool = False,
    accumulate: Accumulate = "fp32",
) -> dict[str, np.ndarray]:
    """Run a program's ``main`` function once and return its outputs by name.

    ``lp_or_path`` is a :class:`~parakeet_nb.mlprogram.load.LoadedProgram`, a path to an
    ``.mlpackage``, or a coremltools MIL ``Program``/``Function``. To run one program many
    times, build a :class:`MilExecutor` once (constants are prepared in its constructor).
    """
    return MilExecutor(
        lp_or_path, numerics=numerics, flush_subnormals=flush_subnormals, accumulate=accumulate
    ).run(inputs)
