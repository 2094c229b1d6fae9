"""Normalizations: ``layer_norm``, ``batch_norm``, ``instance_norm``, ``l2_norm``.

Means and (biased) variances are computed in float32 over the normalized axes, as the
definitions' formulas read: ``(x - mean) / sqrt(var + epsilon) * gamma + beta``.
"""

from __future__ import annotations

import numpy as np

from parakeet_nb.mlprogram.milexec.core import OpContext, as_float, normalize_axis, register

F32 = np.float32


def _eps(ctx: OpContext, default: float) -> np.float32:
    return F32(ctx.attr("epsilon", default))


@register("layer_norm", params=("x", "axes", "gamma", "beta", "epsilon"), family="norm")
def op_layer_norm(ctx: OpContext) -> np.ndarray:
    """Normalize over ``axes`` (all when absent); ``gamma``/``beta`` have shape
    ``x.shape[axes]`` (in axis order)."""
    x = as_float(ctx.x("x"))
    axes = ctx.ints("axes", None)
    axes = tuple(range(x.ndim)) if axes is None else tuple(sorted(normalize_axis(a, x.ndim, ctx) for a in axes))
    mean = np.mean(x, axis=axes, keepdims=True, dtype=F32)
    d = x - mean
    var = np.mean(d * d, axis=axes, keepdims=True, dtype=F32)
    y = d / np.sqrt(var + _eps(ctx, 1e-5))
    bshape = [x.shape[i] if i in axes else 1 for i in range(x.ndim)]
    gamma, beta = ctx.opt("gamma"), ctx.opt("beta")
    if gamma is not None:
        y = y * as_float(gamma).reshape(bshape)
    if beta is not None:
        y = y + as_float(beta).reshape(bshape)
    return y


def _channel(v: np.ndarray, rank: int) -> np.ndarray:
    return as_float(v).reshape((1, -1) + (1,) * (rank - 2))


@register("batch_norm", params=("x", "mean", "variance", "gamma", "beta", "epsilon"), family="norm")
def op_batch_norm(ctx: OpContext) -> np.ndarray:
    """``gamma[c] * (x - mean[c]) / sqrt(variance[c] + epsilon) + beta[c]`` over axis 1."""
    x = as_float(ctx.x("x"))
    r = x.ndim
    y = (x - _channel(ctx.x("mean"), r)) / np.sqrt(_channel(ctx.x("variance"), r) + _eps(ctx, 1e-5))
    if ctx.has("gamma"):
        y = y * _channel(ctx.x("gamma"), r)
    if ctx.has("beta"):
        y = y + _channel(ctx.x("beta"), r)
    return y


@register("instance_norm", params=("x", "gamma", "beta", "epsilon"), family="norm")
def op_instance_norm(ctx: OpContext) -> np.ndarray:
    """Normalize each ``(n, c)`` over the spatial axes, then per-channel ``gamma``/``beta``."""
    x = as_float(ctx.x("x"))
    axes = tuple(range(2, x.ndim))
    mean = np.mean(x, axis=axes, keepdims=True, dtype=F32)
    d = x - mean
    var = np.mean(d * d, axis=axes, keepdims=True, dtype=F32)
    y = d / np.sqrt(var + _eps(ctx, 1e-5))
    if ctx.has("gamma"):
        y = y * _channel(ctx.x("gamma"), x.ndim)
    if ctx.has("beta"):
        y = y + _channel(ctx.x("beta"), x.ndim)
    return y


@register("l2_norm", params=("x", "epsilon"), family="norm")
def op_l2_norm(ctx: OpContext) -> np.ndarray:
    """``x / sqrt(sum(x**2) + epsilon)`` over the last three axes (per leading index)."""
    x = as_float(ctx.x("x"))
    if x.ndim < 3:
        raise ctx.unsupported(f"l2_norm needs rank >= 3, got {x.ndim}")
    s = np.sum(x * x, axis=(-3, -2, -1), keepdims=True)
    return x / np.sqrt(s + _eps(ctx, 1e-6))
