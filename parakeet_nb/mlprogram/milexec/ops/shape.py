"""Shape and layout ops: reshape, transpose, (un)squeeze, slicing, concat/stack/split,
tile, pad, reverse, and the small tensor builders (``shape``, ``fill``, ``range_1d``...).

These ops move values without arithmetic, so they are exact in every numerics mode.
"""

from __future__ import annotations

import numpy as np

from parakeet_nb.mlprogram.milexec.core import OpContext, as_float, is_float, normalize_axis, register


@register("identity", params=("x",), family="shape")
def op_identity(ctx: OpContext) -> np.ndarray:
    return ctx.x("x")


@register("shape", params=("x",), family="shape")
def op_shape(ctx: OpContext) -> np.ndarray:
    """The shape of ``x`` as an int32 vector."""
    return np.asarray(np.shape(ctx.x("x")), dtype=np.int32)


@register("reshape", params=("x", "shape"), family="shape")
def op_reshape(ctx: OpContext) -> np.ndarray:
    """Reshape to ``shape``; ``-1`` is inferred and ``0`` copies a dimension of ``x``.

    ``0`` differs by opset: iOS15/16 copy ``x.shape[i]`` for ``shape[i] == 0`` (and need
    ``len(shape) == rank(x)``); iOS17+ align ``shape`` and ``x.shape`` on the right and use
    ``1`` where a ``0`` has no counterpart.
    """
    x = np.asarray(ctx.x("x"))
    target = [int(d) for d in np.asarray(ctx.x("shape")).reshape(-1)]
    if 0 in target:
        if ctx.opset >= 17:
            rev_x, rev_t = list(x.shape[::-1]), target[::-1]
            rev_t = [(rev_x[i] if i < len(rev_x) else 1) if d == 0 else d for i, d in enumerate(rev_t)]
            target = rev_t[::-1]
        else:
            if len(target) != x.ndim:
                raise ctx.undefined(f"reshape with 0 in {target} needs len(shape) == rank(x) before iOS17")
            target = [x.shape[i] if d == 0 else d for i, d in enumerate(target)]
    if target.count(-1) > 1 or any(d < -1 for d in target):
        raise ctx.undefined(f"reshape target {target}")
    if -1 in target:
        known = int(np.prod([d for d in target if d != -1]))
        if known == 0 or x.size % known:
            raise ctx.undefined(f"cannot infer -1 in {target} for {x.size} elements")
        target[target.index(-1)] = x.size // known
    if int(np.prod(target)) != x.size:
        raise ctx.undefined(f"reshape of {x.shape} ({x.size} elements) to {target}")
    return x.reshape(target)


@register("transpose", params=("x", "perm"), family="shape")
def op_transpose(ctx: OpContext) -> np.ndarray:
    x = np.asarray(ctx.x("x"))
    perm = [normalize_axis(p, x.ndim, ctx, "perm entry") for p in ctx.ints("perm")]
    if sorted(perm) != list(range(x.ndim)):
        raise ctx.unsupported(f"perm {perm} is not a permutation of rank {x.ndim}")
    return np.transpose(x, perm)


@register("expand_dims", params=("x", "axes"), family="shape")
def op_expand_dims(ctx: OpContext) -> np.ndarray:
    """Insert size-1 axes; each axis is in ``[-out_rank, out_rank)`` of the output."""
    x = np.asarray(ctx.x("x"))
    axes = ctx.ints("axes")
    out_rank = x.ndim + len(axes)
    norm = sorted(normalize_axis(a, out_rank, ctx, "axes entry") for a in axes)
    if len(set(norm)) != len(norm):
        raise ctx.unsupported(f"repeated axes {axes}")
    shape = list(x.shape)
    for a in norm:
        shape.insert(a, 1)
    return x.reshape(shape)


@register("squeeze", params=("x", "axes"), family="shape")
def op_squeeze(ctx: OpContext) -> np.ndarray:
    """Remove size-1 axes: all of them, or those listed in ``axes`` that have size 1
    (listed axes of other sizes are kept, as in PyTorch)."""
    x = np.asarray(ctx.x("x"))
    axes = ctx.ints("axes", None)
    if axes is None:
        drop = {i for i, d in enumerate(x.shape) if d == 1}
    else:
        drop = {normalize_axis(a, x.ndim, ctx, "axes entry") for a in axes}
        drop = {i for i in drop if x.shape[i] == 1}
    return x.reshape([d for i, d in enumerate(x.shape) if i not in drop])


@register(
    "slice_by_index",
    params=("x", "begin", "end", "stride", "begin_mask", "end_mask", "squeeze_mask"),
    family="shape",
)
def op_slice_by_index(ctx: OpContext) -> np.ndarray:
    """numpy slicing ``x[begin[i]:end[i]:stride[i], ...]``.

    ``begin_mask[i]``/``end_mask[i]`` ignore ``begin[i]``/``end[i]`` (the slice runs from the
    start / to the end in the stride's direction). ``squeeze_mask[i]`` indexes the single
    element ``begin[i]`` (negative counts from the end) and drops the axis. Out-of-range
    ``begin``/``end`` clamp as in Python, so a slice may be empty.
    """
    x = np.asarray(ctx.x("x"))
    slices, squeeze_axes = _slices(ctx, x.shape)
    out = x[slices]
    if squeeze_axes:
        out = out.reshape([d for i, d in enumerate(out.shape) if i not in squeeze_axes])
    return out


def _slices(ctx: OpContext, shape: tuple[int, ...]) -> tuple[tuple[slice, ...], list[int]]:
    """The numpy index of ``slice_by_index``/``slice_update`` and the axes ``squeeze_mask`` drops."""
    rank = len(shape)
    begin = list(ctx.ints("begin"))
    end = list(ctx.ints("end"))
    stride = list(ctx.ints("stride", [1] * rank))
    bmask = ctx.bools("begin_mask", rank)
    emask = ctx.bools("end_mask", rank)
    smask = ctx.bools("squeeze_mask", rank)
    if not len(begin) == len(end) == len(stride) == len(bmask) == len(emask) == len(smask) == rank:
        raise ctx.unsupported(f"begin/end/stride/masks must all have length rank(x) = {rank}")
    slices: list[slice] = []
    squeeze_axes: list[int] = []
    for i in range(rank):
        if smask[i]:
            b = 0 if bmask[i] else begin[i]
            if b < 0:
                b += shape[i]
            if not 0 <= b < shape[i]:
                raise ctx.undefined(f"squeeze index {begin[i]} out of range for axis {i} of size {shape[i]}")
            slices.append(slice(b, b + 1))
            squeeze_axes.append(i)
            continue
        if stride[i] == 0:
            raise ctx.undefined(f"stride 0 on axis {i}")
        slices.append(slice(None if bmask[i] else begin[i], None if emask[i] else end[i], stride[i]))
    return tuple(slices), squeeze_axes


@register(
    "slice_update",
    params=("x", "update", "begin", "end", "stride", "begin_mask", "end_mask", "squeeze_mask"),
    family="shape",
)
def op_slice_update(ctx: OpContext) -> np.ndarray:
    """``x`` with the slice ``slice_by_index`` would read replaced by ``update`` (iOS18;
    ``update`` has the slice's shape, squeezed axes dropped)."""
    out = np.array(ctx.x("x"), copy=True)
    slices, _ = _slices(ctx, out.shape)
    update = np.asarray(ctx.x("update"))
    view = out[slices]
    if update.size != view.size:
        raise ctx.undefined(f"update of shape {list(update.shape)} for a slice of shape {list(view.shape)}")
    out[slices] = update.reshape(view.shape)
    return out


@register("reshape_like", params=("x", "ref_tensors", "begins", "ends", "end_masks"), family="shape")
def op_reshape_like(ctx: OpContext) -> np.ndarray:
    """Reshape ``x`` to the concatenation of ``ref_tensors[i].shape[begins[i]:ends[i]]``
    (to the end where ``end_masks[i]``), iOS16."""
    refs = ctx.values("ref_tensors")
    begins, ends, masks = (ctx.values(p) for p in ("begins", "ends", "end_masks"))
    shape: list[int] = []
    for ref, b, e, m in zip(refs, begins, ends, masks):
        dims = np.shape(ref)
        shape += dims[int(b):] if bool(m) else dims[int(b):int(e)]
    x = np.asarray(ctx.x("x"))
    if int(np.prod(shape)) != x.size:
        raise ctx.undefined(f"reshape_like of {x.size} elements to shape {shape}")
    return x.reshape(shape)


@register("slice_by_size", params=("x", "begin", "size"), family="shape")
def op_slice_by_size(ctx: OpContext) -> np.ndarray:
    """``x[begin[i] : begin[i] + size[i]]`` per axis; ``size[i] == -1`` takes the rest.

    A negative ``begin`` is refused: the docs do not define it, and coremltools' own type
    inference (``size = D - begin``) and value inference (``begin + D``) disagree on it.
    """
    x = np.asarray(ctx.x("x"))
    begin, size = ctx.ints("begin"), ctx.ints("size")
    if not len(begin) == len(size) == x.ndim:
        raise ctx.unsupported("begin and size must have length rank(x)")
    slices = []
    for i, (b, s) in enumerate(zip(begin, size)):
        if b < 0:
            raise ctx.undefined(f"negative begin {b} on axis {i} (not defined for slice_by_size)")
        stop = x.shape[i] if s == -1 else b + s
        if s < -1 or not 0 <= b <= stop <= x.shape[i]:
            raise ctx.undefined(f"slice [{b}, {stop}) out of range for axis {i} of size {x.shape[i]}")
        slices.append(slice(b, stop))
    return x[tuple(slices)]


@register("concat", params=("values", "axis", "interleave"), family="shape")
def op_concat(ctx: OpContext) -> np.ndarray:
    """Concatenate along ``axis``; with ``interleave`` the inputs (of equal shapes) alternate
    slice by slice (``out[0::2] = a``, ``out[1::2] = b``). Scalars concatenate to a vector."""
    vals = [np.asarray(v) for v in ctx.values("values")]
    if len({v.dtype for v in vals}) > 1:
        if any(is_float(v) for v in vals):
            vals = [as_float(v) for v in vals]
        else:
            raise ctx.unsupported(f"concat of mixed dtypes {[str(v.dtype) for v in vals]}")
    rank = vals[0].ndim
    if rank == 0:
        return np.stack(vals)
    axis = normalize_axis(int(ctx.attr("axis")), rank, ctx)
    if ctx.attr("interleave", False):
        if len({v.shape for v in vals}) > 1:
            raise ctx.unsupported("interleave needs inputs of one shape")
        stacked = np.stack(vals, axis=axis + 1)
        shape = list(vals[0].shape)
        shape[axis] *= len(vals)
        return stacked.reshape(shape)
    return np.concatenate(vals, axis=axis)


@register("stack", params=("values", "axis"), family="shape")
def op_stack(ctx: OpContext) -> np.ndarray:
    """Stack equal-shape tensors along a new axis in ``[-(rank+1), rank]``."""
    vals = [np.asarray(v) for v in ctx.values("values")]
    axis = normalize_axis(int(ctx.attr("axis")), vals[0].ndim + 1, ctx)
    return np.stack(vals, axis=axis)


@register("split", params=("x", "num_splits", "split_sizes", "axis"), family="shape")
def op_split(ctx: OpContext) -> tuple[np.ndarray, ...]:
    """Split along ``axis`` by ``split_sizes`` or into ``num_splits`` equal parts."""
    x = np.asarray(ctx.x("x"))
    axis = normalize_axis(int(ctx.attr("axis")), x.ndim, ctx)
    sizes = ctx.ints("split_sizes", None)
    if sizes is None:
        n = int(ctx.attr("num_splits"))
        if n <= 0 or x.shape[axis] % n:
            raise ctx.undefined(f"num_splits {n} does not divide axis of size {x.shape[axis]}")
        sizes = (x.shape[axis] // n,) * n
    if sum(sizes) != x.shape[axis] or any(s < 0 for s in sizes):
        raise ctx.undefined(f"split_sizes {sizes} do not sum to {x.shape[axis]}")
    return tuple(np.split(x, np.cumsum(sizes)[:-1], axis=axis))


@register("tile", params=("x", "reps"), family="shape")
def op_tile(ctx: OpContext) -> np.ndarray:
    x = np.asarray(ctx.x("x"))
    reps = ctx.ints("reps")
    if len(reps) != x.ndim or any(r <= 0 for r in reps):
        raise ctx.undefined(f"reps {reps} for rank {x.ndim}")
    return np.tile(x, reps)


@register("pad", params=("x", "pad", "mode", "constant_val"), family="shape")
def op_pad(ctx: OpContext) -> np.ndarray:
    """Pad the last ``len(pad) // 2`` axes: ``pad[2k], pad[2k+1]`` before/after the k-th of
    them. Modes: ``constant`` (``constant_val``, default 0), ``reflect`` (mirror without the
    edge, at most ``D - 1``), ``replicate`` (repeat the edge, at most ``D``)."""
    x = np.asarray(ctx.x("x"))
    pad = ctx.ints("pad")
    mode = ctx.attr("mode", "constant")
    if len(pad) % 2 or len(pad) // 2 > x.ndim or any(p < 0 for p in pad):
        raise ctx.undefined(f"pad {pad} for rank {x.ndim}")
    n = len(pad) // 2
    widths = [(0, 0)] * (x.ndim - n) + [(pad[2 * k], pad[2 * k + 1]) for k in range(n)]
    if mode == "constant":
        value = ctx.attr("constant_val", 0.0)
        return np.pad(x, widths, mode="constant", constant_values=np.asarray(value, dtype=x.dtype))
    if mode == "reflect":
        for d, (lo, hi) in zip(x.shape, widths):
            if max(lo, hi) > d - 1 and (lo or hi):
                raise ctx.undefined(f"reflect pad {lo, hi} exceeds axis size - 1 = {d - 1}")
        return np.pad(x, widths, mode="reflect")
    if mode == "replicate":
        for d, (lo, hi) in zip(x.shape, widths):
            if max(lo, hi) > d and (lo or hi):
                raise ctx.undefined(f"replicate pad {lo, hi} exceeds axis size {d}")
        return np.pad(x, widths, mode="edge")
    raise ctx.unsupported(f"pad mode {mode!r}")


@register("reverse", params=("x", "axes"), family="shape")
def op_reverse(ctx: OpContext) -> np.ndarray:
    x = np.asarray(ctx.x("x"))
    axes = ctx.ints("axes", None)
    axes = tuple(range(x.ndim)) if axes is None else tuple(normalize_axis(a, x.ndim, ctx) for a in axes)
    return np.flip(x, axis=axes)


@register("flatten2d", params=("x", "axis"), family="shape")
def op_flatten2d(ctx: OpContext) -> np.ndarray:
    """``[prod(x.shape[:axis]), prod(x.shape[axis:])]``; ``axis`` may equal the rank."""
    x = np.asarray(ctx.x("x"))
    axis = int(ctx.attr("axis", 1))
    if axis < 0:
        axis += x.ndim
    if not 0 <= axis <= x.ndim:
        raise ctx.unsupported(f"axis {axis} for rank {x.ndim}")
    return x.reshape(int(np.prod(x.shape[:axis])), int(np.prod(x.shape[axis:])))


@register("sliding_windows", params=("x", "axis", "size", "stride"), family="shape")
def op_sliding_windows(ctx: OpContext) -> np.ndarray:
    """Windows of ``size`` every ``stride`` along ``axis``; the window axis follows it."""
    x = np.asarray(ctx.x("x"))
    axis = normalize_axis(int(ctx.attr("axis")), x.ndim, ctx)
    size, stride = int(ctx.attr("size")), int(ctx.attr("stride", 1))
    if size <= 0 or stride <= 0 or size > x.shape[axis]:
        raise ctx.undefined(f"sliding_windows size {size} stride {stride} on axis of {x.shape[axis]}")
    w = np.lib.stride_tricks.sliding_window_view(x, size, axis=axis)
    idx = [slice(None)] * w.ndim
    idx[axis] = slice(None, None, stride)
    return np.moveaxis(w[tuple(idx)], -1, axis + 1).copy()


@register("fill", params=("shape", "value"), family="shape")
def op_fill(ctx: OpContext) -> np.ndarray:
    shape = ctx.ints("shape")
    value = ctx.attr("value", 0.0)
    return np.full(shape, value, dtype=ctx.out_compute_dtype())


@register("fill_like", params=("ref_tensor", "value"), family="shape")
def op_fill_like(ctx: OpContext) -> np.ndarray:
    shape = np.shape(ctx.x("ref_tensor"))
    value = ctx.attr("value", 0.0)
    return np.full(shape, value, dtype=ctx.out_compute_dtype())


@register("range_1d", params=("start", "end", "step"), family="shape")
def op_range_1d(ctx: OpContext) -> np.ndarray:
    """``start, start + step, ...`` up to ``end`` (exclusive): ``ceil((end - start) / step)``
    values, each ``start + i * step`` computed exactly and then rounded."""
    start, end, step = ctx.attr("start"), ctx.attr("end"), ctx.attr("step")
    if step == 0:
        raise ctx.undefined("range_1d with step 0")
    if not all(np.isfinite(v) for v in (start, end, step)):
        raise ctx.undefined(f"range_1d with a non-finite bound (start {start}, end {end}, step {step}): "
                            "the length is not defined (a float16 cast overflowed?)")
    n = max(0, int(np.ceil((end - start) / step)))
    values = start + np.arange(n, dtype=np.float64 if isinstance(step, float) else np.int64) * step
    return values.astype(ctx.out_compute_dtype())


@register("band_part", params=("x", "lower", "upper"), family="shape")
def op_band_part(ctx: OpContext) -> np.ndarray:
    """Keep ``x[..., m, n]`` where ``(lower < 0 or m - n <= lower) and (upper < 0 or n - m <= upper)``."""
    x = np.asarray(ctx.x("x"))
    lower, upper = int(ctx.attr("lower", -1)), int(ctx.attr("upper", -1))
    m, n = x.shape[-2:]
    d = np.arange(m)[:, None] - np.arange(n)[None, :]
    keep = ((lower < 0) | (d <= lower)) & ((upper < 0) | (-d <= upper))
    return np.where(keep, x, np.zeros((), dtype=x.dtype))


@register("cumsum", params=("x", "axis", "exclusive", "reverse"), family="shape")
def op_cumsum(ctx: OpContext) -> np.ndarray:
    """Cumulative sum along ``axis`` (default 0); ``exclusive`` starts from 0 (the output
    keeps the input's shape), ``reverse`` sums from the end."""
    x = np.asarray(ctx.x("x"))
    if is_float(x):
        x = as_float(x)
    axis = normalize_axis(int(ctx.attr("axis", 0)), x.ndim, ctx)
    rev = bool(ctx.attr("reverse", False))
    if rev:
        x = np.flip(x, axis=axis)
    out = np.cumsum(x, axis=axis, dtype=x.dtype)
    if ctx.attr("exclusive", False) and x.shape[axis] > 0:
        # shift by one: out[0] = 0, out[i] = x[0] + ... + x[i-1]
        zero_shape = list(x.shape)
        zero_shape[axis] = 1
        head = [slice(None)] * x.ndim
        head[axis] = slice(0, x.shape[axis] - 1)
        out = np.concatenate([np.zeros(zero_shape, dtype=x.dtype), out[tuple(head)]], axis=axis)
    if rev:
        out = np.flip(out, axis=axis)
    return out
