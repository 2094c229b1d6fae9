"""The image-resizing ops of the MIL reference executor (:mod:`parakeet_nb.mlprogram.milexec.ops.resize`).

References: PyTorch's ``interpolate`` (bilinear with and without ``align_corners``,
``nearest``, ``nearest-exact``) and ``grid_sample``, the grid tables printed in the
``resize_bilinear`` docstring, and small float64 numpy formulas written from the definitions
(TensorFlow's ``crop_and_resize`` for ``crop_resize``). Programs are built with
``@mb.program`` and run directly, so the executor also checks every output shape against
coremltools' type inference.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from parakeet_nb import _quiet

_quiet.import_heavy()

import coremltools as ct  # noqa: E402
from coremltools.converters.mil import Builder as mb  # noqa: E402
from coremltools.converters.mil.mil import types  # noqa: E402

from parakeet_nb.mlprogram.milexec import (  # noqa: E402
    AmbiguityWarning,
    UndefinedBehaviorError,
    UnsupportedOpError,
    round_to_fp16,
    run_program,
)

pytestmark = pytest.mark.usefixtures("one_blas_thread")

IOS15, IOS16, IOS17 = ct.target.iOS15, ct.target.iOS16, ct.target.iOS17
_MB = {np.dtype(np.float16): types.fp16, np.dtype(np.float32): types.fp32, np.dtype(np.int32): types.int32}
RNG = np.random.default_rng(20240611)
MODES = ("STRICT_ALIGN_CORNERS", "ALIGN_CORNERS", "DEFAULT", "OFFSET_CORNERS", "UNALIGN_CORNERS")


def run(fn, *arrays: np.ndarray, opset=IOS17, numerics="fp32"):
    """Build ``fn`` with inputs shaped like ``arrays`` and run it; one output or a tuple."""
    specs = [mb.TensorSpec(shape=a.shape, dtype=_MB[a.dtype]) for a in arrays]
    prog = mb.program(input_specs=specs, opset_version=opset)(fn)
    names = fn.__code__.co_varnames[: len(arrays)]
    out = list(run_program(prog, dict(zip(names, arrays)), numerics=numerics).values())
    return out[0] if len(out) == 1 else tuple(out)


def randn(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


def torch_resize(x: np.ndarray, size, **kw) -> np.ndarray:
    return F.interpolate(torch.from_numpy(x), size=size, **kw).numpy()


# ---- grids ---------------------------------------------------------------------------
def grid_ref(n_in: int, n_out: int, mode: str) -> np.ndarray:
    """The ``resize_bilinear`` docstring's formulas, literally (float64)."""
    i = np.arange(n_out, dtype=np.float64)
    if mode in ("STRICT_ALIGN_CORNERS", "ALIGN_CORNERS"):
        if n_out == 1:
            g = np.array([(n_in - 1) / 2 if mode == "ALIGN_CORNERS" else 0.0])
        else:
            g = i * ((n_in - 1) / (n_out - 1))
    elif mode == "DEFAULT":
        g = i * ((n_in - n_in / n_out) / (n_out - 1)) if n_out > 1 else np.zeros(1)
    elif mode == "OFFSET_CORNERS":
        delta = max(1, n_in - 1) / n_out
        g = 0.5 * delta + i * delta
    else:
        g = i * (n_in / n_out) + 0.5 * (n_in / n_out) - 0.5
    return np.clip(g, 0, n_in - 1)


def bilinear_ref(x: np.ndarray, gh: np.ndarray, gw: np.ndarray) -> np.ndarray:
    """``x[..., H, W]`` at every ``(gh[i], gw[j])``: the four neighbours, weighted (float64)."""
    x = x.astype(np.float64)
    h, w = x.shape[-2:]
    y0, x0 = np.floor(gh).astype(int), np.floor(gw).astype(int)
    y1, x1 = np.minimum(y0 + 1, h - 1), np.minimum(x0 + 1, w - 1)
    wy, wx = (gh - y0)[:, None], (gw - x0)[None, :]
    rows0, rows1 = x[..., y0, :], x[..., y1, :]
    return (
        rows0[..., x0] * (1 - wy) * (1 - wx) + rows0[..., x1] * (1 - wy) * wx
        + rows1[..., x0] * wy * (1 - wx) + rows1[..., x1] * wy * wx
    )


DOCSTRING_GRIDS = {  # resize_bilinear's docstring, input [0, 1] (Xin = 2), two decimals
    ("UNALIGN_CORNERS", 5): [0.0, 0.1, 0.5, 0.9, 1.0],
    ("STRICT_ALIGN_CORNERS", 5): [0.0, 0.25, 0.5, 0.75, 1.0],
    ("ALIGN_CORNERS", 5): [0.0, 0.25, 0.5, 0.75, 1.0],
    ("DEFAULT", 5): [0.0, 0.4, 0.8, 1.0, 1.0],
    ("OFFSET_CORNERS", 5): [0.1, 0.3, 0.5, 0.7, 0.9],
    ("UNALIGN_CORNERS", 6): [0.0, 0.0, 0.33, 0.67, 1.0, 1.0],
    ("STRICT_ALIGN_CORNERS", 6): [0.0, 0.2, 0.4, 0.6, 0.8, 1.0],
    ("ALIGN_CORNERS", 6): [0.0, 0.2, 0.4, 0.6, 0.8, 1.0],
    ("DEFAULT", 6): [0.0, 0.33, 0.67, 1.0, 1.0, 1.0],
    ("OFFSET_CORNERS", 6): [0.08, 0.25, 0.42, 0.58, 0.75, 0.92],
}


@pytest.mark.parametrize("mode", MODES)
def test_resize_bilinear_reproduces_the_docstring_grids(mode):
    x = np.array([0.0, 1.0], np.float32).reshape(1, 1, 2)  # value == position
    for n in (5, 6):
        out = run(lambda x: mb.resize_bilinear(x=x, target_size_height=1, target_size_width=n, sampling_mode=mode), x)
        np.testing.assert_allclose(out.ravel(), DOCSTRING_GRIDS[mode, n], atol=0.005)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("size", [(7, 3), (1, 1), (4, 13)])
def test_resize_bilinear_every_mode_matches_the_definition(mode, size):
    x = randn(2, 3, 5, 6)
    out = run(lambda x: mb.resize_bilinear(x=x, target_size_height=size[0], target_size_width=size[1], sampling_mode=mode), x)
    ref = bilinear_ref(x, grid_ref(5, size[0], mode), grid_ref(6, size[1], mode))
    np.testing.assert_allclose(out, ref, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("mode, align", [("STRICT_ALIGN_CORNERS", True), ("UNALIGN_CORNERS", False)])
def test_resize_bilinear_matches_torch(mode, align):
    x = randn(1, 2, 6, 9)
    out = run(lambda x: mb.resize_bilinear(x=x, target_size_height=11, target_size_width=4, sampling_mode=mode), x)
    np.testing.assert_allclose(out, torch_resize(x, (11, 4), mode="bilinear", align_corners=align), rtol=1e-5, atol=1e-6)


# ---- upsample ------------------------------------------------------------------------
@pytest.mark.parametrize("scales", [(2, 3), (2.5, 0.75), (0.5, 1.5)])
@pytest.mark.parametrize("align", [True, False])
def test_upsample_bilinear_matches_torch_with_recomputed_scale(scales, align):
    x = randn(2, 3, 6, 8)
    out = run(lambda x: mb.upsample_bilinear(x=x, scale_factor_height=scales[0], scale_factor_width=scales[1], align_corners=align), x)
    ref = F.interpolate(torch.from_numpy(x), scale_factor=scales, mode="bilinear", align_corners=align,
                        recompute_scale_factor=True).numpy()
    assert out.shape == ref.shape
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-6)


def test_upsample_bilinear_ios16_half_pixel_centers():
    x = randn(1, 2, 3, 5)
    asym = run(lambda x: mb.upsample_bilinear(x=x, scale_factor_height=2, scale_factor_width=3, align_corners=False,
                                              half_pixel_centers=False), x, opset=IOS16)
    np.testing.assert_allclose(asym, bilinear_ref(x, grid_ref(3, 6, "DEFAULT"), grid_ref(5, 15, "DEFAULT")), rtol=1e-6, atol=1e-6)
    half = run(lambda x: mb.upsample_bilinear(x=x, scale_factor_height=2, scale_factor_width=3, align_corners=False), x, opset=IOS16)
    np.testing.assert_allclose(half, torch_resize(x, (6, 15), mode="bilinear", align_corners=False), rtol=1e-5, atol=1e-6)
    with pytest.raises(UnsupportedOpError, match="align_corners and half_pixel_centers both true"):
        run(lambda x: mb.upsample_bilinear(x=x, scale_factor_height=2, scale_factor_width=3, align_corners=True,
                                           half_pixel_centers=True), x, opset=IOS16)


@pytest.mark.parametrize("scales", [(2, 3), (1.5, 0.67), (3.17, 1.12)])
def test_upsample_nearest_neighbor_matches_torch_nearest(scales):
    x = randn(1, 2, 5, 7)
    out = run(lambda x: mb.upsample_nearest_neighbor(x=x, scale_factor_height=scales[0], scale_factor_width=scales[1]), x)
    np.testing.assert_array_equal(out, torch_resize(x, out.shape[2:], mode="nearest"))


def test_upsample_size_follows_the_stored_scale_under_fp16_numerics():
    """``floor(5 * 2.6) = 13``; the float16 neighbour of 2.6 (2.5996) would give 12."""
    x = randn(1, 1, 5, 5)
    bil, nn = run(lambda x: [mb.upsample_bilinear(x=x, scale_factor_height=2.6, scale_factor_width=1.0, align_corners=False),
                             mb.upsample_nearest_neighbor(x=x, scale_factor_height=2.6, scale_factor_width=1.0)], x, numerics="fp16")
    assert bil.shape == nn.shape == (1, 1, 13, 5)
    np.testing.assert_array_equal(nn, torch_resize(round_to_fp16(x), (13, 5), mode="nearest"))


def test_resize_nearest_neighbor_matches_torch_nearest_exact():
    x = randn(2, 3, 4, 5)
    for size in [(3, 2), (9, 12), (4, 5)]:
        out = run(lambda x: mb.resize_nearest_neighbor(x=x, target_size_height=size[0], target_size_width=size[1]), x)
        np.testing.assert_array_equal(out, torch_resize(x, size, mode="nearest-exact"))


# ---- iOS17 resize ----------------------------------------------------------------------
@pytest.mark.parametrize("mode", MODES)
def test_resize_linear_is_resize_bilinear(mode):
    x = randn(2, 3, 4, 5)
    out = run(lambda x: mb.resize(x=x, shape=[7, 0], resized_dims=np.uint32(2), sampling_mode=mode), x)
    np.testing.assert_allclose(out, bilinear_ref(x, grid_ref(4, 7, mode), grid_ref(5, 5, mode)), rtol=1e-6, atol=1e-6)


def test_resize_linear_on_one_and_three_axes_and_dynamic_shape():
    x = randn(2, 3, 4, 5)
    one = run(lambda x: mb.resize(x=x, shape=[9], resized_dims=np.uint32(1), sampling_mode="UNALIGN_CORNERS"), x)
    np.testing.assert_allclose(one, F.interpolate(torch.from_numpy(x.reshape(6, 4, 5)), size=9, mode="linear",
                                                  align_corners=False).numpy().reshape(2, 3, 4, 9), rtol=1e-5, atol=1e-6)
    three = run(lambda x: mb.resize(x=x, shape=[5, 3, 8], resized_dims=np.uint32(3), sampling_mode="STRICT_ALIGN_CORNERS"), x)
    ref = F.interpolate(torch.from_numpy(x[None]), size=(5, 3, 8), mode="trilinear", align_corners=True).numpy()[0]
    np.testing.assert_allclose(three, ref, rtol=1e-5, atol=1e-6)
    shape = np.array([9, 6, 2], np.int32)
    dyn = run(lambda x, shape: mb.resize(x=x, shape=shape, resized_dims=np.uint32(2), sampling_mode="UNALIGN_CORNERS"), x, shape)
    np.testing.assert_allclose(dyn, torch_resize(x, (6, 2), mode="bilinear", align_corners=False), rtol=1e-5, atol=1e-6)


def test_resize_nearest_neighbor_ios17_and_int32():
    x = randn(1, 2, 3, 4)
    out = run(lambda x: mb.resize(x=x, shape=[5, 7], resized_dims=np.uint32(2), interpolation_mode="NEAREST_NEIGHBOR"), x)
    np.testing.assert_array_equal(out, torch_resize(x, (5, 7), mode="nearest-exact"))
    xi = np.arange(12, dtype=np.int32).reshape(1, 3, 4)
    oi = run(lambda x: mb.resize(x=x, shape=[2, 6], resized_dims=np.uint32(2), interpolation_mode="NEAREST_NEIGHBOR"), xi)
    assert oi.dtype == np.int32
    np.testing.assert_array_equal(oi, torch_resize(xi[None].astype(np.float32), (2, 6), mode="nearest-exact")[0])
    with pytest.raises(UnsupportedOpError, match="LINEAR resize of a int32 tensor"):
        run(lambda x: mb.resize(x=x, shape=[2, 6], resized_dims=np.uint32(2)), xi)
    with pytest.raises(UnsupportedOpError, match="NEAREST_NEIGHBOR with sampling_mode 'ALIGN_CORNERS'"):
        run(lambda x: mb.resize(x=x, shape=[5, 7], resized_dims=np.uint32(2), interpolation_mode="NEAREST_NEIGHBOR",
                                sampling_mode="ALIGN_CORNERS"), x)


def test_crop():
    x = randn(2, 3, 6, 7)
    out = run(lambda x: mb.crop(x=x, crop_height=[1, 2], crop_width=[0, 3]), x)
    np.testing.assert_array_equal(out, x[:, :, 1:4, 0:4])


# ---- crop_resize -----------------------------------------------------------------------
def crop_and_resize_ref(img: np.ndarray, box, th: int, tw: int, pad: float, strict=False) -> np.ndarray:
    """TensorFlow's ``crop_and_resize`` on pixel boxes ``[h0, w0, h1, w1]``: ``img [C, H, W]``,
    ``linspace`` from start to end (the centre, or start if ``strict``, for one sample),
    ``pad`` at positions outside the image (float64)."""
    h, w = img.shape[1:]
    out = np.empty((img.shape[0], th, tw))
    for i in range(th):
        y = box[0] + i * (box[2] - box[0]) / (th - 1) if th > 1 else (box[0] if strict else (box[0] + box[2]) / 2)
        for j in range(tw):
            x = box[1] + j * (box[3] - box[1]) / (tw - 1) if tw > 1 else (box[1] if strict else (box[1] + box[3]) / 2)
            if not (0 <= y <= h - 1 and 0 <= x <= w - 1):
                out[:, i, j] = pad
                continue
            y0, x0 = int(np.floor(y)), int(np.floor(x))
            y1, x1 = min(y0 + 1, h - 1), min(x0 + 1, w - 1)
            dy, dx = y - y0, x - x0
            top = img[:, y0, x0] * (1 - dx) + img[:, y0, x1] * dx
            bottom = img[:, y1, x0] * (1 - dx) + img[:, y1, x1] * dx
            out[:, i, j] = top * (1 - dy) + bottom * dy
    return out


def test_crop_resize_ios17_boxes_pad_and_normalized():
    x = randn(3, 2, 6, 7)
    boxes = np.array([[0.5, 1.0, 4.0, 5.5], [5.0, 6.0, 1.0, 0.0], [-1.0, 2.0, 3.0, 8.5]], np.float32)
    idx = np.array([2, 0, 1], np.int32)
    out = run(lambda x: mb.crop_resize(x=x, boxes=boxes, box_indices=idx, target_height=4, target_width=3,
                                       sampling_mode="ALIGN_CORNERS", pad_value=-3.0), x)
    ref = np.stack([crop_and_resize_ref(x[i].astype(np.float64), b, 4, 3, -3.0) for b, i in zip(boxes, idx)])
    np.testing.assert_allclose(out, ref, rtol=1e-6, atol=1e-6)
    assert np.sum(out == -3.0) > 0  # the third box leaves the image
    # normalized, width-first corners, spatial_scale and strict alignment with a single row
    norm = np.array([[0.1, 0.2, 0.9, 0.7]], np.float32)  # [w0, h0, w1, h1]
    out = run(lambda x: mb.crop_resize(x=x, boxes=norm, box_indices=np.array([1], np.int32), target_height=1, target_width=5,
                                       normalized_coordinates=True, spatial_scale=0.5, box_coordinate_mode="CORNERS_WIDTH_FIRST",
                                       sampling_mode="STRICT_ALIGN_CORNERS"), x)
    box = np.array([0.2 * 5, 0.1 * 6, 0.7 * 5, 0.9 * 6]) * 0.5
    np.testing.assert_allclose(out[0], crop_and_resize_ref(x[1].astype(np.float64), box, 1, 5, 0.0, strict=True), rtol=1e-6, atol=1e-6)


def test_crop_resize_center_size_is_centre_plus_minus_half_size():
    x = randn(1, 2, 5, 5)
    cs = np.array([[2.0, 1.5, 2.0, 3.0]], np.float32)  # [h_c, w_c, box_h, box_w]
    out = run(lambda x: mb.crop_resize(x=x, boxes=cs, target_height=3, target_width=4, box_coordinate_mode="CENTER_SIZE_HEIGHT_FIRST",
                                       sampling_mode="ALIGN_CORNERS"), x)
    ref = crop_and_resize_ref(x[0].astype(np.float64), [1.0, 0.0, 3.0, 3.0], 3, 4, 0.0)
    np.testing.assert_allclose(out[0], ref, rtol=1e-6, atol=1e-6)


def test_crop_resize_ios15_roi_shapes_and_refusals():
    x = randn(2, 3, 5, 6)
    roi = np.array([[1.0, 0.5, 3.0, 4.5], [0.0, 0.0, 4.0, 5.0]], np.float32).reshape(2, 1, 4, 1, 1)
    out = run(lambda x: mb.crop_resize(x=x, roi=roi, target_height=3, target_width=2, sampling_mode="ALIGN_CORNERS"), x, opset=IOS15)
    assert out.shape == (2, 2, 3, 3, 2)  # every box on every image
    for n in range(2):
        for b in range(2):
            ref = crop_and_resize_ref(x[b].astype(np.float64), roi[n].ravel(), 3, 2, 0.0)
            np.testing.assert_allclose(out[n, b], ref, rtol=1e-6, atol=1e-6)
    outside = np.array([0.0, -1.0, 1.0, 2.0, 2.0], np.float32).reshape(1, 1, 5, 1, 1)
    with pytest.raises(UndefinedBehaviorError, match="samples outside the 5x6 image"):
        run(lambda x: mb.crop_resize(x=x, roi=outside, target_height=2, target_width=2, sampling_mode="ALIGN_CORNERS"), x[:1], opset=IOS15)
    with pytest.raises(UnsupportedOpError, match="sampling_mode 'DEFAULT' on a box"):
        run(lambda x: mb.crop_resize(x=x, roi=roi, target_height=2, target_width=2), x, opset=IOS16)
    with pytest.raises(UnsupportedOpError, match="batch indices and 2 images"):
        run(lambda x: mb.crop_resize(x=x, roi=outside, target_height=2, target_width=2, sampling_mode="ALIGN_CORNERS"), x, opset=IOS16)


# ---- resample --------------------------------------------------------------------------
def grid_sample_ref(x: np.ndarray, px: np.ndarray, py: np.ndarray, padding: str, value: float, nearest: bool) -> np.ndarray:
    """PyTorch's ``grid_sample`` at pixel positions: ``reflection`` about the edge samples is
    torch's reflection with ``align_corners=True``; ``symmetric`` (edges repeated) is torch's
    reflection with ``align_corners=False``; constant padding ``c`` is ``c +`` zero-padded
    sampling of ``x - c``."""
    h, w = x.shape[2:]
    align = padding != "symmetric"
    if align:
        gx, gy = px / (w - 1) * 2 - 1, py / (h - 1) * 2 - 1
    else:
        gx, gy = (2 * px + 1) / w - 1, (2 * py + 1) / h - 1
    mode = {"constant": "zeros", "border": "border", "reflection": "reflection", "symmetric": "reflection"}[padding]
    shift = value if padding == "constant" else 0.0
    grid = torch.from_numpy(np.stack([gx, gy], axis=-1))
    out = F.grid_sample(torch.from_numpy(x.astype(np.float64) - shift), grid, mode="nearest" if nearest else "bilinear",
                        padding_mode=mode, align_corners=align)
    return out.numpy() + shift


@pytest.mark.parametrize("padding", ["constant", "border", "reflection", "symmetric"])
@pytest.mark.parametrize("sampling", ["bilinear", "nearest"])
@pytest.mark.parametrize("cmode, align", [("unnormalized", False), ("normalized_minus_one_to_one", True),
                                          ("normalized_minus_one_to_one", False), ("normalized_zero_to_one", True),
                                          ("normalized_zero_to_one", False)])
def test_resample_matches_torch_grid_sample(padding, sampling, cmode, align):
    x = randn(2, 3, 4, 5)
    h, w = 4, 5
    px = RNG.uniform(-12, 16, (2, 3, 6))  # far outside too: several reflection periods
    py = RNG.uniform(-10, 13, (2, 3, 6))
    to_coord = {  # the inverse of each coordinates_mode (pixel position -> coordinate)
        ("unnormalized", False): lambda p, n: p,
        ("normalized_minus_one_to_one", True): lambda p, n: p / (n - 1) * 2 - 1,
        ("normalized_minus_one_to_one", False): lambda p, n: (2 * p + 1) / n - 1,
        ("normalized_zero_to_one", True): lambda p, n: p / (n - 1),
        ("normalized_zero_to_one", False): lambda p, n: (p + 0.5) / n,
    }[cmode, align]
    coords = np.stack([to_coord(px, w), to_coord(py, h)], axis=-1).astype(np.float32)
    out = run(lambda x, c: mb.resample(x=x, coordinates=c, sampling_mode=sampling, padding_mode=padding, padding_value=1.75,
                                       coordinates_mode=cmode, align_corners=align), x, coords, opset=IOS16)
    c64 = coords.astype(np.float64)  # the stored float32 coordinates, back to pixel positions
    back = {
        "unnormalized": lambda c, n: c,
        "normalized_minus_one_to_one": lambda c, n: (c + 1) / 2 * (n - 1) if align else ((c + 1) * n - 1) / 2,
        "normalized_zero_to_one": lambda c, n: c * (n - 1) if align else c * n - 0.5,
    }[cmode]
    ref = grid_sample_ref(x, back(c64[..., 0], w), back(c64[..., 1], h), padding, 1.75, sampling == "nearest")
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5)


def test_resample_suite_values_and_half_up_rounding():
    """The iOS15 suite's expectations (``TestResample``): a constant-padded bilinear blend and
    a nearest sample at position 6.5 reading sample 7 (half up, not torch's half-to-even)."""
    x = np.array([11.0, 22.0, 33.0, 44.0], np.float32).reshape(1, 1, 2, 2)
    c = np.array([-1.0, -2.0, -3.7, -1.0, 0.0, 0.0, 3.5, 1.2], np.float32).reshape(1, 2, 2, 2)
    blend = run(lambda x, c: mb.resample(x=x, coordinates=c, sampling_mode="bilinear", padding_mode="constant", padding_value=6.17,
                                         coordinates_mode="normalized_minus_one_to_one", align_corners=True), x, c, opset=IOS15)
    np.testing.assert_allclose(blend.ravel(), [8.585, 6.17, 27.5, 6.17], rtol=1e-6)
    sym = run(lambda x, c: mb.resample(x=x, coordinates=c, sampling_mode="nearest", padding_mode="symmetric", padding_value=-1.0,
                                       coordinates_mode="normalized_zero_to_one", align_corners=False), x, c, opset=IOS15)
    np.testing.assert_array_equal(sym.ravel(), [22.0, 33.0, 11.0, 33.0])


def test_resample_negative_tie_is_ambiguous_and_bad_values_refused():
    x = randn(1, 1, 3, 3)
    c = np.array([-0.5, 1.0], np.float32).reshape(1, 1, 1, 2)  # half up: column 0; away from zero: padding
    with pytest.warns(AmbiguityWarning, match="negative half-integer"):
        out = run(lambda x, c: mb.resample(x=x, coordinates=c, sampling_mode="nearest", padding_mode="constant", padding_value=0.0,
                                           coordinates_mode="unnormalized", align_corners=False), x, c, opset=IOS16)
    assert out.ravel()[0] == x[0, 0, 1, 0]
    nan = np.array([np.nan, 1.0], np.float32).reshape(1, 1, 1, 2)
    with pytest.raises(UndefinedBehaviorError, match="non-finite"):
        run(lambda x, c: mb.resample(x=x, coordinates=c, sampling_mode="bilinear", padding_mode="border", padding_value=0.0,
                                     coordinates_mode="unnormalized", align_corners=False), x, nan, opset=IOS16)
    with pytest.raises(UnsupportedOpError, match="sampling_mode 'bicubic'"):
        run(lambda x, c: mb.resample(x=x, coordinates=c, sampling_mode="bicubic", padding_mode="border", padding_value=0.0,
                                     coordinates_mode="unnormalized", align_corners=False), x, c, opset=IOS16)


# ---- affine ----------------------------------------------------------------------------
def affine_ref(x: np.ndarray, t: np.ndarray, oh: int, ow: int) -> np.ndarray:
    """PyTorch's ``affine_grid`` + ``grid_sample`` (bilinear, zero padding), both with
    ``align_corners=True``: the definition's conventions as the suite's values pin them
    (float64; ``theta = [[a0, a1, a2], [b0, b1, b2]]``, one row broadcast over the batch)."""
    theta = torch.from_numpy(np.broadcast_to(t.astype(np.float64), (x.shape[0], 6)).reshape(-1, 2, 3).copy())
    grid = F.affine_grid(theta, [x.shape[0], x.shape[1], oh, ow], align_corners=True)
    return F.grid_sample(torch.from_numpy(x.astype(np.float64)), grid, mode="bilinear", padding_mode="zeros",
                         align_corners=True).numpy()


def affine(x, t, oh: int, ow: int, align: bool = True):
    return mb.affine(x=x, transform_matrix=t, output_height=oh, output_width=ow, sampling_mode="bilinear",
                     padding_mode="constant", padding_value=0.0, coordinates_mode="normalized_minus_one_to_one",
                     align_corners=align)


@pytest.mark.parametrize("rows", [1, 2])
@pytest.mark.parametrize("size", [(4, 7), (7, 3), (5, 6)])
def test_affine_matches_torch_affine_grid_and_grid_sample(rows, size):
    x = randn(2, 3, 5, 6)
    t = RNG.uniform(-1.5, 1.5, (rows, 6)).astype(np.float32)  # rotations, shears, shifts: partly outside
    out = run(lambda x, t: affine(x, t, *size), x, t, opset=IOS15)
    assert out.shape == (2, 3) + size
    np.testing.assert_allclose(out, affine_ref(x, t, *size), rtol=1e-5, atol=1e-6)
    assert np.any(out == 0.0)  # some positions fall in the zero padding


def test_affine_identity_and_suite_values():
    """The identity transform returns the input; ``TestAffine``'s expected values
    (``mil/ops/tests/iOS15/test_image_resizing.py``) are reproduced."""
    x = randn(2, 3, 5, 6)
    eye = np.array([[1, 0, 0, 0, 1, 0]], np.float32)
    np.testing.assert_allclose(run(lambda x, t: affine(x, t, 5, 6), x, eye, opset=IOS15), x, rtol=1e-6, atol=1e-7)
    x = np.array([11.0, 22.0, 33.0, 44.0], np.float32).reshape(1, 1, 2, 2)
    t = np.array([[-1.0, -2.0, -3.7, -1.0, 3.5, 1.2]], np.float32)
    a, b = run(lambda x, t: [affine(x, t, 3, 3), affine(x, t, 2, 5)], x, t, opset=IOS15)
    np.testing.assert_allclose(a.ravel(), [10.752501, 2.5025, 0.0, 1.9799997, 0, 0, 0, 0, 0], rtol=1e-6)
    np.testing.assert_allclose(b.ravel(), [10.752501, 5.94, 2.5025, 0.44000006, 0, 0, 0, 0, 0, 0], rtol=1e-6)


def test_affine_single_output_row_and_refusals():
    x = randn(2, 1, 4, 5)
    flat = np.array([[0.5, 0.0, 0.1, 0.0, 0.0, -0.25]], np.float32)  # rows do not depend on v
    out = run(lambda x, t: affine(x, t, 1, 6), x, flat, opset=IOS15)
    px = (np.linspace(-1, 1, 6) * 0.5 + np.float32(0.1) + 1) / 2 * 4  # float64 from the definition
    py = np.full(6, (1 - 0.25) / 2 * 3)
    np.testing.assert_allclose(out[:, :, 0], bilinear_ref(x, py[:1], px)[:, :, 0], rtol=1e-6, atol=1e-6)
    with pytest.raises(UnsupportedOpError, match="output_height 1 with a transform depending on that coordinate"):
        run(lambda x, t: affine(x, t, 1, 6), x, np.array([[1, 0.2, 0, 0, 1, 0]], np.float32), opset=IOS15)
    eye = np.array([[1, 0, 0, 0, 1, 0]], np.float32)
    with pytest.raises(UnsupportedOpError, match="align_corners False"):
        run(lambda x, t: affine(x, t, 3, 3, align=False), x, eye, opset=IOS15)
    with pytest.raises(UnsupportedOpError, match=r"transform_matrix \[3, 6\]"):
        run(lambda x, t: affine(x, t, 3, 3), x, np.repeat(eye, 3, axis=0), opset=IOS15)
    with pytest.raises(UndefinedBehaviorError, match="non-finite transform_matrix"):
        run(lambda x, t: affine(x, t, 3, 3), x, np.array([[1, 0, np.inf, 0, 1, 0]], np.float32), opset=IOS15)
