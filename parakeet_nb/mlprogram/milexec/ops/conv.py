"""Convolution, transposed convolution and pooling over 1 to 3 spatial axes (``x: [N, C, *D]``).

Definitions: coremltools ``converters/mil/mil/ops/defs/iOS15/conv.py`` (``conv``,
``conv_transpose``; iOS17 revisions in ``defs/iOS17/conv.py``) and ``defs/iOS15/pool.py``.

Padding (``pad_type``), shared by ``conv`` and the pools:

* ``valid``: none. ``custom``: ``pad[2i], pad[2i+1]`` before/after spatial axis ``i``.
* ``same``: total ``max(0, (ceil(D/s) - 1) * s + k_eff - D)`` per axis with
  ``k_eff = (k - 1) * dilation + 1``, so the output has ``ceil(D / s)`` positions; an odd
  total puts the extra element *after* (bottom/right heavy), as TensorFlow, PyTorch's
  ``padding="same"`` and coremltools' NeuralNetwork backend mapping
  (``BOTTOM_RIGHT_HEAVY``) do. (The ``conv`` docstring's stride-free formula for even
  kernels reads the other way; it is not what the converters assume.)
* ``same_lower``: the same total with the extra element *before*.

Output size per axis: ``floor((D + pad_lo + pad_hi - k_eff) / s) + 1``. ``ceil_mode`` pools
are refused. Sums accumulate in float32 (numpy/BLAS order, which is not the ANE's), or in
float64 with ``accumulate="fp64"``.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from parakeet_nb.mlprogram.milexec.core import OpContext, as_float, register

F32 = np.float32


def _pads(
    ctx: OpContext,
    pad_type: str,
    spatial: tuple[int, ...],
    k_eff: tuple[int, ...],
    strides: tuple[int, ...],
) -> list[tuple[int, int]]:
    n = len(spatial)
    if pad_type == "valid":
        return [(0, 0)] * n
    if pad_type == "custom":
        pad = ctx.ints("pad", [0] * 2 * n)
        if len(pad) != 2 * n or any(p < 0 for p in pad):
            raise ctx.undefined(f"custom pad {pad} for {n} spatial axes")
        return [(pad[2 * i], pad[2 * i + 1]) for i in range(n)]
    if pad_type in ("same", "same_lower"):
        out = []
        for d, k, s in zip(spatial, k_eff, strides):
            total = max(0, (math.ceil(d / s) - 1) * s + k - d)
            small, big = total // 2, total - total // 2
            out.append((small, big) if pad_type == "same" else (big, small))
        return out
    raise ctx.unsupported(f"pad_type {pad_type!r}")


def _geometry(ctx: OpContext, x: np.ndarray, kernel: tuple[int, ...], dil: tuple[int, ...]):
    """Padding, strides and output size shared by conv and pools."""
    n = x.ndim - 2
    if not 1 <= n <= 3 or len(kernel) != n:
        raise ctx.unsupported(f"input rank {x.ndim} with a {len(kernel)}-D kernel")
    strides = ctx.ints("strides", [1] * n)
    if len(strides) != n or any(s <= 0 for s in strides):
        raise ctx.unsupported(f"strides {strides}")
    k_eff = tuple((k - 1) * d + 1 for k, d in zip(kernel, dil))
    pads = _pads(ctx, str(ctx.attr("pad_type", "valid")).lower(), x.shape[2:], k_eff, strides)
    out = tuple(
        (d + lo + hi - k) // s + 1 for d, (lo, hi), k, s in zip(x.shape[2:], pads, k_eff, strides)
    )
    if any(o <= 0 for o in out):
        raise ctx.undefined(f"empty output {out} for input {x.shape[2:]}, kernel {k_eff}")
    return strides, pads, out


def _tap(xp: np.ndarray, offset: tuple[int, ...], strides, out) -> np.ndarray:
    """``xp[:, :, o0 + s0 * i0, o1 + s1 * i1, ...]`` for every output position ``i``."""
    idx = (slice(None), slice(None)) + tuple(
        slice(o, o + s * (m - 1) + 1, s) for o, s, m in zip(offset, strides, out)
    )
    return xp[idx]


def _windows(xp: np.ndarray, kernel, dil, strides, out) -> np.ndarray:
    """A strided view ``[N, C, *out, *kernel]`` of every receptive field (no copy)."""
    n = len(kernel)
    k_eff = tuple((k - 1) * d + 1 for k, d in zip(kernel, dil))
    w = np.lib.stride_tricks.sliding_window_view(xp, k_eff, axis=tuple(range(2, 2 + n)))
    idx = (slice(None), slice(None))
    idx += tuple(slice(None, s * (m - 1) + 1, s) for s, m in zip(strides, out))
    idx += tuple(slice(None, None, d) for d in dil)
    return w[idx]


@register(
    "conv",
    params=("x", "weight", "bias", "strides", "pad_type", "pad", "dilations", "groups"),
    family="conv",
)
def op_conv(ctx: OpContext) -> np.ndarray:
    """Grouped, dilated, strided cross-correlation plus ``bias`` (PyTorch's ``convNd``).

    ``weight: [C_out, C_in / groups, *K]``; channel ``o`` of the output reads the input
    channels of group ``o // (C_out / groups)``.
    """
    x = ctx.acc(ctx.x("x"))
    w = ctx.acc(ctx.x("weight"))
    n = x.ndim - 2
    kernel = w.shape[2:]
    dil = ctx.ints("dilations", [1] * n)
    groups = int(ctx.attr("groups", 1))
    c_in, c_out = x.shape[1], w.shape[0]
    if len(dil) != n or any(d <= 0 for d in dil):
        raise ctx.unsupported(f"dilations {dil}")
    if groups <= 0 or c_in % groups or c_out % groups or w.shape[1] != c_in // groups:
        raise ctx.unsupported(f"groups {groups} with C_in {c_in}, weight {w.shape}")
    strides, pads, out = _geometry(ctx, x, kernel, dil)
    xp = np.pad(x, [(0, 0), (0, 0)] + pads) if any(lo or hi for lo, hi in pads) else x
    batch = x.shape[0]

    if w.shape[1] == 1 and groups == c_in and groups > 1:  # depthwise, multiplier c_out / c_in
        mult = c_out // c_in
        y = np.zeros((batch, c_out) + out, dtype=ctx.acc_dtype)
        for k_idx in itertools.product(*(range(k) for k in kernel)):
            offset = tuple(i * d for i, d in zip(k_idx, dil))
            tap = _tap(xp, offset, strides, out)
            if mult > 1:
                tap = np.repeat(tap, mult, axis=1)
            y += tap * w[(slice(None), 0) + k_idx].reshape((1, c_out) + (1,) * n)
    else:  # im2col per group: W_g [C_out/g, C_in/g * K] @ cols [C_in/g * K, prod(out)]
        gi, go = c_in // groups, c_out // groups
        win = _windows(xp, kernel, dil, strides, out)  # [N, C_in, *out, *K] (a view)
        # -> [N, C_in, *K, *out]: each column of the im2col matrix is one output position
        cols_all = win.transpose((0, 1) + tuple(range(2 + n, 2 + 2 * n)) + tuple(range(2, 2 + n)))
        y = np.empty((batch, c_out, int(np.prod(out))), dtype=ctx.acc_dtype)
        for g in range(groups):
            wg = w[g * go : (g + 1) * go].reshape(go, -1)
            for b in range(batch):
                cols = cols_all[b, g * gi : (g + 1) * gi].reshape(wg.shape[1], -1)
                y[b, g * go : (g + 1) * go] = wg @ cols
        y = y.reshape((batch, c_out) + out)

    bias = ctx.opt("bias")
    if bias is not None:
        y = y + ctx.acc(bias).reshape((1, c_out) + (1,) * n)
    return np.ascontiguousarray(y, dtype=F32)


POOL = ("x", "kernel_sizes", "strides", "pad_type", "pad", "ceil_mode")


def _pool_setup(ctx: OpContext):
    x = as_float(ctx.x("x"))
    if ctx.attr("ceil_mode", False):
        raise ctx.unsupported("ceil_mode=True pooling is not implemented")
    kernel = ctx.ints("kernel_sizes")
    dil = (1,) * len(kernel)
    strides, pads, out = _geometry(ctx, x, kernel, dil)
    return x, kernel, dil, strides, pads, out


@register("max_pool", params=POOL, family="conv")
def op_max_pool(ctx: OpContext) -> np.ndarray:
    """Maximum over each window; padding never wins (it is ``-inf``)."""
    x, kernel, dil, strides, pads, out = _pool_setup(ctx)
    xp = np.pad(x, [(0, 0), (0, 0)] + pads, constant_values=-np.inf)
    win = _windows(xp, kernel, dil, strides, out)
    return win.max(axis=tuple(range(-len(kernel), 0)))


@register("avg_pool", params=POOL + ("exclude_padding_from_average",), family="conv")
def op_avg_pool(ctx: OpContext) -> np.ndarray:
    """Mean over each window; padded zeros count unless ``exclude_padding_from_average``."""
    x, kernel, dil, strides, pads, out = _pool_setup(ctx)
    axes = tuple(range(-len(kernel), 0))
    xp = np.pad(x, [(0, 0), (0, 0)] + pads)
    total = _windows(xp, kernel, dil, strides, out).sum(axis=axes)
    if ctx.attr("exclude_padding_from_average", False):
        ones = np.pad(np.ones((1, 1) + x.shape[2:], dtype=F32), [(0, 0), (0, 0)] + pads)
        count = _windows(ones, kernel, dil, strides, out).sum(axis=axes)
    else:
        count = F32(np.prod(kernel))
    return total / count


@register("l2_pool", params=POOL, family="conv")
def op_l2_pool(ctx: OpContext) -> np.ndarray:
    """``sqrt(sum(x**2))`` over each window (padding contributes zeros)."""
    x, kernel, dil, strides, pads, out = _pool_setup(ctx)
    xp = np.pad(x, [(0, 0), (0, 0)] + pads)
    win = _windows(xp, kernel, dil, strides, out)
    return np.sqrt(np.sum(win * win, axis=tuple(range(-len(kernel), 0))))


@register(
    "conv_transpose",
    params=("x", "weight", "bias", "pad", "output_shape", "pad_type", "strides", "dilations", "groups"),
    family="conv",
)
def op_conv_transpose(ctx: OpContext) -> np.ndarray:
    """Transposed convolution (PyTorch's ``conv_transposeNd``), ``x: [N, C_in, *D]``,
    ``weight: [C_in, C_out / groups, *K]``.

    Follows ``conv_transpose`` in coremltools ``converters/mil/mil/ops/defs/iOS15/conv.py``
    (and ``defs/iOS17/conv.py``): every input position ``d`` adds ``x[:, c, d] *
    weight[c, o, k]`` to output position ``d * stride + k * dilation`` of the full size
    ``(D - 1) * stride + (K - 1) * dilation + 1``; ``custom`` padding then removes
    ``pad[2i]`` positions at the start and ``pad[2i+1]`` at the end of axis ``i``, ``valid``
    none. ``same`` (output ``D * stride``) is taken only when the positions to remove split
    evenly (the definition does not say which side gets the odd one); an ``output_shape``
    is taken only when it equals the size the padding gives.
    """
    x = ctx.acc(ctx.x("x"))
    w = ctx.acc(ctx.x("weight"))
    n = x.ndim - 2
    if not 1 <= n <= 3 or w.ndim != n + 2:
        raise ctx.unsupported(f"input rank {x.ndim} with weight {w.shape}")
    kernel = w.shape[2:]
    strides = ctx.ints("strides", [1] * n)
    dil = ctx.ints("dilations", [1] * n)
    groups = int(ctx.attr("groups", 1))
    c_in = x.shape[1]
    if groups <= 0 or c_in % groups or w.shape[0] != c_in or len(strides) != n or len(dil) != n:
        raise ctx.unsupported(f"groups {groups}, strides {strides}, dilations {dil} with x {x.shape}, weight {w.shape}")
    gi, go = c_in // groups, w.shape[1]
    full = tuple((d - 1) * s + (k - 1) * dl + 1 for d, s, k, dl in zip(x.shape[2:], strides, kernel, dil))
    pad_type = str(ctx.attr("pad_type", "valid")).lower()
    if pad_type == "valid":
        crops = [(0, 0)] * n
    elif pad_type == "custom":
        pad = ctx.ints("pad", [0] * 2 * n)
        crops = [(pad[2 * i], pad[2 * i + 1]) for i in range(n)]
    elif pad_type == "same":
        totals = [f - d * s for f, d, s in zip(full, x.shape[2:], strides)]
        if any(t < 0 or t % 2 for t in totals):
            raise ctx.unsupported(f"pad_type 'same' removing {totals} positions (an odd or negative count)")
        crops = [(t // 2, t // 2) for t in totals]
    else:
        raise ctx.unsupported(f"pad_type {pad_type!r}")
    size = tuple(f - lo - hi for f, (lo, hi) in zip(full, crops))
    if ctx.has("output_shape") and tuple(ctx.ints("output_shape"))[2:] != size:
        raise ctx.unsupported(f"output_shape {list(ctx.ints('output_shape'))} differs from the padded size {size}")
    y = np.zeros((x.shape[0], go * groups) + full, dtype=ctx.acc_dtype)
    xt = np.moveaxis(x, 1, -1)  # [N, *D, C_in]
    for k_idx in itertools.product(*(range(k) for k in kernel)):
        dst = (slice(None), slice(None)) + tuple(
            slice(k * dl, k * dl + s * (d - 1) + 1, s) for k, dl, s, d in zip(k_idx, dil, strides, x.shape[2:])
        )
        for g in range(groups):
            contrib = xt[..., g * gi : (g + 1) * gi] @ w[(slice(g * gi, (g + 1) * gi), slice(None)) + k_idx]
            y[(dst[0], slice(g * go, (g + 1) * go)) + dst[2:]] += np.moveaxis(contrib, -1, 1)
    y = y[(slice(None), slice(None)) + tuple(slice(lo, f - hi) for f, (lo, hi) in zip(full, crops))]
    bias = ctx.opt("bias")
    if bias is not None:
        y = y + ctx.acc(bias).reshape((1, -1) + (1,) * n)
    return np.ascontiguousarray(y, dtype=F32)
