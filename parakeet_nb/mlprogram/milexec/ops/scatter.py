"""Scatter ops: ``scatter``, ``scatter_along_axis`` and ``scatter_nd``.

Definitions: coremltools ``converters/mil/mil/ops/defs/iOS15/scatter_gather.py`` and
``defs/iOS17/scatter_gather.py``. The output starts as ``data``; each update is combined
with the value at its index by ``mode``: ``update`` (replace), ``add``, ``sub``
(``data - updates``), ``mul``, ``div`` (``data / updates``), ``max``, ``min``; the default is
``add`` in every opset (``default_inputs``; the iOS15 ``scatter`` docstring says
``update``, its code says ``add``). Several updates
at one index combine one after another (``add`` sums them...).

Several ``update`` writes to one index: the definitions do not say which wins; the last one
(in row-major order of ``updates``) does here, as coremltools' own op test expects
(``mil/ops/tests/iOS14/test_scatter_gather.py``, ``TestScatterAlongAxis``: ``np.put_along_axis``
with random, repeating indices). Refused rather than guessed: integer ``div`` (rounding not defined), and index
bounds as the gathers check them (:mod:`parakeet_nb.mlprogram.milexec.ops.indexing`):
negative indices count from the end up to iOS16 for ``scatter`` and
``scatter_along_axis`` (like their gathers), never for ``scatter_nd``, and every
out-of-bound index raises :class:`~parakeet_nb.mlprogram.milexec.core.UndefinedBehaviorError`.
"""

from __future__ import annotations

import numpy as np

from parakeet_nb.mlprogram.milexec.core import OpContext, normalize_axis, register
from parakeet_nb.mlprogram.milexec.ops.indexing import _check_indices

_UFUNCS = {
    "add": np.add,
    "sub": np.subtract,
    "mul": np.multiply,
    "div": np.divide,
    "max": np.maximum,
    "min": np.minimum,
}


def _apply(ctx: OpContext, data: np.ndarray, index: tuple[np.ndarray, ...], updates: np.ndarray) -> np.ndarray:
    """``data`` with ``updates`` combined in at ``index`` (arrays broadcast to ``updates``)."""
    mode = str(ctx.attr("mode", "add")).lower()
    out = np.array(data, copy=True)
    updates = np.asarray(updates, dtype=out.dtype)
    if mode == "update":  # the last update (in row-major order of updates) wins
        full = [np.broadcast_to(i, updates.shape).reshape(-1) for i in index]
        pos = np.ravel_multi_index(full, out.shape)
        _, first_of_reversed = np.unique(pos[::-1], return_index=True)
        last = pos.size - 1 - first_of_reversed
        out.reshape(-1)[pos[last]] = updates.reshape(-1)[last]
        return out
    ufunc = _UFUNCS.get(mode)
    if ufunc is None:
        raise ctx.unsupported(f"mode {mode!r}")
    if mode == "div" and out.dtype.kind != "f":
        raise ctx.undefined("integer scatter with mode 'div' (the rounding is not defined)")
    ufunc.at(out, index, updates)
    return out


@register("scatter", params=("data", "indices", "updates", "axis", "mode", "validate_indices"), family="indexing")
def op_scatter(ctx: OpContext) -> np.ndarray:
    """``output[..., indices[i], ...] <mode>= updates[..., i, ...]`` along ``axis``;
    ``indices: [C]``, ``updates: data.shape[:axis] + [C] + data.shape[axis+1:]``."""
    data = np.asarray(ctx.x("data"))
    updates = np.asarray(ctx.x("updates"))
    axis = normalize_axis(int(ctx.attr("axis", 0)), data.ndim, ctx)
    idx = _check_indices(ctx, np.asarray(ctx.x("indices")).reshape(-1), data.shape[axis], ctx.opset <= 16)
    grid = list(np.indices(updates.shape, sparse=True))
    grid[axis] = idx.reshape((-1,) + (1,) * (data.ndim - axis - 1))
    return _apply(ctx, data, tuple(grid), updates)


@register(
    "scatter_along_axis",
    params=("data", "indices", "updates", "axis", "mode", "validate_indices"),
    family="indexing",
)
def op_scatter_along_axis(ctx: OpContext) -> np.ndarray:
    """``output[..., indices[..., i, ...], ...] <mode>= updates[..., i, ...]`` along ``axis``
    (``indices`` and ``updates`` have one shape, ``data``'s rank)."""
    data = np.asarray(ctx.x("data"))
    updates = np.asarray(ctx.x("updates"))
    axis = normalize_axis(int(ctx.attr("axis", 0)), data.ndim, ctx)
    idx = _check_indices(ctx, ctx.x("indices"), data.shape[axis], ctx.opset <= 16)
    grid = list(np.indices(updates.shape, sparse=True))
    grid[axis] = idx
    return _apply(ctx, data, tuple(grid), updates)


@register("scatter_nd", params=("data", "indices", "updates", "mode", "validate_indices"), family="indexing")
def op_scatter_nd(ctx: OpContext) -> np.ndarray:
    """``output[indices[i..., :]] <mode>= updates[i...]`` with ``indices: [*E, K]`` and
    ``updates: E + data.shape[K:]`` ."""
    data = np.asarray(ctx.x("data"))
    idx = np.asarray(ctx.x("indices")).astype(np.int64)
    updates = np.asarray(ctx.x("updates"))
    k = idx.shape[-1]
    if k > data.ndim:
        raise ctx.unsupported(f"indices of depth {k} for data of rank {data.ndim}")
    lead = idx.ndim - 1
    cols = [
        _check_indices(ctx, idx[..., j], data.shape[j], allow_negative=False).reshape(
            idx.shape[:-1] + (1,) * (data.ndim - k)
        )
        for j in range(k)
    ]
    trailing = np.indices(data.shape[k:], sparse=True) if data.ndim > k else []
    trailing = [g.reshape((1,) * lead + g.shape) for g in trailing]
    return _apply(ctx, data, tuple(cols) + tuple(trailing), updates)
