"""Image resizing: ``upsample_nearest_neighbor``, ``upsample_bilinear``,
``resize_nearest_neighbor``, ``resize_bilinear``, ``resize`` (iOS17), ``crop``,
``crop_resize``, ``resample`` and ``affine``.

Definitions: coremltools ``converters/mil/mil/ops/defs/iOS15/image_resizing.py`` and its
revisions in ``defs/iOS16/image_resizing.py`` and ``defs/iOS17/image_resizing.py``; where a
definition leaves a point open, the values coremltools' own op tests expect
(``converters/mil/mil/ops/tests/iOS14 ... iOS17/test_image_resizing.py``) decide it, and each
op's docstring says which.

Sampling grids (``resize_bilinear``'s ``sampling_mode``, shared by ``upsample_bilinear``,
``resize`` and ``crop_resize``): output position ``i`` of ``N`` along an axis of ``X`` input
samples reads input position ``g[i]``, clamped to ``[0, X - 1]``:

* ``STRICT_ALIGN_CORNERS``: ``i * (X - 1) / (N - 1)``; ``0`` when ``N == 1``
  (``numpy.linspace(0, X - 1, N)``, the definition's Core ML NeuralNetwork counterpart
  ``STRICT_ALIGN_ENDPOINTS_MODE`` in ``mlmodel/format/NeuralNetwork.proto``, and TensorFlow's
  ``align_corners=True`` that the docstring names).
* ``ALIGN_CORNERS``: the same, but ``(X - 1) / 2`` when ``N == 1``.
* ``DEFAULT``: ``i * X / N`` (the docstring's ``(X - X/N) / (N - 1)`` spacing, simplified).
* ``OFFSET_CORNERS``: ``(i + 0.5) * max(1, X - 1) / N``.
* ``UNALIGN_CORNERS``: ``(i + 0.5) * X / N - 0.5`` (half-pixel centres).

Linear interpolation reads ``floor(g)`` and the next sample (the last one at the edge),
separably per axis. Grids, weights and sums are computed in float64 and rounded once to
float32; the executor rounds fp16-typed outputs itself.
"""

from __future__ import annotations

from types import EllipsisType

import numpy as np

from parakeet_nb.mlprogram.milexec.core import OpContext, register

F64 = np.float64
SAMPLING_MODES = ("STRICT_ALIGN_CORNERS", "ALIGN_CORNERS", "DEFAULT", "OFFSET_CORNERS", "UNALIGN_CORNERS")


# ---- shared helpers ------------------------------------------------------------------
def _choice(ctx: OpContext, param: str, allowed: tuple[str, ...], default: str | EllipsisType = ...) -> str:
    """A string parameter, refused unless it is one of ``allowed`` (no ``default``: required)."""
    value = ctx.attr(param, default)
    if value not in allowed:
        raise ctx.unsupported(f"{param} {value!r} (implemented: {', '.join(allowed)})")
    return value


def _spatial_input(ctx: OpContext, min_rank: int = 3) -> np.ndarray:
    x = np.asarray(ctx.x("x"))
    if x.ndim < min_rank:
        raise ctx.unsupported(f"input rank {x.ndim} (the definition needs rank >= {min_rank})")
    return x


def _grid(ctx: OpContext, n_in: int, n_out: int, mode: str) -> np.ndarray:
    """Input positions (float64) of ``n_out`` outputs over ``n_in`` samples (module docstring)."""
    if n_in == 0 and n_out > 0:
        raise ctx.undefined(f"resizing an empty axis to {n_out} samples")
    i = np.arange(n_out, dtype=F64)
    if mode == "ALIGN_CORNERS" and n_out == 1:
        g = np.full(1, (n_in - 1) / 2)
    elif mode in ("STRICT_ALIGN_CORNERS", "ALIGN_CORNERS"):
        g = i * (n_in - 1) / (n_out - 1) if n_out > 1 else np.zeros(n_out)
    elif mode == "DEFAULT":
        g = i * n_in / n_out
    elif mode == "OFFSET_CORNERS":
        g = (2 * i + 1) * max(1, n_in - 1) / (2 * n_out)
    elif mode == "UNALIGN_CORNERS":
        g = (2 * i + 1) * n_in / (2 * n_out) - 0.5
    else:
        raise ctx.unsupported(f"sampling_mode {mode!r} (implemented: {', '.join(SAMPLING_MODES)})")
    return np.clip(g, 0, max(n_in - 1, 0))


def _lerp(x: np.ndarray, axis: int, g: np.ndarray) -> np.ndarray:
    """Linear interpolation of ``x`` (float64) along ``axis`` at positions ``g`` in ``[0, n - 1]``."""
    n = x.shape[axis]
    i0 = np.minimum(np.floor(g).astype(np.intp), n - 1)
    i1 = np.minimum(i0 + 1, n - 1)
    w = (g - i0).reshape([-1 if a == axis else 1 for a in range(x.ndim)])
    return np.take(x, i0, axis=axis) * (1 - w) + np.take(x, i1, axis=axis) * w


def _linear_resize(ctx: OpContext, x: np.ndarray, sizes: dict[int, int], mode: str) -> np.ndarray:
    """``x`` resized linearly to ``sizes[axis]`` along each axis, on ``mode``'s grid."""
    y = np.asarray(x, dtype=F64)
    for axis, n_out in sizes.items():
        y = _lerp(y, axis, _grid(ctx, y.shape[axis], n_out, mode))
    return y.astype(np.float32)


def _nearest_resize(ctx: OpContext, x: np.ndarray, sizes: dict[int, int], half_pixel: bool) -> np.ndarray:
    """``x`` resized by nearest neighbour: output ``i`` of ``N`` reads input
    ``floor((i + 0.5) * X / N)`` (``half_pixel``) or ``floor(i * X / N)``, in exact integers."""
    for axis, n_out in sizes.items():
        n_in = x.shape[axis]
        if n_in == 0 and n_out > 0:
            raise ctx.undefined(f"resizing an empty axis to {n_out} samples")
        i = np.arange(n_out, dtype=np.int64)
        idx = (2 * i + 1) * n_in // max(2 * n_out, 1) if half_pixel else i * n_in // max(n_out, 1)
        x = np.take(x, idx, axis=axis)
    return x


def _scaled_size(ctx: OpContext, param: str, n: int) -> int:
    """``floor(scale * n)`` as the definition's ``type_inference`` computes it: from the stored
    constant, not the value ``numerics="fp16"`` rounds (the size is part of the program's type)."""
    var = ctx.op.inputs.get(param)
    scale = np.asarray(1 if var is None else var.val)
    size = int(np.floor(scale.reshape(()) * n))
    if size < 0:
        raise ctx.unsupported(f"{param} {scale.reshape(()).item()} gives a negative size")
    return size


def _hw_sizes(x: np.ndarray, h: int, w: int) -> dict[int, int]:
    return {x.ndim - 2: h, x.ndim - 1: w}


# ---- upsample / resize -----------------------------------------------------------------
@register("upsample_nearest_neighbor", params=("x", "scale_factor_height", "scale_factor_width"), family="resize")
def op_upsample_nearest_neighbor(ctx: OpContext) -> np.ndarray:
    """Nearest-neighbour resize of the last two axes to ``floor(H * scale_factor_height)``
    by ``floor(W * scale_factor_width)``: output ``i`` of ``N`` reads ``floor(i * X / N)``.

    The definition names no rule for fractional scales. The scale is recomputed from the
    sizes, as coremltools' own op test pins down (``mil/ops/tests/iOS15/test_image_resizing.py``,
    ``TestUpsampleNearestNeighborFractionalScales``: ``W = 3`` with scale 1.12 gives the
    identity, which ``floor(i / 1.12)`` would not); it is PyTorch's ``nearest`` mode with
    ``recompute_scale_factor=True`` and TensorFlow's asymmetric ``ResizeNearestNeighbor``,
    which coremltools' TensorFlow frontend maps onto this op. For integer scales it is
    ``floor(i / scale)``.
    """
    x = _spatial_input(ctx)
    h = _scaled_size(ctx, "scale_factor_height", x.shape[-2])
    w = _scaled_size(ctx, "scale_factor_width", x.shape[-1])
    return _nearest_resize(ctx, x, _hw_sizes(x, h, w), half_pixel=False)


@register("resize_nearest_neighbor", params=("x", "target_size_height", "target_size_width"), family="resize")
def op_resize_nearest_neighbor(ctx: OpContext) -> np.ndarray:
    """Nearest-neighbour resize of the last two axes to ``target_size_height`` by
    ``target_size_width``: output ``i`` of ``N`` reads ``floor((i + 0.5) * X / N)``.

    The definition names no rule. Half-pixel centres are what coremltools' TensorFlow frontend
    maps onto this op (``ResizeNearestNeighbor`` with ``half_pixel_centers=True``,
    ``converters/mil/frontend/tensorflow/ops.py``; the asymmetric variant goes to
    ``upsample_nearest_neighbor``), and what the suite expects of its iOS17 superset ``resize``
    (``mil/ops/tests/iOS17/test_image_resizing.py``, ``TestResize``: 2 -> 3 reads ``[0, 1, 1]``).
    """
    x = _spatial_input(ctx)
    sizes = _hw_sizes(x, int(ctx.attr("target_size_height")), int(ctx.attr("target_size_width")))
    return _nearest_resize(ctx, x, sizes, half_pixel=True)


@register(
    "upsample_bilinear",
    params=("x", "scale_factor_height", "scale_factor_width", "align_corners", "half_pixel_centers"),
    family="resize",
)
def op_upsample_bilinear(ctx: OpContext) -> np.ndarray:
    """Bilinear resize of the last two axes to ``floor(X * scale)`` samples, the scale
    recomputed from the sizes (PyTorch's ``recompute_scale_factor=True``, as the definition says).

    ``align_corners=True`` is the ``STRICT_ALIGN_CORNERS`` grid (``0`` for a single output, as
    in PyTorch); ``align_corners=False`` is ``UNALIGN_CORNERS`` (half-pixel centres). iOS16's
    ``half_pixel_centers`` (default ``not align_corners``) set to false with
    ``align_corners=False`` gives the ``DEFAULT`` grid ``i * X / N`` (TensorFlow's
    ``half_pixel_centers=False``; the values of ``mil/ops/tests/iOS16/test_image_resizing.py``).
    Both true is refused: no grid is defined for it.
    """
    x = _spatial_input(ctx)
    align = bool(ctx.attr("align_corners", True))
    half_pixel = bool(ctx.attr("half_pixel_centers", not align))
    if align and half_pixel:
        raise ctx.unsupported("align_corners and half_pixel_centers both true (no sampling grid is defined)")
    mode = "STRICT_ALIGN_CORNERS" if align else "UNALIGN_CORNERS" if half_pixel else "DEFAULT"
    h = _scaled_size(ctx, "scale_factor_height", x.shape[-2])
    w = _scaled_size(ctx, "scale_factor_width", x.shape[-1])
    return _linear_resize(ctx, x, _hw_sizes(x, h, w), mode)


@register(
    "resize_bilinear",
    params=("x", "target_size_height", "target_size_width", "sampling_mode"),
    family="resize",
)
def op_resize_bilinear(ctx: OpContext) -> np.ndarray:
    """Bilinear resize of the last two axes to ``target_size_height`` by ``target_size_width``
    (default 1 each) on ``sampling_mode``'s grid (every mode; see the module docstring)."""
    x = _spatial_input(ctx)
    mode = _choice(ctx, "sampling_mode", SAMPLING_MODES, "DEFAULT")
    sizes = _hw_sizes(x, int(ctx.attr("target_size_height", 1)), int(ctx.attr("target_size_width", 1)))
    return _linear_resize(ctx, x, sizes, mode)


@register("resize", params=("x", "shape", "resized_dims", "interpolation_mode", "sampling_mode"), family="resize")
def op_resize(ctx: OpContext) -> np.ndarray:
    """iOS17 ``resize``: the last ``resized_dims`` axes of ``x`` take the sizes of the last
    ``resized_dims`` entries of ``shape`` (an entry ``0`` keeps the axis' size).

    ``LINEAR`` interpolates separably on ``sampling_mode``'s grid (every mode), as
    ``resize_bilinear`` does on two axes; an int32 ``x`` is refused for it (the definition
    names no rounding back to integers). ``NEAREST_NEIGHBOR`` is ``resize_nearest_neighbor``'s
    half-pixel rule (``floor((i + 0.5) * X / N)``), which the suite pins for the ``DEFAULT``
    sampling mode (``mil/ops/tests/iOS17/test_image_resizing.py``, ``TestResize``: 2 -> 3 reads
    ``[0, 1, 1]``); how the other sampling modes pick a nearest neighbour is not defined, so
    they are refused.
    """
    x = np.asarray(ctx.x("x"))
    shape = [int(s) for s in np.asarray(ctx.x("shape")).reshape(-1)]
    k = int(ctx.attr("resized_dims"))
    interpolation = _choice(ctx, "interpolation_mode", ("LINEAR", "NEAREST_NEIGHBOR"), "LINEAR")
    mode = _choice(ctx, "sampling_mode", SAMPLING_MODES, "DEFAULT")
    if not 0 <= k <= min(len(shape), x.ndim):
        raise ctx.unsupported(f"resized_dims {k} with shape of size {len(shape)} and x of rank {x.ndim}")
    if any(s < 0 for s in shape):
        raise ctx.undefined(f"negative size in shape {shape}")
    sizes = {}
    for j in range(k):
        axis, target = x.ndim - k + j, shape[len(shape) - k + j]
        sizes[axis] = target if target != 0 else x.shape[axis]
    if interpolation == "NEAREST_NEIGHBOR":
        if mode != "DEFAULT":
            raise ctx.unsupported(
                f"NEAREST_NEIGHBOR with sampling_mode {mode!r} (no nearest-neighbour rule is defined for it)"
            )
        return _nearest_resize(ctx, x, sizes, half_pixel=True)
    if x.dtype.kind != "f":
        raise ctx.unsupported(
            f"LINEAR resize of a {ctx.dtype_of('x')} tensor (no rounding back to integers is defined)"
        )
    return _linear_resize(ctx, x, sizes, mode)


@register("crop", params=("x", "crop_height", "crop_width"), family="resize")
def op_crop(ctx: OpContext) -> np.ndarray:
    """``x[..., top:H - bottom, left:W - right]`` with ``crop_height = [top, bottom]`` and
    ``crop_width = [left, right]``."""
    x = _spatial_input(ctx)
    (top, bottom), (left, right) = ctx.ints("crop_height"), ctx.ints("crop_width")
    h, w = x.shape[-2:]
    if min(top, bottom, left, right) < 0 or top + bottom > h or left + right > w:
        raise ctx.unsupported(f"crop_height {[top, bottom]}, crop_width {[left, right]} for a {h}x{w} input")
    return x[..., top : h - bottom, left : w - right]


# ---- crop_resize -----------------------------------------------------------------------
BOX_MODES = ("CORNERS_HEIGHT_FIRST", "CORNERS_WIDTH_FIRST", "CENTER_SIZE_HEIGHT_FIRST", "CENTER_SIZE_WIDTH_FIRST")


def _box_corners(boxes: np.ndarray, mode: str) -> np.ndarray:
    """``[N, 4]`` boxes in ``mode`` as ``[h_start, w_start, h_end, w_end]`` (float64); a
    centre-size box spans ``centre -+ size / 2``."""
    b = np.asarray(boxes, dtype=F64)
    if mode.endswith("WIDTH_FIRST"):
        b = b[:, [1, 0, 3, 2]]
    if mode.startswith("CENTER_SIZE"):
        half = b[:, 2:] / 2
        b = np.concatenate([b[:, :2] - half, b[:, :2] + half], axis=1)
    return b


def _box_grid(start: float, end: float, n: int, mode: str) -> np.ndarray:
    """``n`` positions from ``start`` to ``end`` (``numpy.linspace``); a single one is the
    centre (``ALIGN_CORNERS``) or ``start`` (``STRICT_ALIGN_CORNERS``)."""
    if n == 1:
        return np.array([(start + end) / 2 if mode == "ALIGN_CORNERS" else start])
    return start + np.arange(n, dtype=F64) * (end - start) / (n - 1)


def _crop_boxes(ctx: OpContext, x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """The boxes ``[N, 4]`` and the image index of each (``None``: every box on every image)."""
    batch = x.shape[0]
    if ctx.opset >= 17:
        boxes = np.asarray(ctx.x("boxes"))
        idx = ctx.opt("box_indices")
        idx = np.arange(boxes.shape[0]) if idx is None else np.asarray(idx).astype(np.int64).reshape(-1)
    else:
        roi = np.asarray(ctx.x("roi"))
        if roi.ndim != 5 or roi.shape[1] != 1 or roi.shape[2] not in (4, 5) or roi.shape[3:] != (1, 1):
            raise ctx.unsupported(f"roi of shape {list(roi.shape)} (the definition takes [N, 1, 4 or 5, 1, 1])")
        roi = roi.reshape(roi.shape[0], roi.shape[2])
        if roi.shape[1] == 4:
            return roi, None
        if batch != 1:
            raise ctx.unsupported(
                f"roi with batch indices and {batch} images: the definition's output is [N, 1, C, h, w] "
                "in its docstring but [N, B, C, h, w] in its type inference"
            )
        raw, boxes = roi[:, 0].astype(F64), roi[:, 1:]
        idx = np.rint(raw).astype(np.int64)
        if np.any(idx != raw):
            raise ctx.undefined(f"roi batch indices {raw[idx != raw][:5].tolist()} are not integers")
    if idx.size and (idx.min() < 0 or idx.max() >= batch):
        raise ctx.undefined(f"box indices {idx.tolist()[:5]} out of bound [0, {batch})")
    return boxes, idx


@register(
    "crop_resize",
    params=(
        "x", "roi", "boxes", "box_indices", "target_height", "target_width", "normalized_coordinates",
        "spatial_scale", "box_coordinate_mode", "sampling_mode", "pad_value",
    ),
    family="resize",
)
def op_crop_resize(ctx: OpContext) -> np.ndarray:
    """Bilinear crops of ``x: [B, C, H, W]``, each box resized to ``target_height`` by
    ``target_width``.

    Output: iOS15/16 ``[N, B, C, h, w]`` for ``roi: [N, 1, 4, 1, 1]`` (every box on every
    image) and ``[N, 1, C, h, w]`` for ``roi: [N, 1, 5, 1, 1]`` (first entry: the image
    index; refused when ``B > 1``, where the docstring and the type inference disagree on the
    shape); iOS17 ``[N, C, h, w]`` with ``boxes: [N, 4]`` and ``box_indices`` (default
    ``arange(N)``). Box coordinates are pixel positions (``(0, 0)`` the top-left sample), or
    fractions of ``H - 1`` and ``W - 1`` with ``normalized_coordinates``, times
    ``spatial_scale``; ``CENTER_SIZE_*`` boxes span ``centre -+ size / 2``.

    ``sampling_mode`` ``ALIGN_CORNERS`` and ``STRICT_ALIGN_CORNERS`` sample
    ``linspace(start, end, n)`` along each axis (for ``n == 1`` the box centre, respectively
    its start), TensorFlow's ``crop_and_resize`` (coremltools' TensorFlow frontend maps it to
    ``ALIGN_CORNERS``). The definition gives the other modes' grids only on a whole axis
    ``[0, X - 1]`` (``resize_bilinear``); how they apply to a box is not defined, and the
    suite's one case of such a mode on a box (``mil/ops/tests/iOS15/test_image_resizing.py``,
    ``TestCropResize``, ``UNALIGN_CORNERS``) expects values no mapping of the box gives, so
    they are refused.

    A sample position outside ``[0, H - 1] x [0, W - 1]`` gives ``pad_value`` (iOS16+,
    default 0; TensorFlow's ``extrapolation_value``, as the iOS16/17 suite cases expect:
    a row at 3.9 of 4 is ``pad_value``, not a blend). iOS15 has no ``pad_value`` and requires
    boxes inside the image, so such a position is refused as undefined.
    """
    x = np.asarray(ctx.x("x"), dtype=F64)
    if x.ndim != 4:
        raise ctx.unsupported(f"input rank {x.ndim} (the definition takes rank 4)")
    mode = _choice(ctx, "sampling_mode", SAMPLING_MODES, "DEFAULT")
    if mode not in ("ALIGN_CORNERS", "STRICT_ALIGN_CORNERS"):
        raise ctx.unsupported(
            f"sampling_mode {mode!r} on a box: the definition gives that grid only on a whole axis "
            "[0, X - 1] (resize_bilinear), not how it maps onto a box (implemented: ALIGN_CORNERS, "
            "STRICT_ALIGN_CORNERS)"
        )
    box_mode = _choice(ctx, "box_coordinate_mode", BOX_MODES, "CORNERS_HEIGHT_FIRST")
    th, tw = int(ctx.attr("target_height", 1)), int(ctx.attr("target_width", 1))
    boxes, idx = _crop_boxes(ctx, x)
    batch, channels, h, w = x.shape
    corners = _box_corners(boxes, box_mode) * F64(ctx.attr("spatial_scale", 1.0))
    if ctx.attr("normalized_coordinates", False):
        corners = corners * np.array([h - 1, w - 1, h - 1, w - 1], dtype=F64)
    pad = F64(ctx.attr("pad_value", 0.0)) if ctx.opset >= 16 else None
    images = range(batch) if idx is None else [None]
    out = np.empty((len(corners), len(images), channels, th, tw), dtype=F64)
    for n, (h0, w0, h1, w1) in enumerate(corners):
        gh, gw = _box_grid(h0, h1, th, mode), _box_grid(w0, w1, tw, mode)
        outside = ((gh < 0) | (gh > h - 1))[:, None] | ((gw < 0) | (gw > w - 1))[None, :]
        if pad is None and outside.any():
            raise ctx.undefined(
                f"box {n} samples outside the {h}x{w} image; iOS15 crop_resize requires boxes inside "
                "the image and defines no padding"
            )
        for j, b in enumerate(images):
            img = x[idx[n] if b is None else b]
            vals = _lerp(_lerp(img, 1, np.clip(gh, 0, h - 1)), 2, np.clip(gw, 0, w - 1))
            out[n, j] = np.where(outside, pad, vals) if outside.any() else vals
    return (out[:, 0] if ctx.opset >= 17 else out).astype(np.float32)


# ---- resample --------------------------------------------------------------------------
PAD_MODES = ("constant", "border", "reflection", "symmetric")
COORDINATE_MODES = ("unnormalized", "normalized_minus_one_to_one", "normalized_zero_to_one")


def _pixel_positions(c: np.ndarray, n: int, coordinates_mode: str, align: bool) -> np.ndarray:
    """Coordinates (float64) as pixel positions along an axis of ``n`` samples."""
    if coordinates_mode == "unnormalized":
        return c
    if coordinates_mode == "normalized_zero_to_one":
        return c * (n - 1) if align else c * n - 0.5
    return (c + 1) / 2 * (n - 1) if align else ((c + 1) * n - 1) / 2  # normalized_minus_one_to_one


def _padded_index(i: np.ndarray, n: int, mode: str) -> tuple[np.ndarray, np.ndarray | None]:
    """Integer positions ``i`` of the padded image as indices into ``[0, n)``, and (constant
    padding only) the mask of positions inside the image."""
    if mode == "constant":
        return np.clip(i, 0, n - 1), (i >= 0) & (i < n)
    if mode == "border" or n == 1:
        return np.clip(i, 0, n - 1), None
    if mode == "reflection":  # |1, 2, 3| -> 2, 3, 2, 1, 2, 3, 2, 1, 2
        m = np.mod(i, 2 * (n - 1))
        return np.where(m > n - 1, 2 * (n - 1) - m, m), None
    m = np.mod(i, 2 * n)  # symmetric: |1, 2, 3| -> 3, 2, 1, 1, 2, 3, 3, 2, 1
    return np.where(m >= n, 2 * n - 1 - m, m), None


def _bounded(p: np.ndarray, n: int, mode: str) -> np.ndarray:
    """``p`` moved by whole padding periods (or clamped far outside the image, where every
    neighbour is padding) so that ``floor`` fits an integer; the sampled values do not change."""
    if mode in ("reflection", "symmetric") and n > 1:
        period = 2 * (n - 1) if mode == "reflection" else 2 * n
        return np.mod(p, period)
    return np.clip(p, -2, n + 1)


@register(
    "resample",
    params=("x", "coordinates", "sampling_mode", "padding_mode", "padding_value", "coordinates_mode", "align_corners"),
    family="resize",
)
def op_resample(ctx: OpContext) -> np.ndarray:
    """``out[b, c, i, j] = x[b, c]`` sampled at ``coordinates[b, i, j] = (w, h)``
    (``x: [B, C, H, W]``, ``coordinates: [B, H2, W2, 2]``, output ``[B, C, H2, W2]``).

    ``coordinates_mode``: ``unnormalized`` positions are pixel indices; with
    ``normalized_minus_one_to_one`` and ``normalized_zero_to_one`` the range's ends are the
    centres of the corner pixels (``align_corners=True``) or their outer edges (``False``), as
    in PyTorch's ``grid_sample``. Sampling reads the image padded without end as
    ``padding_mode`` says (``constant``: ``padding_value``; ``border``: the edge repeated;
    ``reflection``: mirrored about the edge samples; ``symmetric``: mirrored including them),
    ``bilinear`` between the four neighbours of the position, ``nearest`` at the rounded
    position. This reading of the padded image is what the suite expects (e.g. a bilinear
    sample half a pixel outside blends ``padding_value`` in: 8.585, ``mil/ops/tests/iOS15/
    test_image_resizing.py``, ``TestResample``).

    ``nearest`` rounds half up, ``floor(p + 0.5)``: the suite expects position 6.5 to read
    sample 7. A negative half-integer position could as well round away from zero; where the
    two readings pick different samples an
    :class:`~parakeet_nb.mlprogram.milexec.core.AmbiguityWarning` is issued. Non-finite
    coordinates are refused as undefined.
    """
    x = np.asarray(ctx.x("x"), dtype=F64)
    coords = np.asarray(ctx.x("coordinates"), dtype=F64)
    sampling = _choice(ctx, "sampling_mode", ("bilinear", "nearest"), "bilinear")
    padding = _choice(ctx, "padding_mode", PAD_MODES, "constant")
    cmode = _choice(ctx, "coordinates_mode", COORDINATE_MODES, "unnormalized")
    align = bool(ctx.attr("align_corners", False))
    fill = F64(ctx.attr("padding_value", 0.0))
    if x.ndim != 4 or coords.ndim != 4 or coords.shape[-1] != 2 or coords.shape[0] != x.shape[0]:
        raise ctx.unsupported(f"x {list(x.shape)} with coordinates {list(coords.shape)}")
    if not np.all(np.isfinite(coords)):
        raise ctx.undefined("non-finite coordinates")
    h, w = x.shape[2:]
    px = _pixel_positions(coords[..., 0], w, cmode, align)
    py = _pixel_positions(coords[..., 1], h, cmode, align)
    return _sample(ctx, x, px, py, sampling, padding, fill)


def _sample(
    ctx: OpContext, x: np.ndarray, px: np.ndarray, py: np.ndarray, sampling: str, padding: str, fill: np.float64
) -> np.ndarray:
    """``x: [B, C, H, W]`` (float64) sampled at the finite pixel positions ``(px, py)``,
    each ``[B, H2, W2]``, as ``resample`` does: the image padded as ``padding`` says
    (``constant``: ``fill``), ``bilinear`` or ``nearest`` (half up). Output ``[B, C, H2, W2]``,
    float32."""
    batch, _, h, w = x.shape
    b = np.arange(batch).reshape(-1, 1, 1)

    def read(iy: np.ndarray, ix: np.ndarray) -> np.ndarray:
        """Padded-image values at integer positions, ``[B, H2, W2, C]``."""
        (yi, ym), (xi, xm) = _padded_index(iy, h, padding), _padded_index(ix, w, padding)
        vals = x[b, :, yi, xi]
        return vals if ym is None else np.where((ym & xm)[..., None], vals, fill)

    if sampling == "nearest":
        qx, qy = _bounded(px, w, padding), _bounded(py, h, padding)
        ix, iy = np.floor(qx + 0.5).astype(np.int64), np.floor(qy + 0.5).astype(np.int64)
        _warn_negative_ties(ctx, px, ix, w, padding)
        _warn_negative_ties(ctx, py, iy, h, padding)
        out = read(iy, ix)
    else:
        qx, qy = _bounded(px, w, padding), _bounded(py, h, padding)
        x0, y0 = np.floor(qx), np.floor(qy)
        wx, wy = (qx - x0)[..., None], (qy - y0)[..., None]
        x0, y0 = x0.astype(np.int64), y0.astype(np.int64)
        out = (read(y0, x0) * (1 - wx) + read(y0, x0 + 1) * wx) * (1 - wy) + (
            read(y0 + 1, x0) * (1 - wx) + read(y0 + 1, x0 + 1) * wx
        ) * wy
    return np.moveaxis(out, -1, 1).astype(np.float32)


def _warn_negative_ties(ctx: OpContext, p: np.ndarray, chosen: np.ndarray, n: int, padding: str) -> None:
    """Warn when a negative half-integer position's two roundings read different samples."""
    tie = (p < 0) & (np.floor(p + 0.5) == p + 0.5)
    if not tie.any():
        return
    (a, am), (o, om) = _padded_index(chosen[tie], n, padding), _padded_index(chosen[tie] - 1, n, padding)
    differs = (a != o) if am is None else ((a != o) & am & om) | (am != om)
    if differs.any():
        ctx.ambiguous(
            f"nearest sampling at negative half-integer positions {p[tie][differs][:3].tolist()}: "
            "rounding half up and away from zero read different samples (rounded half up)"
        )


# ---- affine ----------------------------------------------------------------------------
def _corner_grid(ctx: OpContext, n: int, coefficients: np.ndarray, what: str) -> np.ndarray:
    """The output coordinates ``linspace(-1, 1, n)`` along an axis of ``n`` samples (the first
    and last samples' centres at -1 and 1, ``align_corners=True``). A single sample's
    coordinate is not defined (both -1 and 1 name its centre; PyTorch's ``affine_grid`` takes
    0): refused unless ``coefficients``, the transform's factors of that coordinate, are all 0."""
    if n < 0:
        raise ctx.unsupported(f"negative {what} {n}")
    if n == 1 and np.any(coefficients != 0):
        raise ctx.unsupported(
            f"{what} 1 with a transform depending on that coordinate: the coordinate of a single "
            "output sample is not defined (-1 and 1 both name its centre)"
        )
    return np.linspace(-1.0, 1.0, n) if n > 1 else np.zeros(n)


@register(
    "affine",
    params=(
        "x", "transform_matrix", "output_height", "output_width", "sampling_mode", "padding_mode",
        "padding_value", "coordinates_mode", "align_corners",
    ),
    family="resize",
)
def op_affine(ctx: OpContext) -> np.ndarray:
    """``x: [B, C, H, W]`` resampled through an affine map of normalized coordinates:
    ``out[b, c, i, j] = x[b, c]`` read at ``(x', y')`` with::

        x' = a0 * u + a1 * v + a2,    y' = b0 * u + b1 * v + b2,

    ``[a0, a1, a2, b0, b1, b2]`` row ``b`` of ``transform_matrix: [B, 6]`` (or its only row,
    ``[1, 6]``) and ``(u, v)`` the output position ``(j, i)`` in ``normalized_minus_one_to_one``
    coordinates: ``u = -1 + 2 j / (output_width - 1)``, ``v`` alike over ``output_height``.
    Output ``[B, C, output_height, output_width]``. ``(x', y')`` is read as ``resample`` reads
    ``normalized_minus_one_to_one`` coordinates with ``align_corners=True`` (-1 and 1 are the
    centres of the corner pixels), bilinearly, in the image padded with zeros. It is PyTorch's
    ``affine_grid`` followed by ``grid_sample(mode="bilinear", padding_mode="zeros")``, both
    with ``align_corners=True``, ``theta = [[a0, a1, a2], [b0, b1, b2]]``.

    Definition: coremltools ``converters/mil/mil/ops/defs/iOS15/image_resizing.py``
    (``class affine``). It does not say in which coordinates ``(u, v)`` are; the suite's
    values decide (``converters/mil/mil/ops/tests/iOS15/test_image_resizing.py``,
    ``TestAffine``, expected values, no reference formula): the top-left output of a 3x3
    ``affine`` of a 2x2 image with ``[-1, -2, -3.7, -1, 3.5, 1.2]`` is 10.7525, the input read
    at ``(x', y') = (-0.7, -1.3)``, i.e. ``(u, v) = (-1, -1)``. The definition allows only
    ``sampling_mode="bilinear"``, ``padding_mode="constant"`` with ``padding_value`` 0,
    ``coordinates_mode="normalized_minus_one_to_one"`` and ``align_corners=True``; anything
    else is refused, as are an output axis of one sample that the transform depends on (its
    coordinate is not defined) and a ``transform_matrix`` whose rows are neither 1 nor ``B``.
    Non-finite transforms are refused as undefined. Positions are computed in float64 from
    the stored values and the result rounded once to float32.
    """
    x = np.asarray(ctx.x("x"), dtype=F64)
    t = np.asarray(ctx.x("transform_matrix"), dtype=F64)
    _choice(ctx, "sampling_mode", ("bilinear",))
    _choice(ctx, "padding_mode", ("constant",))
    _choice(ctx, "coordinates_mode", ("normalized_minus_one_to_one",))
    fill = F64(ctx.attr("padding_value"))
    if fill != 0:
        raise ctx.unsupported(f"padding_value {fill.item()} (the definition supports only 0)")
    if not ctx.attr("align_corners"):
        raise ctx.unsupported("align_corners False (the definition supports only True)")
    if x.ndim != 4 or t.ndim != 2 or t.shape[1] != 6 or t.shape[0] not in (1, x.shape[0]):
        raise ctx.unsupported(
            f"x {list(x.shape)} with transform_matrix {list(t.shape)} (the definition takes [B, C, H, W] "
            "with [B, 6] or [1, 6])"
        )
    if not np.all(np.isfinite(t)):
        raise ctx.undefined("non-finite transform_matrix")
    batch, _, h, w = x.shape
    oh, ow = int(ctx.attr("output_height")), int(ctx.attr("output_width"))
    u = _corner_grid(ctx, ow, t[:, [0, 3]], "output_width").reshape(1, 1, -1)
    v = _corner_grid(ctx, oh, t[:, [1, 4]], "output_height").reshape(1, -1, 1)
    if (h == 0 or w == 0) and oh * ow > 0:
        raise ctx.undefined(f"sampling an empty {h}x{w} image")
    a0, a1, a2, b0, b1, b2 = (t[:, k].reshape(-1, 1, 1) for k in range(6))
    shape = (batch, oh, ow)
    px = _pixel_positions(np.broadcast_to(a0 * u + a1 * v + a2, shape), w, "normalized_minus_one_to_one", True)
    py = _pixel_positions(np.broadcast_to(b0 * u + b1 * v + b2, shape), h, "normalized_minus_one_to_one", True)
    return _sample(ctx, x, px, py, "bilinear", "constant", fill)
