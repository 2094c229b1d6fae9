"""Normalizations: ``layer_norm``, ``batch_norm``, ``instance_norm``, ``l2_norm``,
``local_response_norm`` (definitions: coremltools ``converters/mil/mil/ops/defs/iOS15/normalization.py``
and its iOS17 revision).

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


@register("local_response_norm", params=("x", "size", "alpha", "beta", "k"), family="norm")
def op_local_response_norm(ctx: OpContext) -> np.ndarray:
    """``x / (k + alpha / size * sum_j x_j**2) ** beta`` over ``size`` neighbouring
    channels, ``x`` of rank 3 or 4.

    Follows ``local_response_norm`` in coremltools ``converters/mil/mil/ops/defs/iOS15/
    normalization.py`` (defaults ``alpha=1e-4, beta=0.75, k=1``). Two points the definition
    leaves open are taken from the values coremltools' own op test pins down
    (``mil/ops/tests/iOS14/test_normalization.py``, ``TestNormalizationLocalResponseNorm``
    smoke test, rank 3 ``[1, 3, 2]``): the channel axis is the third from the end (``C`` of
    ``[N, C, H, W]``, the first axis of a rank-3 input, as in Core ML's NeuralNetwork LRN
    layer on ``[C, H, W]``); the window is ``c - (size - 1) // 2 ... c + (size - 1) // 2``
    with zeros beyond the edges. Where an even ``size`` would make the window's placement
    matter (more than one channel) the op is refused: the definition does not place it.
    (The suite's stress test compares with ``torch.nn.LocalResponseNorm`` at ``atol=1e-2``,
    too loose to tell these choices apart.)
    """
    x = as_float(ctx.x("x"))
    size = int(ctx.attr("size"))
    if x.ndim not in (3, 4) or size < 1:
        raise ctx.unsupported(f"size {size} with input rank {x.ndim} (the definition takes rank 3 or 4)")
    if size % 2 == 0 and x.shape[-3] > 1:
        raise ctx.unsupported(f"even size {size} over {x.shape[-3]} channels (the window's placement is not defined)")
    alpha, beta, k = (F32(ctx.attr(p, d)) for p, d in (("alpha", 1e-4), ("beta", 0.75), ("k", 1.0)))
    half = (size - 1) // 2
    sq = np.pad(x * x, [(0, 0)] * (x.ndim - 3) + [(half, half), (0, 0), (0, 0)])
    window = np.lib.stride_tricks.sliding_window_view(sq, 2 * half + 1, axis=x.ndim - 3).sum(axis=-1, dtype=F32)
    return x / (k + alpha / F32(size) * window) ** beta
