"""Reductions: ``reduce_*`` over ``axes`` (all axes when absent) and ``reduce_argmax/argmin``.

``keep_dims`` defaults to ``False``; negative axes count from the end. Float reductions run
in float32 with numpy's pairwise summation. Integer ``reduce_sum``/``reduce_prod`` wrap
modulo 2**32 like int32 arithmetic; the other reductions are float-only (their integer
results are not defined by the docs).

Ties in ``reduce_argmax``/``reduce_argmin`` are "not guaranteed" by the definition: the first
index is returned and an :class:`~parakeet_nb.mlprogram.milexec.core.AmbiguityWarning` is issued.
"""

from __future__ import annotations

import numpy as np

from parakeet_nb.mlprogram.milexec.core import OpContext, as_float, is_float, normalize_axis, register

F32 = np.float32
AXES = ("x", "axes", "keep_dims")


def _axes(ctx: OpContext, rank: int) -> tuple[int, ...]:
    axes = ctx.ints("axes", None)
    if axes is None:
        return tuple(range(rank))
    norm = tuple(normalize_axis(a, rank, ctx, "axes entry") for a in axes)
    if len(set(norm)) != len(norm):
        raise ctx.unsupported(f"repeated reduction axes {axes}")
    return norm


def _log_sum_exp(x: np.ndarray, axis: tuple[int, ...], keepdims: bool) -> np.ndarray:
    m = np.max(x, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, F32(0))
    s = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
    return s if keepdims else np.squeeze(s, axis=axis)


_FLOAT_REDUCE = {
    "reduce_mean": lambda x, axis, keepdims: np.mean(x, axis=axis, keepdims=keepdims, dtype=F32),
    "reduce_l1_norm": lambda x, axis, keepdims: np.sum(np.abs(x), axis=axis, keepdims=keepdims),
    "reduce_l2_norm": lambda x, axis, keepdims: np.sqrt(np.sum(x * x, axis=axis, keepdims=keepdims)),
    "reduce_log_sum": lambda x, axis, keepdims: np.log(np.sum(x, axis=axis, keepdims=keepdims)),
    "reduce_log_sum_exp": _log_sum_exp,
    "reduce_sum_square": lambda x, axis, keepdims: np.sum(x * x, axis=axis, keepdims=keepdims),
}

_ANY_REDUCE = {
    "reduce_sum": np.sum,
    "reduce_prod": np.prod,
    "reduce_max": np.max,
    "reduce_min": np.min,
}


def _reduce(name: str, fn, float_only: bool):
    @register(name, params=AXES, family="reduce")
    def impl(ctx: OpContext) -> np.ndarray:
        x = np.asarray(ctx.x("x"))
        axes = _axes(ctx, x.ndim)
        keep = bool(ctx.attr("keep_dims", False))
        if float_only and not is_float(x):
            raise ctx.unsupported(f"{name} on {x.dtype} (only fp16/fp32 are defined)")
        if is_float(x):
            x = as_float(x)
        try:
            out = fn(x, axis=axes, keepdims=keep)
        except ValueError as exc:  # max/min over an empty axis
            raise ctx.undefined(f"{name} over an empty axis ({exc})") from None
        if not is_float(x):
            out = np.asarray(out).astype(x.dtype)  # wrap-around, as int32 arithmetic
        return out

    impl.__name__ = f"op_{name}"
    return impl


for _n, _f in _FLOAT_REDUCE.items():
    _reduce(_n, _f, float_only=True)
for _n, _f in _ANY_REDUCE.items():
    _reduce(_n, _f, float_only=False)


def _arg(name: str, fn, extreme):
    @register(name, params=("x", "axis", "keep_dims", "output_dtype"), family="reduce")
    def impl(ctx: OpContext) -> np.ndarray:
        x = np.asarray(ctx.x("x"))
        axis = normalize_axis(int(ctx.attr("axis", -1)), x.ndim, ctx)
        keep = bool(ctx.attr("keep_dims", False))
        out_dtype = str(ctx.attr("output_dtype", "int32")).lower()
        if out_dtype not in ("int32", "uint16"):
            raise ctx.unsupported(f"output_dtype {out_dtype!r}")
        if x.shape[axis] == 0:
            raise ctx.undefined(f"{name} over an empty axis")
        idx = fn(x, axis=axis, keepdims=True)
        best = extreme(x, axis=axis, keepdims=True)
        if np.any(np.sum(x == best, axis=axis) > 1):
            ctx.ambiguous(f"{name} over a tie: returning the first index")
        if not keep:
            idx = np.squeeze(idx, axis=axis)
        return idx.astype(np.int32 if out_dtype == "int32" else np.uint16)

    impl.__name__ = f"op_{name}"
    return impl


_arg("reduce_argmax", np.argmax, np.max)
_arg("reduce_argmin", np.argmin, np.min)
