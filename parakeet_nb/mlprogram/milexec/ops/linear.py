"""Matrix products: ``linear``, ``matmul``, ``einsum`` and ``scaled_dot_product_attention``.

Float products run through numpy's ``matmul`` (BLAS): float32 accumulation by default, in an
order that is neither PyTorch's nor the ANE's, or float64 with ``accumulate="fp64"`` (the
product's exact value, rounded once to the output type). Integer products wrap like int32.
"""

from __future__ import annotations

import math

import numpy as np

from parakeet_nb.mlprogram.milexec.core import OpContext, as_float, is_float, register

F32 = np.float32


def _same_kind(ctx: OpContext, *arrays: np.ndarray) -> list[np.ndarray]:
    if any(is_float(a) for a in arrays):
        return [ctx.acc(a) for a in arrays]
    return [np.asarray(a) for a in arrays]


@register("linear", params=("x", "weight", "bias"), family="linear")
def op_linear(ctx: OpContext) -> np.ndarray:
    """``x @ weight.T + bias`` with ``weight: [D_out, D_in]``."""
    x, w = _same_kind(ctx, ctx.x("x"), ctx.x("weight"))
    if w.ndim != 2 or x.shape[-1] != w.shape[1]:
        raise ctx.unsupported(f"x {x.shape} with weight {w.shape}")
    y = np.matmul(x, w.T)
    bias = ctx.opt("bias")
    if bias is not None:
        y = y + np.asarray(bias, dtype=y.dtype)
    return y


@register("matmul", params=("x", "y", "transpose_x", "transpose_y"), family="linear")
def op_matmul(ctx: OpContext) -> np.ndarray:
    """numpy ``matmul`` (batch broadcasting, 1-D promotion) after the optional transposes
    of the last two axes (which do nothing to a 1-D operand).

    iOS17 ``matmul`` (coremltools ``converters/mil/mil/ops/defs/iOS17/linear.py``) lets a
    const operand have another dtype; the output takes the non-const operand's dtype. For
    an integer output with a float const, the const is used as integers when every value
    is one (then rounding before or after the product agree); otherwise the definition
    does not say which, and the op is refused.
    """
    x, y = ctx.x("x"), ctx.x("y")
    if ctx.out_dtype() not in ("fp16", "fp32") and (is_float(x) or is_float(y)):
        if any(is_float(v) and np.any(np.asarray(v) != np.trunc(v)) for v in (x, y)):
            raise ctx.undefined(
                "integer matmul with a non-integer float operand: whether the operand or "
                "the product is rounded to an integer is not defined"
            )
        x, y = (np.asarray(v).astype(np.int32) for v in (x, y))
    x, y = _same_kind(ctx, x, y)
    if x.ndim == 1 and y.ndim > 2:
        raise ctx.unsupported(
            "1-D x with a batched y: the docs give numpy's shape, coremltools' type inference "
            "declares another (it drops the batch axis instead of the promoted one)"
        )
    if ctx.attr("transpose_x", False) and x.ndim >= 2:
        x = np.swapaxes(x, -1, -2)
    if ctx.attr("transpose_y", False) and y.ndim >= 2:
        y = np.swapaxes(y, -1, -2)
    return np.matmul(x, y)


@register("einsum", params=("values", "equation"), family="linear")
def op_einsum(ctx: OpContext) -> np.ndarray:
    """The two equations MIL supports: ``nchw,nwhu->nchu`` and ``chw,whr->chr`` (letters may
    be renamed), with broadcasting of the ``n`` and ``h`` axes."""
    vals = [ctx.acc(v) for v in ctx.values("values")]
    eq = str(ctx.attr("equation")).replace(" ", "")
    if len(vals) != 2 or "->" not in eq:
        raise ctx.unsupported(f"einsum {eq!r} with {len(vals)} operands")
    lhs, out = eq.split("->")
    a, b = lhs.split(",")
    letters: dict[str, int] = {}
    for ch in a + b + out:
        letters.setdefault(ch, len(letters))
    pattern = ([letters[c] for c in a], [letters[c] for c in b], [letters[c] for c in out])
    if pattern == ([0, 1, 2, 3], [0, 3, 2, 4], [0, 1, 2, 4]):
        x, y = vals
        n, h = max(x.shape[0], y.shape[0]), max(x.shape[2], y.shape[2])
        x = np.broadcast_to(x, (n, x.shape[1], h, x.shape[3]))
        y = np.broadcast_to(y, (n, y.shape[1], h, y.shape[3]))
        # [n, c, h, w] x [n, w, h, u] -> [n, c, h, u]: a batched matmul over (n, h)
        r = np.matmul(x.transpose(0, 2, 1, 3), y.transpose(0, 2, 1, 3))
        return r.transpose(0, 2, 1, 3)
    if pattern == ([0, 1, 2], [2, 1, 3], [0, 1, 3]):
        x, y = vals
        h = max(x.shape[1], y.shape[1])
        x = np.broadcast_to(x, (x.shape[0], h, x.shape[2]))
        y = np.broadcast_to(y, (y.shape[0], h, y.shape[2]))
        r = np.matmul(x.transpose(1, 0, 2), y.transpose(1, 0, 2))
        return r.transpose(1, 0, 2)
    raise ctx.unsupported(f"einsum equation {eq!r} (MIL supports nchw,nwhu->nchu and chw,whr->chr)")


@register("scaled_dot_product_attention", params=("query", "key", "value", "attn_mask"), family="linear")
def op_sdpa(ctx: OpContext) -> np.ndarray:
    """``softmax(Q K^T / sqrt(E) + mask) V``; a bool mask adds ``-inf`` where it is false."""
    q, k, v = (ctx.acc(ctx.x(n)) for n in ("query", "key", "value"))
    scores = np.matmul(q, np.swapaxes(k, -1, -2)) / F32(math.sqrt(q.shape[-1]))
    mask = ctx.opt("attn_mask")
    if mask is not None:
        mask = np.asarray(mask)
        scores = scores + (np.where(mask, F32(0), F32(-np.inf)) if mask.dtype == np.bool_ else as_float(mask))
    m = np.max(scores, axis=-1, keepdims=True)
    e = np.exp(scores - m)
    return np.matmul(e / np.sum(e, axis=-1, keepdims=True), v)
