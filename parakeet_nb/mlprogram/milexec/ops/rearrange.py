"""Block rearrangements between channels, space and batch, and ``reverse_sequence``.

``x: [N, C, H, W]`` (rank 4) for the block ops. Each op follows its MIL definition in
coremltools (``converters/mil/mil/ops/defs/iOS15/tensor_transformation.py``;
``pixel_unshuffle``: ``defs/iOS16/tensor_transformation.py``; ``reverse_sequence``
also ``defs/iOS17/tensor_transformation.py``), with the element order the definitions
leave implicit taken from the framework op each one is converted from:

* ``depth_to_space`` / ``space_to_depth``: TensorFlow's ``DepthToSpace`` / ``SpaceToDepth``
  (coremltools' TensorFlow frontend maps them 1:1 after an NHWC -> NCHW transpose), i.e.
  "DCR" order: output ``[n, c, h*b + i, w*b + j] = x[n, (i*b + j) * C_out + c, h, w]``.
* ``pixel_shuffle`` / ``pixel_unshuffle``: PyTorch's ``PixelShuffle`` / ``PixelUnshuffle``
  ("CRD" order): ``out[n, c, h*f + i, w*f + j] = x[n, c*f*f + i*f + j, h, w]``.
* ``space_to_batch`` / ``batch_to_space``: TensorFlow's ``space_to_batch_nd`` /
  ``batch_to_space_nd`` on the spatial axes ``H, W``: output batch ``(i*b_w + j) * N + n``
  holds the block offset ``(i, j)`` of input ``n``.
* ``reverse_sequence``: TensorFlow's ``reverse_sequence`` (cited by the definition).

They move values without arithmetic, so they are exact in every numerics mode.
"""

from __future__ import annotations

import numpy as np

from parakeet_nb.mlprogram.milexec.core import OpContext, normalize_axis, register


def _rank4(ctx: OpContext) -> np.ndarray:
    x = np.asarray(ctx.x("x"))
    if x.ndim != 4:
        raise ctx.unsupported(f"input of rank {x.ndim} (the definition takes [N, C, H, W])")
    return x


def _block(ctx: OpContext, param: str) -> int:
    b = int(ctx.attr(param))
    if b < 1:
        raise ctx.undefined(f"{param} {b} (must be positive)")
    return b


def _to_space(x: np.ndarray, b: int, channel_major: bool) -> np.ndarray:
    """Channels -> ``b x b`` spatial blocks (``channel_major``: CRD, else DCR)."""
    n, c, h, w = x.shape
    co = c // (b * b)
    if channel_major:  # [n, co, i, j, h, w]
        y = x.reshape(n, co, b, b, h, w).transpose(0, 1, 4, 2, 5, 3)
    else:  # [n, i, j, co, h, w]
        y = x.reshape(n, b, b, co, h, w).transpose(0, 3, 4, 1, 5, 2)
    return y.reshape(n, co, h * b, w * b)


def _to_depth(x: np.ndarray, b: int, channel_major: bool) -> np.ndarray:
    """``b x b`` spatial blocks -> channels; the inverse of :func:`_to_space`."""
    n, c, h, w = x.shape
    y = x.reshape(n, c, h // b, b, w // b, b)  # [n, c, ho, i, wo, j]
    y = y.transpose(0, 1, 3, 5, 2, 4) if channel_major else y.transpose(0, 3, 5, 1, 2, 4)
    return y.reshape(n, c * b * b, h // b, w // b)


def _check_channels(ctx: OpContext, x: np.ndarray, b: int) -> None:
    if x.shape[1] % (b * b):
        raise ctx.undefined(f"{x.shape[1]} channels are not divisible by {b}^2")


def _check_spatial(ctx: OpContext, x: np.ndarray, b: int) -> None:
    if x.shape[2] % b or x.shape[3] % b:
        raise ctx.undefined(f"spatial size {x.shape[2:]} is not divisible by {b}")


@register("depth_to_space", params=("x", "block_size"), family="shape")
def op_depth_to_space(ctx: OpContext) -> np.ndarray:
    """``[N, C, H, W] -> [N, C/b^2, H*b, W*b]`` in TensorFlow's (DCR) order."""
    x, b = _rank4(ctx), _block(ctx, "block_size")
    _check_channels(ctx, x, b)
    return _to_space(x, b, channel_major=False)


@register("space_to_depth", params=("x", "block_size"), family="shape")
def op_space_to_depth(ctx: OpContext) -> np.ndarray:
    """``[N, C, H, W] -> [N, C*b^2, H/b, W/b]`` in TensorFlow's (DCR) order."""
    x, b = _rank4(ctx), _block(ctx, "block_size")
    _check_spatial(ctx, x, b)
    return _to_depth(x, b, channel_major=False)


@register("pixel_shuffle", params=("x", "upscale_factor"), family="shape")
def op_pixel_shuffle(ctx: OpContext) -> np.ndarray:
    """``[N, C*f^2, H, W] -> [N, C, H*f, W*f]`` as ``torch.nn.PixelShuffle``."""
    x, f = _rank4(ctx), _block(ctx, "upscale_factor")
    _check_channels(ctx, x, f)
    return _to_space(x, f, channel_major=True)


@register("pixel_unshuffle", params=("x", "downscale_factor"), family="shape")
def op_pixel_unshuffle(ctx: OpContext) -> np.ndarray:
    """``[N, C, H, W] -> [N, C*f^2, H/f, W/f]`` as ``torch.nn.PixelUnshuffle``."""
    x, f = _rank4(ctx), _block(ctx, "downscale_factor")
    _check_spatial(ctx, x, f)
    return _to_depth(x, f, channel_major=True)


def _block_shape(ctx: OpContext) -> tuple[int, int]:
    shape = ctx.ints("block_shape")
    if len(shape) != 2 or min(shape) < 1:
        raise ctx.unsupported(f"block_shape {list(shape)} (the definition takes two positive sizes)")
    return shape


def _pairs(ctx: OpContext, param: str) -> list[tuple[int, int]]:
    v = ctx.ints(param)
    if len(v) != 4 or min(v) < 0:
        raise ctx.unsupported(f"{param} {list(v)} (expected [[top, bottom], [left, right]], non-negative)")
    return [(v[0], v[1]), (v[2], v[3])]


@register("space_to_batch", params=("x", "block_shape", "paddings"), family="shape")
def op_space_to_batch(ctx: OpContext) -> np.ndarray:
    """Zero-pad ``H, W`` by ``paddings``, then move each ``(i, j)`` offset of the
    ``block_shape`` grid into the batch: ``[N, C, H', W'] -> [N*bh*bw, C, H'/bh, W'/bw]``."""
    x = _rank4(ctx)
    bh, bw = _block_shape(ctx)
    x = np.pad(x, [(0, 0), (0, 0)] + _pairs(ctx, "paddings"))
    n, c, h, w = x.shape
    if h % bh or w % bw:
        raise ctx.undefined(f"padded size {(h, w)} is not divisible by block_shape {(bh, bw)}")
    y = x.reshape(n, c, h // bh, bh, w // bw, bw).transpose(3, 5, 0, 1, 2, 4)
    return y.reshape(bh * bw * n, c, h // bh, w // bw)


@register("batch_to_space", params=("x", "block_shape", "crops"), family="shape")
def op_batch_to_space(ctx: OpContext) -> np.ndarray:
    """The inverse of ``space_to_batch``: ``[N*bh*bw, C, H, W] -> [N, C, H*bh, W*bw]``,
    then ``crops`` removed from the start and end of ``H, W``."""
    x = _rank4(ctx)
    bh, bw = _block_shape(ctx)
    (top, bottom), (left, right) = _pairs(ctx, "crops")
    nb, c, h, w = x.shape
    if nb % (bh * bw):
        raise ctx.undefined(f"batch {nb} is not divisible by {bh} x {bw}")
    n = nb // (bh * bw)
    y = x.reshape(bh, bw, n, c, h, w).transpose(2, 3, 4, 0, 5, 1).reshape(n, c, h * bh, w * bw)
    if top + bottom > h * bh or left + right > w * bw:
        raise ctx.undefined(f"crops {(top, bottom, left, right)} exceed the size {(h * bh, w * bw)}")
    return y[:, :, top : h * bh - bottom, left : w * bw - right]


@register("reverse_sequence", params=("x", "lengths", "seq_axis", "batch_axis"), family="shape")
def op_reverse_sequence(ctx: OpContext) -> np.ndarray:
    """For each ``b`` along ``batch_axis``, the first ``lengths[b]`` elements along
    ``seq_axis`` reversed, the rest unchanged (``tf.reverse_sequence``)."""
    x = np.asarray(ctx.x("x"))
    seq = normalize_axis(int(ctx.attr("seq_axis", 0)), x.ndim, ctx, "seq_axis")
    batch = normalize_axis(int(ctx.attr("batch_axis", 0)), x.ndim, ctx, "batch_axis")
    if seq == batch:
        raise ctx.unsupported("seq_axis equals batch_axis")
    lengths = np.asarray(ctx.x("lengths")).astype(np.int64).reshape(-1)
    if lengths.shape[0] != x.shape[batch]:
        raise ctx.undefined(f"{lengths.shape[0]} lengths for a batch axis of size {x.shape[batch]}")
    if lengths.size and (lengths.min() < 0 or lengths.max() > x.shape[seq]):
        raise ctx.undefined(f"lengths outside [0, {x.shape[seq]}]")
    out = np.array(x, copy=True)
    for b, length in enumerate(lengths):
        src = [slice(None)] * x.ndim
        src[batch] = b
        src[seq] = slice(None, int(length))
        out[tuple(src)] = np.flip(x[tuple(src)], axis=seq - (batch < seq))
    return out
