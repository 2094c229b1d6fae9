"""Elementwise ops: binary arithmetic and comparisons, unary math, activations, ``cast``,
``select`` and ``softmax``.

Semantics follow the coremltools 9.0 op definitions (``mil/ops/defs/iOS15..iOS17``).
Broadcasting is numpy's, which is MIL's rule. Float ops compute in float32; the executor
rounds the result to the declared dtype afterwards. Integer ops keep int32 wrap-around.

Where the definitions leave a result open, the op raises
:class:`~parakeet_nb.mlprogram.milexec.core.UndefinedBehaviorError` for exactly the inputs concerned:
integer division by zero, ``mod`` where Python's
and C's sign conventions disagree, float ``floor_div`` where ``floor(x / y)`` and Python's
``x // y`` disagree, and casts of NaN/inf or out-of-range values to integers.
"""

from __future__ import annotations

import math

import numpy as np

from parakeet_nb.mlprogram.milexec.core import (
    INT_TYPES,
    OpContext,
    as_float,
    is_float,
    normalize_axis,
    register,
)

F32 = np.float32

# --------------------------------------------------------------------------------------
# binary
# --------------------------------------------------------------------------------------

BINARY = ("x", "y")


def _promote(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """MIL promotion: any float operand makes both float32; otherwise a common int type."""
    x, y = np.asarray(x), np.asarray(y)
    if is_float(x) or is_float(y):
        return as_float(x), as_float(y)
    if x.dtype != y.dtype:
        common = np.result_type(x.dtype, y.dtype)
        return x.astype(common), y.astype(common)
    return x, y


def _binary(name: str, fn):
    @register(name, params=BINARY, family="elementwise")
    def impl(ctx: OpContext) -> np.ndarray:
        x, y = _promote(ctx.x("x"), ctx.x("y"))
        return fn(x, y)

    impl.__name__ = f"op_{name}"
    impl.__doc__ = f"``{name}(x, y)`` with numpy broadcasting."
    return impl


_binary("add", np.add)
_binary("sub", np.subtract)
_binary("mul", np.multiply)
_binary("maximum", np.maximum)
_binary("minimum", np.minimum)
_binary("equal", np.equal)
_binary("not_equal", np.not_equal)
_binary("less", np.less)
_binary("less_equal", np.less_equal)
_binary("greater", np.greater)
_binary("greater_equal", np.greater_equal)


def _logical(name: str, fn):
    @register(name, params=BINARY, family="elementwise")
    def impl(ctx: OpContext) -> np.ndarray:
        x, y = np.asarray(ctx.x("x")), np.asarray(ctx.x("y"))
        if x.dtype != np.bool_ or y.dtype != np.bool_:
            raise ctx.unsupported(f"{name} takes bool tensors, got {x.dtype} and {y.dtype}")
        return fn(x, y)

    impl.__name__ = f"op_{name}"
    return impl


_logical("logical_and", np.logical_and)
_logical("logical_or", np.logical_or)
_logical("logical_xor", np.logical_xor)


def _int_zero_divisor(ctx: OpContext, x: np.ndarray, y: np.ndarray) -> None:
    if np.any(np.broadcast_to(y, np.broadcast_shapes(x.shape, y.shape)) == 0):
        raise ctx.undefined("integer division by zero")


@register("real_div", params=BINARY, family="elementwise")
def op_real_div(ctx: OpContext) -> np.ndarray:
    """``x / y``. On int32 the result type is int32 and the quotient is truncated toward
    zero (C integer division): the op docs (coremltools ``converters/mil/mil/ops/defs/
    iOS15/elementwise_binary.py``) leave the rounding open, coremltools' own op tests pin
    it down (``mil/ops/tests/iOS14/test_elementwise_binary.py``:
    ``test_real_div_int_builder_to_backend`` expects ``np.array(x / y, dtype=np.int32)``
    from an ML Program, ``test_builder_real_div_both_ints`` ``5 / 2 -> 2``)."""
    x, y = _promote(ctx.x("x"), ctx.x("y"))
    if is_float(x):
        return x / y
    _int_zero_divisor(ctx, x, y)
    wide_x, wide_y = x.astype(np.int64), y.astype(np.int64)
    q = np.abs(wide_x) // np.abs(wide_y)
    return np.where((wide_x < 0) != (wide_y < 0), -q, q)


@register("floor_div", params=BINARY, family="elementwise")
def op_floor_div(ctx: OpContext) -> np.ndarray:
    """``x / y`` rounded towards negative infinity (``-7 // 2 == -4``).

    Floats: ``floor(x / y)``; where that differs from the floor of the exact quotient
    (``1 // 0.1`` is 9 in Python, ``floor(1 / 0.1)`` is 10) the result is refused as
    undefined. Non-finite quotients follow IEEE (``inf // 160 = inf``).
    """
    x, y = _promote(ctx.x("x"), ctx.x("y"))
    if not is_float(x):
        _int_zero_divisor(ctx, x, y)
        return np.floor_divide(x, y)
    a = np.floor(x / y)
    b = np.floor_divide(x, y)  # Python's x // y: floor of the exact quotient
    # Where x / y is not finite (inf / y, y = 0) only the IEEE reading floor(x / y) is
    # meaningful (Python's // gives nan for inf // y); elsewhere the two must agree.
    same = (a == b) | ~np.isfinite(a)
    if not np.all(same):
        i = np.flatnonzero(~same)[0]
        raise ctx.undefined(
            f"float floor_div where floor(x / y) = {a.flat[i]} but the exact quotient floors "
            f"to {b.flat[i]}; which one the runtime returns is not defined"
        )
    return a


@register("mod", params=BINARY, family="elementwise")
def op_mod(ctx: OpContext) -> np.ndarray:
    """``x mod y``. Python's convention (sign of ``y``, coremltools' value inference) and
    C's (sign of ``x``, reported for the Core ML runtime) differ when the signs differ and
    the remainder is not zero; those inputs are refused."""
    x, y = _promote(ctx.x("x"), ctx.x("y"))
    if not is_float(x):
        _int_zero_divisor(ctx, x, y)
    elif np.any(np.broadcast_to(y, np.broadcast_shapes(x.shape, y.shape)) == 0):
        raise ctx.undefined("mod by zero")
    py = np.mod(x, y)
    c = np.fmod(x, y)
    if np.any(py != c):
        raise ctx.undefined(
            "mod with operands of different signs: Python's and C's remainder conventions "
            "differ and the MIL definition does not say which applies"
        )
    return py


@register("pow", params=BINARY, family="elementwise")
def op_pow(ctx: OpContext) -> np.ndarray:
    """``x ** y`` (float: IEEE ``pow``; int: wrap-around, negative exponents refused)."""
    x, y = _promote(ctx.x("x"), ctx.x("y"))
    if is_float(x):
        return np.power(x, y)
    if np.any(y < 0):
        raise ctx.undefined("integer pow with a negative exponent")
    return np.power(x, y)


# --------------------------------------------------------------------------------------
# unary
# --------------------------------------------------------------------------------------


def _erf(x: np.ndarray) -> np.ndarray:
    try:
        from scipy.special import erf
    except ImportError:  # pragma: no cover - scipy ships with NeMo
        return np.vectorize(math.erf, otypes=[np.float64])(x).astype(F32)
    return erf(x).astype(F32)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return F32(1) / (F32(1) + np.exp(-x))


_FLOAT_UNARY = {
    "acos": np.arccos,
    "asin": np.arcsin,
    "atan": np.arctan,
    "atanh": np.arctanh,
    "ceil": np.ceil,
    "cos": np.cos,
    "cosh": np.cosh,
    "erf": _erf,
    "exp": np.exp,
    "exp2": np.exp2,
    "floor": np.floor,
    "sin": np.sin,
    "sinh": np.sinh,
    "sqrt": np.sqrt,
    "tan": np.tan,
    "tanh": np.tanh,
    "relu": lambda x: np.maximum(x, F32(0)),
    "relu6": lambda x: np.minimum(np.maximum(x, F32(0)), F32(6)),
    "sigmoid": _sigmoid,
    "silu": lambda x: x * _sigmoid(x),
    "softplus": lambda x: np.logaddexp(F32(0), x),
    "softsign": lambda x: x / (F32(1) + np.abs(x)),
}

#: unary ops whose domain includes int32 (``elementwise_unary_with_int``).
_INT_UNARY = {
    "abs": np.abs,
    "sign": np.sign,
    "square": np.square,
}


def _float_unary(name: str, fn):
    @register(name, params=("x",), family="elementwise")
    def impl(ctx: OpContext) -> np.ndarray:
        x = ctx.x("x")
        if not is_float(x):
            raise ctx.unsupported(f"{name} on {np.asarray(x).dtype} (only fp16/fp32 are defined)")
        return fn(x)

    impl.__name__ = f"op_{name}"
    return impl


def _int_unary(name: str, fn):
    @register(name, params=("x",), family="elementwise")
    def impl(ctx: OpContext) -> np.ndarray:
        return fn(np.asarray(ctx.x("x")))

    impl.__name__ = f"op_{name}"
    return impl


for _n, _f in _FLOAT_UNARY.items():
    _float_unary(_n, _f)
for _n, _f in _INT_UNARY.items():
    _int_unary(_n, _f)


@register("round", params=("x",), family="elementwise")
def op_round(ctx: OpContext) -> np.ndarray:
    """Round to nearest; ties to even (the docs only say ``0.5 -> 0``, which fits ties to
    even and ties toward zero; ties where those two differ raise an AmbiguityWarning)."""
    x = as_float(ctx.x("x"))
    r = np.round(x)
    frac = np.abs(x - np.trunc(x))
    if np.any((frac == 0.5) & (r != np.trunc(x))):
        ctx.ambiguous("round on an exact .5 tie: ties-to-even and ties-toward-zero differ here")
    return r


def _eps_unary(name: str, default_eps: float, fn):
    @register(name, params=("x", "epsilon"), family="elementwise")
    def impl(ctx: OpContext) -> np.ndarray:
        x = ctx.x("x")
        if not is_float(x):
            raise ctx.unsupported(f"{name} on {np.asarray(x).dtype}")
        eps = F32(ctx.attr("epsilon", default_eps))
        if ctx.rounds_to_fp16():
            # the op computes in its own type: epsilon is a float16 there (1e-45 -> 0)
            eps = F32(np.float16(eps))
        return fn(x, eps)

    impl.__name__ = f"op_{name}"
    return impl


_eps_unary("log", 1e-45, lambda x, e: np.log(x + e))
_eps_unary("inverse", 1e-4, lambda x, e: F32(1) / (x + e))
_eps_unary("rsqrt", 1e-12, lambda x, e: F32(1) / np.sqrt(x + e))


@register("logical_not", params=("x",), family="elementwise")
def op_logical_not(ctx: OpContext) -> np.ndarray:
    x = np.asarray(ctx.x("x"))
    if x.dtype != np.bool_:
        raise ctx.unsupported(f"logical_not takes bool, got {x.dtype}")
    return np.logical_not(x)


@register("clip", params=("x", "alpha", "beta"), family="elementwise")
def op_clip(ctx: OpContext) -> np.ndarray:
    """``min(max(x, alpha), beta)``."""
    x = as_float(ctx.x("x"))
    alpha, beta = F32(ctx.attr("alpha")), F32(ctx.attr("beta"))
    return np.minimum(np.maximum(x, alpha), beta)


@register("threshold", params=("x", "alpha"), family="elementwise")
def op_threshold(ctx: OpContext) -> np.ndarray:
    """``max(x, alpha)``."""
    x = np.asarray(ctx.x("x"))
    alpha = np.asarray(ctx.x("alpha")).astype(x.dtype)
    return np.maximum(x, alpha)


# --------------------------------------------------------------------------------------
# activations with parameters
# --------------------------------------------------------------------------------------


def _fa(ctx: OpContext, name: str) -> np.ndarray:
    return as_float(ctx.x(name))


@register("clamped_relu", params=("x", "alpha", "beta"), family="activation")
def op_clamped_relu(ctx: OpContext) -> np.ndarray:
    """``min(beta, x)`` for ``x >= 0``, else ``min(beta, alpha * x)``."""
    x, a, b = _fa(ctx, "x"), _fa(ctx, "alpha"), _fa(ctx, "beta")
    return np.minimum(np.where(x >= 0, x, a * x), b)


@register("elu", params=("x", "alpha"), family="activation")
def op_elu(ctx: OpContext) -> np.ndarray:
    """``x`` for ``x > 0``, else ``alpha * (exp(x) - 1)``."""
    x, a = _fa(ctx, "x"), _fa(ctx, "alpha")
    return np.where(x > 0, x, a * np.expm1(x))


@register("leaky_relu", params=("x", "alpha"), family="activation")
def op_leaky_relu(ctx: OpContext) -> np.ndarray:
    x, a = _fa(ctx, "x"), _fa(ctx, "alpha")
    return np.where(x >= 0, x, a * x)


@register("linear_activation", params=("x", "alpha", "beta"), family="activation")
def op_linear_activation(ctx: OpContext) -> np.ndarray:
    x, a, b = _fa(ctx, "x"), _fa(ctx, "alpha"), _fa(ctx, "beta")
    return a * x + b


@register("scaled_tanh", params=("x", "alpha", "beta"), family="activation")
def op_scaled_tanh(ctx: OpContext) -> np.ndarray:
    x, a, b = _fa(ctx, "x"), _fa(ctx, "alpha"), _fa(ctx, "beta")
    return a * np.tanh(b * x)


@register("sigmoid_hard", params=("x", "alpha", "beta"), family="activation")
def op_sigmoid_hard(ctx: OpContext) -> np.ndarray:
    x, a, b = _fa(ctx, "x"), _fa(ctx, "alpha"), _fa(ctx, "beta")
    return np.minimum(np.maximum(a * x + b, F32(0)), F32(1))


@register("thresholded_relu", params=("x", "alpha"), family="activation")
def op_thresholded_relu(ctx: OpContext) -> np.ndarray:
    x, a = _fa(ctx, "x"), _fa(ctx, "alpha")
    return np.where(x >= a, x, F32(0))


def _per_channel(ctx: OpContext, v: np.ndarray, rank: int) -> np.ndarray:
    """A ``[C]`` vector shaped to broadcast over axis 1 of a rank-``rank`` tensor."""
    shape = [1] * rank
    shape[1] = v.shape[0]
    return v.reshape(shape)


@register("prelu", params=("x", "alpha"), family="activation")
def op_prelu(ctx: OpContext) -> np.ndarray:
    """``x`` for ``x > 0``, else ``alpha[c] * x`` with ``c`` the channel (axis 1)."""
    x = _fa(ctx, "x")
    a = _per_channel(ctx, _fa(ctx, "alpha"), x.ndim)
    return np.where(x > 0, x, a * x)


@register("softplus_parametric", params=("x", "alpha", "beta"), family="activation")
def op_softplus_parametric(ctx: OpContext) -> np.ndarray:
    """``alpha[c] * log(1 + exp(beta[c] * x))`` with ``c`` the channel (axis 1)."""
    x = _fa(ctx, "x")
    a = _per_channel(ctx, _fa(ctx, "alpha"), x.ndim)
    b = _per_channel(ctx, _fa(ctx, "beta"), x.ndim)
    return a * np.logaddexp(F32(0), b * x)


@register("gelu", params=("x", "mode"), family="activation")
def op_gelu(ctx: OpContext) -> np.ndarray:
    """GELU: ``EXACT`` (erf), ``TANH_APPROXIMATION`` or ``SIGMOID_APPROXIMATION``."""
    x = _fa(ctx, "x")
    mode = ctx.attr("mode", "EXACT")
    if mode == "EXACT":
        return F32(0.5) * x * (F32(1) + _erf(x / F32(math.sqrt(2.0))))
    if mode == "TANH_APPROXIMATION":
        inner = F32(math.sqrt(2.0 / math.pi)) * (x + F32(0.044715) * x * x * x)
        return F32(0.5) * x * (F32(1) + np.tanh(inner))
    if mode == "SIGMOID_APPROXIMATION":
        return x * _sigmoid(F32(1.702) * x)
    raise ctx.unsupported(f"gelu mode {mode!r}")


@register("softmax", params=("x", "axis"), family="activation")
def op_softmax(ctx: OpContext) -> np.ndarray:
    """``exp(x - max) / sum(exp(x - max))`` along ``axis`` (default -1)."""
    x = _fa(ctx, "x")
    axis = normalize_axis(int(ctx.attr("axis", -1)), x.ndim, ctx)
    m = np.max(x, axis=axis, keepdims=True)
    e = np.exp(x - m)
    return e / np.sum(e, axis=axis, keepdims=True)


# --------------------------------------------------------------------------------------
# select and cast
# --------------------------------------------------------------------------------------


@register("select", params=("cond", "a", "b"), family="elementwise")
def op_select(ctx: OpContext) -> np.ndarray:
    """``a`` where ``cond`` else ``b``, all three broadcast."""
    cond = np.asarray(ctx.x("cond"))
    if cond.dtype != np.bool_:
        raise ctx.unsupported(f"select cond must be bool, got {cond.dtype}")
    a, b = np.asarray(ctx.x("a")), np.asarray(ctx.x("b"))
    if a.dtype != b.dtype:
        a, b = _promote(a, b)
    return np.where(cond, a, b)


_INT_RANGES = {
    "int8": (-(2**7), 2**7 - 1),
    "uint8": (0, 2**8 - 1),
    "int16": (-(2**15), 2**15 - 1),
    "uint16": (0, 2**16 - 1),
    "int32": (-(2**31), 2**31 - 1),
}


@register("cast", params=("x", "dtype"), family="elementwise")
def op_cast(ctx: OpContext) -> np.ndarray:
    """Convert ``x`` to ``dtype`` (``fp16``, ``fp32``, ``int8/16/32``, ``uint8/16``, ``bool``).

    Floats to integers truncate toward zero (as ``torch``'s ``.to(int)`` that the converter
    maps here); NaN, inf and values outside the target range are refused. Integers to a
    narrower integer type must fit. Anything to ``bool`` is ``x != 0``. Float results are
    rounded to float16 by the executor when ``dtype`` is ``fp16``.
    """
    x = np.asarray(ctx.x("x"))
    target = ctx.attr("dtype")
    if target in ("fp16", "fp32"):
        return as_float(x)
    if target == "bool":
        return x != 0
    if target in INT_TYPES:
        lo, hi = _INT_RANGES[target]
        if x.dtype.kind == "f":
            if not np.all(np.isfinite(x)):
                raise ctx.undefined(f"cast of NaN or inf to {target}")
            t = np.trunc(x.astype(np.float64))
        elif x.dtype == np.bool_:
            t = x.astype(np.int64)
        else:
            t = x.astype(np.int64)
        if t.size and (t.min() < lo or t.max() > hi):
            raise ctx.undefined(f"cast of values outside [{lo}, {hi}] to {target}")
        return t.astype(ctx.out_compute_dtype())
    raise ctx.unsupported(f"cast to dtype {target!r}")
