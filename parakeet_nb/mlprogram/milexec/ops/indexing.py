"""Index-driven ops: ``gather``, ``gather_along_axis``, ``gather_nd``, ``one_hot``,
``topk`` and ``argsort``.

Index bounds depend on the opset. iOS15/16 ``gather`` accepts ``-D <= i < D`` (negative
counts from the end), and so does iOS15/16 ``gather_along_axis``: its definition's
``value_inference`` is ``np.take_along_axis`` (coremltools
``converters/mil/mil/ops/defs/iOS15/scatter_gather.py``) and coremltools' own op test
draws its indices from ``[-D, D)`` for iOS15/16 (``mil/ops/tests/iOS14/test_scatter_gather.py``,
``TestGatherAlongAxis``). ``gather_nd`` never documents negative indices, so they are
refused there. From iOS17 every gather treats negative indices as out
of bound (the iOS17 ``gather`` docstring still repeats "may be negative" in its parameter
list, contradicting its own summary). Out-of-bound indices are undefined behaviour when
``validate_indices`` is false and a runtime error when it is true; either way the executor
raises :class:`~parakeet_nb.mlprogram.milexec.core.UndefinedBehaviorError` instead of returning a value.
"""

from __future__ import annotations

import numpy as np

from parakeet_nb.mlprogram.milexec.core import OpContext, normalize_axis, register


def _check_indices(ctx: OpContext, idx: np.ndarray, size: int, allow_negative: bool) -> np.ndarray:
    """Bounds-check ``idx`` against an axis of ``size`` and map negatives when allowed."""
    idx = np.asarray(idx).astype(np.int64)
    lo = -size if allow_negative else 0
    if idx.size and (idx.min() < lo or idx.max() >= size):
        bad = idx[(idx < lo) | (idx >= size)].reshape(-1)[:5].tolist()
        rule = f"[{lo}, {size})"
        raise ctx.undefined(
            f"indices {bad} out of bound {rule} (iOS{ctx.opset} {ctx.op_type}; "
            "out-of-bound indices are undefined behaviour)"
        )
    return np.where(idx < 0, idx + size, idx)


@register("gather", params=("x", "indices", "axis", "batch_dims", "validate_indices"), family="indexing")
def op_gather(ctx: OpContext) -> np.ndarray:
    """``x`` indexed by ``indices`` along ``axis``: shape ``D[:axis] + N[batch_dims:] + D[axis+1:]``."""
    x = np.asarray(ctx.x("x"))
    axis = normalize_axis(int(ctx.attr("axis", 0)), x.ndim, ctx)
    batch_dims = int(ctx.attr("batch_dims", 0))
    idx = _check_indices(ctx, ctx.x("indices"), x.shape[axis], allow_negative=ctx.opset <= 16)
    if batch_dims == 0:
        return np.take(x, idx, axis=axis)
    if not 0 < batch_dims <= min(axis, idx.ndim) or x.shape[:batch_dims] != idx.shape[:batch_dims]:
        raise ctx.unsupported(f"batch_dims {batch_dims} with x {x.shape}, indices {idx.shape}, axis {axis}")
    batch = x.shape[:batch_dims]
    xb = x.reshape((-1,) + x.shape[batch_dims:])
    ib = idx.reshape((-1,) + idx.shape[batch_dims:])
    out = np.stack([np.take(xb[i], ib[i], axis=axis - batch_dims) for i in range(xb.shape[0])])
    return out.reshape(batch + out.shape[1:])


@register("gather_along_axis", params=("x", "indices", "axis", "validate_indices"), family="indexing")
def op_gather_along_axis(ctx: OpContext) -> np.ndarray:
    """``out[..., i, ...] = x[..., indices[..., i, ...], ...]`` along ``axis`` (same rank).

    Negative indices count from the end up to iOS16 (see the module docstring); iOS17
    declares them out of bound (``defs/iOS17/scatter_gather.py``).
    """
    x = np.asarray(ctx.x("x"))
    idx = np.asarray(ctx.x("indices"))
    axis = normalize_axis(int(ctx.attr("axis", 0)), x.ndim, ctx)
    if idx.ndim != x.ndim:
        raise ctx.unsupported(f"indices rank {idx.ndim} != x rank {x.ndim}")
    idx = _check_indices(ctx, idx, x.shape[axis], allow_negative=ctx.opset <= 16)
    return np.take_along_axis(x, idx, axis=axis)


@register("gather_nd", params=("x", "indices", "batch_dims", "validate_indices"), family="indexing")
def op_gather_nd(ctx: OpContext) -> np.ndarray:
    """``out[i...] = x[indices[i..., 0], ..., indices[i..., K-1], ...]``: shape
    ``indices.shape[:-1] + x.shape[batch_dims + K:]``."""
    x = np.asarray(ctx.x("x"))
    idx = np.asarray(ctx.x("indices")).astype(np.int64)
    batch_dims = int(ctx.attr("batch_dims", 0))
    k = idx.shape[-1]
    if batch_dims + k > x.ndim:
        raise ctx.unsupported(f"indices of depth {k} with batch_dims {batch_dims} for rank {x.ndim}")
    # negative indices: allowed nowhere in the gather_nd docs (iOS17 calls them out of bound)
    checked = [_check_indices(ctx, idx[..., j], x.shape[batch_dims + j], allow_negative=False) for j in range(k)]
    if batch_dims == 0:
        return x[tuple(checked)]
    if x.shape[:batch_dims] != idx.shape[:batch_dims]:
        raise ctx.unsupported(f"batch shapes differ: x {x.shape}, indices {idx.shape}")
    grids = np.indices(idx.shape[:-1], sparse=True)[:batch_dims]
    return x[tuple(grids) + tuple(checked)]


@register(
    "one_hot",
    params=("indices", "one_hot_vector_size", "axis", "on_value", "off_value"),
    family="indexing",
)
def op_one_hot(ctx: OpContext) -> np.ndarray:
    """``on_value`` at ``indices`` along a new ``axis`` of size ``one_hot_vector_size``."""
    idx = np.asarray(ctx.x("indices")).astype(np.int64)
    depth = int(ctx.attr("one_hot_vector_size"))
    axis = int(ctx.attr("axis", -1))
    axis = normalize_axis(axis, idx.ndim + 1, ctx)
    if idx.size and (idx.min() < 0 or idx.max() >= depth):
        raise ctx.undefined(f"one_hot index outside [0, {depth})")
    dtype = ctx.out_compute_dtype()
    on = np.asarray(ctx.attr("on_value", 1), dtype=dtype)
    off = np.asarray(ctx.attr("off_value", 0), dtype=dtype)
    hot = np.expand_dims(idx, -1) == np.arange(depth)
    return np.moveaxis(np.where(hot, on, off), -1, axis)


def _sorted_indices(ctx: OpContext, x: np.ndarray, axis: int, ascending: bool) -> np.ndarray:
    """Stable sort order along ``axis`` (ties keep index order)."""
    if ascending:
        key = x
    else:  # negate (in a wider type for ints, so -INT_MIN does not wrap)
        key = -x if x.dtype.kind == "f" else -x.astype(np.int64)
    return np.argsort(key, axis=axis, kind="stable")


@register(
    "topk",
    params=("x", "k", "axis", "ascending", "sort", "return_indices", "output_indices_dtype"),
    family="indexing",
)
def op_topk(ctx: OpContext):
    """The ``k`` largest (or smallest, ``ascending``) values along ``axis`` and their indices.

    Ties are ordered by index; when a tie straddles the cut or orders the output an
    :class:`~parakeet_nb.mlprogram.milexec.core.AmbiguityWarning` is issued (the definition does not
    say which index wins). ``sort=False`` returns sorted output, one of the allowed orders.
    """
    x = np.asarray(ctx.x("x"))
    axis = normalize_axis(int(ctx.attr("axis", -1)), x.ndim, ctx)
    k = int(ctx.attr("k", 1))
    if k == -1 and ctx.opset >= 17:
        k = x.shape[axis]
    if not 0 <= k <= x.shape[axis]:
        raise ctx.undefined(f"k = {k} for an axis of size {x.shape[axis]}")
    order = _sorted_indices(ctx, x, axis, bool(ctx.attr("ascending", False)))
    top = np.take(order, np.arange(k), axis=axis)
    values = np.take_along_axis(x, top, axis=axis)
    head = np.take(order, np.arange(min(k + 1, x.shape[axis])), axis=axis)
    head_vals = np.take_along_axis(x, head, axis=axis)
    if head_vals.shape[axis] > 1 and np.any(np.diff(head_vals, axis=axis) == 0):
        ctx.ambiguous("topk over tied values: tied indices are returned in index order")
    if not ctx.attr("return_indices", True):
        return values
    idx_dtype = str(ctx.attr("output_indices_dtype", "int32"))
    if idx_dtype not in ("int32", "uint16"):
        raise ctx.unsupported(f"output_indices_dtype {idx_dtype!r}")
    return values, top.astype(np.int32 if idx_dtype == "int32" else np.uint16)


@register("argsort", params=("x", "axis", "ascending"), family="indexing")
def op_argsort(ctx: OpContext) -> np.ndarray:
    """Indices that sort ``x`` along ``axis``, descending unless ``ascending`` (stable)."""
    x = np.asarray(ctx.x("x"))
    axis = normalize_axis(int(ctx.attr("axis", -1)), x.ndim, ctx)
    order = _sorted_indices(ctx, x, axis, bool(ctx.attr("ascending", False)))
    sorted_vals = np.take_along_axis(x, order, axis=axis)
    if x.shape[axis] > 1 and np.any(np.diff(sorted_vals, axis=axis) == 0):
        ctx.ambiguous("argsort over tied values: tied indices are returned in index order")
    return order.astype(np.int32)


@register("non_zero", params=("x",), family="indexing")
def op_non_zero(ctx: OpContext) -> np.ndarray:
    """The indices of the non-zero elements of ``x``: ``[N, rank]`` int32, one row per element
    in row-major order, ``np.transpose(np.nonzero(x))`` (coremltools
    ``converters/mil/mil/ops/defs/iOS15/tensor_operation.py``). ``N`` is only known at run time;
    an all-zero ``x`` gives ``[0, rank]``. NaN is non-zero, ``-0.0`` is zero."""
    return np.argwhere(np.asarray(ctx.x("x"))).astype(np.int32)
