"""Shared pieces of the MIL reference executor: errors, dtypes, numerics, the op registry.

Values while a program runs
---------------------------
Every tensor is a numpy array in its *compute representation*:

* ``fp32`` and ``fp16`` tensors are ``float32`` arrays. An ``fp16`` tensor holds only values
  that float16 can represent (it was rounded when it was produced), so ops never have to
  upcast float16 storage again.
* integer tensors keep their declared width (``int32``, ``uint32``, ``int16``, ``uint16``,
  ``int8``, ``uint8``) and numpy's wrap-around arithmetic, which is int32 two's-complement semantics.
* ``bool`` tensors are ``numpy.bool_`` arrays; string parameters are Python ``str``.

Op implementations read their inputs through :class:`OpContext` and return arrays (or a
tuple of arrays, one per output). The executor then checks the shape against the one the
program declares, converts to the declared dtype and applies the numerics mode
(:func:`round_to_fp16`), so ops themselves never round their outputs (only ops with
internal steps, the LSTM, round their intermediate states with :meth:`OpContext.rounder`).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

Numerics = Literal["fp32", "fp16"]
Accumulate = Literal["fp32", "fp64"]

#: Smallest positive normal float16 (2**-14); float16 values below it in magnitude are subnormal.
FP16_MIN_NORMAL = np.float32(2.0**-14)

#: numpy dtype of each MIL dtype name, for storage at the program boundary.
STORAGE_DTYPES: dict[str, type] = {
    "fp16": np.float16,
    "fp32": np.float32,
    "int8": np.int8,
    "uint8": np.uint8,
    "int16": np.int16,
    "uint16": np.uint16,
    "int32": np.int32,
    "uint32": np.uint32,
    "bool": np.bool_,
}

#: numpy dtype of each MIL dtype name while a program runs (floats compute in float32).
COMPUTE_DTYPES: dict[str, type] = {**STORAGE_DTYPES, "fp16": np.float32}

FLOAT_TYPES = frozenset({"fp16", "fp32"})
INT_TYPES = frozenset({"int8", "uint8", "int16", "uint16", "int32", "uint32"})


class MilExecError(Exception):
    """Base class of every error the executor raises on purpose."""


class UnsupportedOpError(MilExecError, NotImplementedError):
    """An op type, or an attribute value of an op, that the executor does not implement.

    The message names the op type, the op's name and its position in ``main`` (0-based,
    counting every op including ``const``). The executor raises this instead of guessing.
    """


class UndefinedBehaviorError(MilExecError, ValueError):
    """Inputs for which the op's result is undefined or not pinned down by its definition.

    Examples: an out-of-bound ``gather`` index (undefined for ``validate_indices=False``),
    integer division by zero, a ``mod`` whose operands disagree in sign (Python and C conventions
    give different answers). The message names the op and says what was found.
    """


class InputValidationError(MilExecError, ValueError):
    """Inputs that do not match the program's declared input names, shapes or dtypes."""


class ExecutorInternalError(MilExecError, RuntimeError):
    """An op implementation produced a value that contradicts the program's declared type.

    Seeing this means a bug in this package (or a program whose declared types are wrong);
    the message names the op.
    """


class AmbiguityWarning(UserWarning):
    """A result that is one of several the op's definition allows (ties in argmax, topk...).

    The executor returns numpy's choice (the first index for ties). Turn it into an error
    with ``warnings.simplefilter("error", AmbiguityWarning)``.
    """


def mil_dtype(var: Any) -> str:
    """The MIL dtype name (``fp32``, ``int32``, ``bool``, ``string`` ...) of a MIL ``Var``;
    ``list`` for a tensor list (``make_list``'s output)."""
    from coremltools.converters.mil.mil import types

    if types.is_list(var.sym_type):
        return "list"
    return types.builtin_to_string(var.dtype)


def round_to_fp16(a: np.ndarray, flush_subnormals: bool = False) -> np.ndarray:
    """Round ``a`` to the nearest float16 value (ties to even), returned as ``float32``.

    Values beyond float16's range become ``±inf`` (``70000 -> inf``, ``65520 -> inf``,
    ``65519 -> 65504``), as IEEE round-to-nearest requires. With ``flush_subnormals`` every
    result whose magnitude is below :data:`FP16_MIN_NORMAL` becomes a zero of the same sign.
    """
    with np.errstate(over="ignore"):  # overflow to inf is the point, not a problem
        h = np.asarray(a).astype(np.float16)
    if flush_subnormals:
        tiny = np.abs(h) < np.float16(FP16_MIN_NORMAL)
        if np.any(tiny):
            h = np.where(tiny, np.copysign(np.float16(0), h), h)
    return h.astype(np.float32)


class OpContext:
    """What an op implementation sees: its op, its input values and how to fail clearly.

    Built once per op when a program is prepared (everything read from the MIL objects is
    cached here, since coremltools' accessors are slow); ``env`` is set for each run.
    ``position`` is the op's 0-based index in the operations of its block; ``n_ops`` their
    count; ``scope`` names the block: ``main``, or a nested block such as
    ``block 2 of 'while_loop_0'`` (a ``cond`` or ``while_loop`` body).
    """

    __slots__ = (
        "op", "op_type", "name", "position", "n_ops", "scope", "numerics", "flush_subnormals",
        "accumulate", "opset", "env", "_in_names", "_in_dtypes", "_out_dtypes",
    )

    def __init__(
        self,
        op: Any,
        position: int,
        n_ops: int,
        numerics: Numerics = "fp32",
        flush_subnormals: bool = False,
        accumulate: Accumulate = "fp32",
        scope: str = "main",
    ) -> None:
        self.op = op
        self.op_type: str = op.op_type
        self.name: str = op.name
        self.position = position
        self.n_ops = n_ops
        self.scope = scope
        self.numerics = numerics
        self.flush_subnormals = flush_subnormals
        self.accumulate = accumulate
        #: The iOS version of the op definition this op was built from (15, 16, 17 or 18).
        self.opset = opset_of(op)
        self.env: dict[str, Any] = {}
        self._in_names: dict[str, str | tuple[str, ...]] = {}
        self._in_dtypes: dict[str, str] = {}
        for param, v in op.inputs.items():
            if isinstance(v, (tuple, list)):
                self._in_names[param] = tuple(x.name for x in v)
            else:
                self._in_names[param] = v.name
                self._in_dtypes[param] = mil_dtype(v)
        self._out_dtypes = [mil_dtype(v) for v in op.outputs]

    # ---- identification and errors -------------------------------------------------
    @property
    def where(self) -> str:
        """``op 'conv' named 'conv_0' (#12 of 340 in main)``."""
        return f"op {self.op_type!r} named {self.name!r} (#{self.position} of {self.n_ops} in {self.scope})"

    def unsupported(self, detail: str) -> UnsupportedOpError:
        return UnsupportedOpError(f"{self.where}: {detail}")

    def undefined(self, detail: str) -> UndefinedBehaviorError:
        return UndefinedBehaviorError(f"{self.where}: {detail}")

    def ambiguous(self, detail: str) -> None:
        warnings.warn(f"{self.where}: {detail}", AmbiguityWarning, stacklevel=3)

    # ---- inputs -----------------------------------------------------------------
    def has(self, param: str) -> bool:
        """Whether the program passes ``param`` (optional parameters may be absent)."""
        return param in self._in_names

    def x(self, param: str) -> np.ndarray:
        """The value of a tensor input (a numpy array in compute representation)."""
        name = self._in_names.get(param)
        if name is None:
            raise ExecutorInternalError(f"{self.where}: required input {param!r} is missing")
        if isinstance(name, tuple):
            raise ExecutorInternalError(f"{self.where}: input {param!r} is a tuple")
        return self.env[name]

    def opt(self, param: str) -> np.ndarray | None:
        """The value of an optional tensor input, or ``None`` when absent."""
        return self.x(param) if param in self._in_names else None

    def values(self, param: str) -> list[np.ndarray]:
        """The values of a tuple input (``concat``'s and ``stack``'s ``values``)."""
        names = self._in_names[param]
        if not isinstance(names, tuple):
            names = (names,)
        return [self.env[n] for n in names]

    def dtype_of(self, param: str) -> str:
        """The MIL dtype name of a (non-tuple) input."""
        return self._in_dtypes[param]

    def attr(self, param: str, default: Any = ...) -> Any:
        """A scalar parameter as a Python value (``str``, ``bool``, ``int`` or ``float``)."""
        if not self.has(param):
            if default is ...:
                raise ExecutorInternalError(f"{self.where}: required parameter {param!r} is missing")
            return default
        v = self.x(param)
        if isinstance(v, str):
            return v
        a = np.asarray(v)
        if a.size != 1:
            raise self.unsupported(f"parameter {param!r} must be a scalar, got shape {a.shape}")
        item = a.reshape(()).item()
        return item

    def ints(self, param: str, default: Iterable[int] | None = ...) -> tuple[int, ...] | None:
        """A 1-D integer parameter as a tuple of ints (``default`` when absent)."""
        if not self.has(param):
            if default is ...:
                raise ExecutorInternalError(f"{self.where}: required parameter {param!r} is missing")
            return None if default is None else tuple(int(d) for d in default)
        return tuple(int(d) for d in np.asarray(self.x(param)).reshape(-1))

    def bools(self, param: str, n: int) -> tuple[bool, ...]:
        """A 1-D bool mask parameter, all ``False`` when absent."""
        if not self.has(param):
            return (False,) * n
        return tuple(bool(b) for b in np.asarray(self.x(param)).reshape(-1))

    # ---- outputs ----------------------------------------------------------------
    def out_dtype(self, i: int = 0) -> str:
        """The declared MIL dtype name of output ``i``."""
        return self._out_dtypes[i]

    def out_compute_dtype(self, i: int = 0) -> type:
        return COMPUTE_DTYPES[self.out_dtype(i)]

    def rounds_to_fp16(self, i: int = 0) -> bool:
        """Whether output ``i`` is rounded to float16 (its type is fp16, or numerics is fp16)."""
        return self.out_dtype(i) == "fp16" or (self.numerics == "fp16" and self.out_dtype(i) == "fp32")

    def acc(self, a: np.ndarray) -> np.ndarray:
        """``a`` in the accumulation dtype of products (float32, or float64 with
        ``accumulate="fp64"``), for ``matmul``/``linear``/``conv``/``einsum``/``lstm``."""
        return np.asarray(a, dtype=np.float64 if self.accumulate == "fp64" else np.float32)

    @property
    def acc_dtype(self) -> type:
        return np.float64 if self.accumulate == "fp64" else np.float32

    def rounder(self, i: int = 0) -> Callable[[np.ndarray], np.ndarray]:
        """For ops with internal steps (``lstm``): the rounding the executor applies to
        output ``i``, to apply to intermediate states as well (to float16 or float32)."""
        if not self.rounds_to_fp16(i):
            return lambda a: np.asarray(a, dtype=np.float32)
        flush = self.flush_subnormals
        return lambda a: round_to_fp16(a, flush)


def opset_of(op: Any) -> int:
    """The iOS version whose definition built ``op``: 15 for ``...defs.iOS15.conv``, etc."""
    module = type(op).__module__
    for part in module.split("."):
        if part.startswith("iOS") and part[3:].isdigit():
            return int(part[3:])
    return 15


@dataclass(frozen=True)
class OpImpl:
    """A registered op implementation and the parameters it understands."""

    op_type: str
    fn: Callable[[OpContext], Any]
    params: frozenset[str]
    family: str


#: op type -> implementation; filled by the modules of :mod:`parakeet_nb.mlprogram.milexec.ops`.
REGISTRY: dict[str, OpImpl] = {}


def register(*op_types: str, params: Iterable[str], family: str) -> Callable:
    """Register ``fn`` for ``op_types``; an op passing any parameter outside ``params`` is
    refused with :class:`UnsupportedOpError` rather than silently ignored."""
    param_set = frozenset(params)

    def deco(fn: Callable[[OpContext], Any]) -> Callable[[OpContext], Any]:
        for t in op_types:
            if t in REGISTRY:
                raise RuntimeError(f"op type {t!r} registered twice")
            REGISTRY[t] = OpImpl(t, fn, param_set, family)
        return fn

    return deco


def as_float(a: np.ndarray) -> np.ndarray:
    """``a`` as float32 (bools and ints convert by value)."""
    return np.asarray(a, dtype=np.float32)


def is_float(a: np.ndarray) -> bool:
    return np.asarray(a).dtype.kind == "f"


def normalize_axis(axis: int, rank: int, ctx: OpContext, what: str = "axis") -> int:
    """``axis`` in ``[-rank, rank)`` mapped to ``[0, rank)``; anything else is refused."""
    if not -rank <= axis < rank:
        raise ctx.unsupported(f"{what} {axis} out of range for rank {rank}")
    return axis + rank if axis < 0 else axis


def along_axis(param: Any, rank: int, axis: int) -> np.ndarray:
    """A scalar or vector quantization parameter (``scale``, ``zero_point``) in float64, a
    vector shaped to broadcast against a rank-``rank`` tensor along ``axis``."""
    param = np.asarray(param, dtype=np.float64)
    if param.ndim == 0:
        return param
    shape = [1] * rank
    shape[axis % rank] = param.shape[0]
    return param.reshape(shape)
