"""``milexec``'s weight decompression (``constexpr_*``) and ``quantize``/``dequantize``,
checked against the worked examples of the op definitions (coremltools
``converters/mil/mil/ops/defs/iOS16/constexpr_ops.py``, ``defs/iOS18/compression.py``,
``defs/iOS17/quantization_ops.py``), not against coremltools' own ``decompress``.
coremltools' op tests run these ops too (``tests/coremltools_suite``, ``bench/optests.py``).
"""

from __future__ import annotations

import numpy as np
import pytest

from parakeet_nb import _quiet

_quiet.import_heavy()

import coremltools as ct  # noqa: E402
from coremltools.converters.mil import Builder as mb  # noqa: E402
from coremltools.converters.mil.mil import types  # noqa: E402

from parakeet_nb.mlprogram.milexec import UnsupportedOpError, run_program, supported_op_types  # noqa: E402
from parakeet_nb.mlprogram.milexec.constexpr import DECOMPRESSORS  # noqa: E402

IOS16, IOS17, IOS18 = ct.target.iOS16, ct.target.iOS17, ct.target.iOS18


def dense(make, shape, opset=IOS18, plus: float = 0.0) -> np.ndarray:
    """The weight ``make()`` decompresses, read out as ``add(x, w)`` in float32 with ``x`` all ``plus``."""

    @mb.program(input_specs=[mb.TensorSpec(shape, types.fp32)], opset_version=opset)
    def prog(x):
        w = make()
        return mb.add(x=x, y=w if w.dtype == types.fp32 else mb.cast(x=w, dtype="fp32"))

    out = run_program(prog, {"x": np.full(shape, plus, np.float32)})
    return next(iter(out.values()))


def uint(bits: int, values) -> np.ndarray:
    return np.array(values).astype(getattr(types, f"np_uint{bits}_dtype"))


# ---- iOS18 ------------------------------------------------------------------------------

def test_lut_to_dense_per_group_scalar_palettes():
    """Case 1 of the definition: two 2-bit LUTs, one per half of axis 0."""
    indices = uint(2, [2, 3, 3, 0, 1, 0, 3, 0, 2, 1, 0, 3]).reshape(6, 2)
    lut = np.array([1, 5, 9, 13, 2, 10, 18, 26], np.float16).reshape(2, 1, 4, 1)
    got = dense(lambda: mb.constexpr_lut_to_dense(indices=indices, lut=lut), (6, 2))
    np.testing.assert_array_equal(got, [[9, 13], [13, 1], [5, 1], [26, 2], [18, 10], [2, 26]])


@pytest.mark.parametrize("vector_axis", [1, 2])
def test_lut_to_dense_vector_palettes(vector_axis):
    """Cases 2.1 and 2.2 of the definition: 1-bit indices, vectors of 3 along ``vector_axis``."""
    indices = uint(1, [[[0, 0], [1, 0]], [[1, 1], [0, 0]]])
    a, b = [1.0, 2.0, 3.0], [4.0, 5.0, 6.0]
    lut = np.array([a, b], np.float32).reshape(1, 1, 1, 2, 3)
    shape = (2, 6, 2) if vector_axis == 1 else (2, 2, 6)
    got = dense(lambda: mb.constexpr_lut_to_dense(indices=indices, lut=lut, vector_axis=np.int32(vector_axis)), shape)
    if vector_axis == 1:
        want = [np.column_stack([a + b, a + a]), np.column_stack([b + a, b + a])]
    else:
        want = [[a + a, b + a], [b + b, a + a]]
    np.testing.assert_array_equal(got, np.array(want))


_MASK = uint(1, [[1, 1, 0, 0, 0, 0], [1, 1, 0, 0, 0, 1], [0, 1, 1, 0, 1, 0], [0, 0, 0, 1, 0, 0]])


def test_lut_to_sparse_then_sparse_to_dense():
    """The definition's scalar example: ``{0: 2.0, 1: 3.0}`` on nine nonzero 1-bit indices."""
    nonzero = uint(1, [0, 1, 1, 0, 1, 1, 0, 0, 1])
    lut = np.array([2.0, 3.0], np.float16).reshape(1, 1, 2, 1)

    def make():
        mask, data = mb.constexpr_lut_to_sparse(indices_mask=_MASK, indices_nonzero_data=nonzero, lut=lut)
        return mb.constexpr_sparse_to_dense(nonzero_data=data, mask=mask)

    want = np.zeros((4, 6))
    want[_MASK != 0] = [2, 3, 3, 2, 3, 3, 2, 2, 3]
    np.testing.assert_array_equal(dense(make, (4, 6)), want)


def test_lut_to_sparse_vector_palettes_expand_the_mask():
    """The definition's vector example: vectors of 2 along axis 0 double each mask row."""
    nonzero = uint(1, [0, 1, 1, 0, 1, 1, 0, 0, 1])
    lut = np.array([[2.0, 2.0], [3.0, 3.0]], np.float16).reshape(1, 1, 2, 2)

    def make():
        mask, data = mb.constexpr_lut_to_sparse(
            indices_mask=_MASK, indices_nonzero_data=nonzero, lut=lut, vector_axis=np.int32(0)
        )
        return mb.constexpr_sparse_to_dense(nonzero_data=data, mask=mask)

    once = np.zeros((4, 6))
    once[_MASK != 0] = [2, 3, 3, 2, 3, 3, 2, 2, 3]
    np.testing.assert_array_equal(dense(make, (8, 6)), np.repeat(once, 2, axis=0))


def test_sparse_blockwise_shift_scale():
    """The definition's example: per-column scale and offset on nine nonzero int8 values."""
    mask = uint(1, [[1, 1, 0, 0], [1, 1, 1, 0], [0, 0, 1, 1], [1, 1, 0, 0]])
    scale = np.array([[0.1, 0.2, 0.3, 0.4]], np.float32)
    offset = np.array([[1, 2, 3, 4]], np.int8)

    def make():
        m, data = mb.constexpr_sparse_blockwise_shift_scale(
            data_mask=mask, nonzero_data=np.array([10, 11, 3, 4, 5, 6, 7, 8, 9], np.int8), scale=scale, offset=offset
        )
        return mb.constexpr_sparse_to_dense(nonzero_data=data, mask=m)

    want = np.zeros((4, 4))
    want[mask != 0] = [0.9, 1.8, 0.2, 0.4, 0.6, 0.9, 1.2, 0.7, 1.4]
    np.testing.assert_allclose(dense(make, (4, 4)), want, rtol=1e-6)


def test_blockwise_shift_scale_int4_blocks():
    """``scale[i // 2, j // 3] * (data - offset[i // 2, j // 3])`` on a 4x6 int4 tensor, rounded once to fp16."""
    rng = np.random.default_rng(0)
    data = rng.integers(-8, 8, (4, 6))
    scale = np.array([[0.1, 0.3], [0.7, 1.1]], np.float16)
    offset = np.array([[1, -2], [0, 7]])
    got = dense(
        lambda: mb.constexpr_blockwise_shift_scale(
            data=data.astype(types.np_int4_dtype), scale=scale, offset=offset.astype(types.np_int4_dtype)
        ),
        (4, 6),
    )
    big = lambda p: np.repeat(np.repeat(p.astype(np.float64), 2, axis=0), 3, axis=1)  # noqa: E731
    np.testing.assert_array_equal(got, (big(scale) * (data - big(offset))).astype(np.float16))


def test_fp16_weight_added_to_fp32_ones_is_exact_not_float16():
    """coremltools' iOS18 sparse/LUT stress tests add the decompressed float16 weight to a float32
    input of ones (the builder casts the weight up) and expect ``decompress(...) + 1`` computed in
    numpy, where float16 + 1 stays float16: the expectation is rounded to a float16 step of
    ``[1, 2)`` (9.8e-4) while the program's float32 sum is exact, and the suite compares at atol
    1e-4 (``SUITE_EXPECTATIONS`` in ``tests/coremltools_suite/plugin.py``)."""
    rng = np.random.default_rng(1)
    mask = (rng.random((4, 8)) > 0.5).astype(types.np_uint1_dtype)
    nonzero = rng.random(int(mask.sum())).astype(np.float16)
    got = dense(lambda: mb.constexpr_sparse_to_dense(nonzero_data=nonzero, mask=mask), (4, 8), plus=1.0)
    weight = np.zeros((4, 8), np.float16)
    weight[mask != 0] = nonzero
    np.testing.assert_array_equal(got, weight.astype(np.float32) + 1)
    suite = weight + 1  # numpy: float16 + int stays float16
    assert suite.dtype == np.float16 and np.abs(got - suite).max() > 1e-4


# ---- iOS16 ------------------------------------------------------------------------------

def test_ios16_lut_to_dense_unpacks_bits_lsb_first():
    """The definition's packing example: n_bits 2, shape (5,), bytes ``01 10 11 00 | xx xx xx 11``."""
    indices = np.array([0b01101100, 0b00000011], np.uint8)  # i0=0, i1=3, i2=2, i3=1, i4=3
    lut = np.array([10, 20, 30, 40], np.float32)
    got = dense(lambda: mb.constexpr_lut_to_dense(indices=indices, lut=lut, shape=np.uint32([5])), (5,), IOS16)
    np.testing.assert_array_equal(got, [10, 40, 30, 20, 40])


def test_ios16_sparse_to_dense_bit_mask():
    """The definition's mask example: bits ``x x x 0 1 1 0 0`` set elements 2 and 3 of 5."""
    got = dense(
        lambda: mb.constexpr_sparse_to_dense(
            nonzero_data=np.array([7, 8], np.float32), mask=np.array([0b00001100], np.uint8), shape=np.uint32([5])
        ),
        (5,),
        IOS16,
    )
    np.testing.assert_array_equal(got, [0, 0, 7, 8, 0])


def test_ios16_affine_dequantize_per_axis():
    q = np.array([[0, 128, 255], [10, 20, 30]], np.uint8)
    zp, scale = np.array([128, 10], np.uint8), np.array([0.5, 0.25], np.float32)
    got = dense(
        lambda: mb.constexpr_affine_dequantize(quantized_data=q, zero_point=zp, scale=scale, axis=np.int32(0)),
        (2, 3),
        IOS16,
    )
    np.testing.assert_array_equal(got, [[-64, 0, 63.5], [0, 2.5, 5]])


def test_ios16_cast():
    src = np.array([1.5, -2.25, 65504], np.float16)
    got = dense(lambda: mb.constexpr_cast(source_val=src, output_dtype="fp32"), (3,), IOS16)
    np.testing.assert_array_equal(got, src.astype(np.float32))


# ---- quantize / dequantize (iOS17) -------------------------------------------------------

def test_quantize_rounds_half_to_even_and_clips():
    x = np.array([[0.5, 1.5, 2.5, -0.5], [300.0, -300.0, 1.0, 2.0]], np.float32)

    @mb.program(input_specs=[mb.TensorSpec(x.shape, types.fp32)], opset_version=IOS17)
    def prog(x):
        q = mb.quantize(input=x, scale=np.float32(1.0), zero_point=np.int8(0), output_dtype="int8")
        return mb.dequantize(input=q, scale=np.float32(0.5), zero_point=np.int8(0))

    got = next(iter(run_program(prog, {"x": x}).values()))
    np.testing.assert_array_equal(got, 0.5 * np.array([[0, 2, 2, -0], [127, -128, 1, 2]]))


def test_quantize_per_axis_uint8():
    x = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], np.float32)

    @mb.program(input_specs=[mb.TensorSpec(x.shape, types.fp32)], opset_version=IOS17)
    def prog(x):
        return mb.quantize(input=x, scale=np.array([0.5, 0.25], np.float32), zero_point=np.uint8([10, 100]),
                           axis=np.int32(1), output_dtype="uint8")

    got = next(iter(run_program(prog, {"x": x}).values()))
    assert got.dtype == np.uint8
    np.testing.assert_array_equal(got, [[12, 108], [16, 116], [20, 124]])


def test_every_decompression_is_listed_as_supported():
    assert set(DECOMPRESSORS) <= set(supported_op_types())
    assert {"quantize", "dequantize"} <= set(supported_op_types())


def test_an_unknown_constexpr_without_a_value_is_unsupported(monkeypatch):
    monkeypatch.delitem(DECOMPRESSORS, "constexpr_cast")
    src = np.array([1.5], np.float16)
    with pytest.raises(UnsupportedOpError, match="constexpr_cast"):
        dense(lambda: mb.constexpr_cast(source_val=src, output_dtype="fp32"), (1,), IOS16)
