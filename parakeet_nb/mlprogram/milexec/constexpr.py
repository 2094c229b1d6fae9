"""Weight decompression: the ``constexpr_*`` ops, evaluated once when a program is prepared.

Compressed Core ML weights (``coremltools.optimize.coreml``: palettization, linear
quantization, pruning, and their joint forms) are stored as ``const`` inputs of
``constexpr_*`` ops; Core ML decompresses them at load time or at run time.
coremltools' milproto loader leaves those ops' values unset, so the executor computes them
here, from the op definitions (coremltools ``converters/mil/mil/ops/defs/iOS16/constexpr_ops.py``
and ``defs/iOS18/compression.py``), not by calling coremltools' own ``decompress``:

* ``constexpr_affine_dequantize`` (iOS16): ``scale * (quantized_data - zero_point)``, a scalar
  or a vector along ``axis``;
* ``constexpr_blockwise_shift_scale`` (iOS18): ``scale * (data - offset)`` where ``scale`` and
  ``offset`` hold one value per block, ``block_size[i] = data.shape[i] / scale.shape[i]``;
* ``constexpr_lut_to_dense``: iOS16, ``lut[index]`` with the indices packed ``log2(len(lut))``
  bits each, least significant bit first, in a ``uint8`` vector, reshaped to ``shape``; iOS18,
  per-block look-up tables ``lut[g_0, ..., g_{K-1}, index, :]`` (``g_i = i // block_size[i]``,
  ``block_size[i] = indices.shape[i] / lut.shape[i]``), and with ``VECTOR_SIZE > 1`` each
  index writes its vector along ``vector_axis``;
* ``constexpr_sparse_to_dense``: zeros except where the mask is set, which take
  ``nonzero_data`` in row-major order (iOS16: a bit-packed ``uint8`` mask and ``shape``;
  iOS18: a ``uint1`` mask of the output's shape);
* ``constexpr_lut_to_sparse`` and ``constexpr_sparse_blockwise_shift_scale`` (iOS18): the same
  on the nonzero entries only; they return ``(mask, nonzero_data)`` for a following
  ``constexpr_sparse_to_dense`` (with vectors, the mask repeated ``VECTOR_SIZE`` times along
  ``vector_axis``);
* ``constexpr_cast``: ``source_val`` (fp16) cast to ``output_dtype``.

Floating results are computed in float64 and rounded once to the output dtype: the exact
decompressed weight, as stored. Sub-byte dtypes (``uint1`` ... ``uint6``, ``int4``) arrive
from the loader unpacked, one value per ``uint8``/``int8`` element.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from parakeet_nb.mlprogram.milexec.core import STORAGE_DTYPES, along_axis

Inputs = Mapping[str, Any]


def _float_out(value: np.ndarray, like: np.ndarray) -> np.ndarray:
    """``value`` (float64) rounded once to the float dtype of ``like`` (the scale or the LUT)."""
    return np.asarray(value, dtype=np.float64).astype(np.asarray(like).dtype)


def _blockwise(param: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """A per-block ``param`` repeated to ``shape`` (each dimension a whole number of blocks)."""
    param = np.asarray(param, dtype=np.float64)
    for axis, (n, g) in enumerate(zip(shape, param.shape)):
        param = np.repeat(param, n // g, axis=axis)
    return param


def _unpack_bits(packed: np.ndarray, nbits: int, count: int) -> np.ndarray:
    """``count`` unsigned ``nbits``-bit fields packed least significant bit first (iOS16 layout)."""
    bits = np.unpackbits(np.asarray(packed, dtype=np.uint8), bitorder="little")[: nbits * count]
    weights = (1 << np.arange(nbits)).astype(np.int64)
    return bits.reshape(count, nbits).astype(np.int64) @ weights


def _sparse_to_dense(nonzero: np.ndarray, mask: np.ndarray) -> np.ndarray:
    out = np.zeros(mask.shape, dtype=np.asarray(nonzero).dtype)
    out[mask != 0] = nonzero
    return out


def _lut_to_dense(indices: np.ndarray, lut: np.ndarray, vector_axis: Any) -> np.ndarray:
    indices = np.asarray(indices).astype(np.intp)
    k = indices.ndim
    groups = tuple(
        (np.arange(n) // (n // g)).reshape([n if j == i else 1 for j in range(k)])
        for i, (n, g) in enumerate(zip(indices.shape, lut.shape[:k]))
    )
    values = lut[groups + (indices,)]  # indices.shape + (VECTOR_SIZE,)
    if values.shape[-1] == 1:
        return values[..., 0]
    axis = int(vector_axis) % k
    out_shape = list(indices.shape)
    out_shape[axis] *= values.shape[-1]
    return np.moveaxis(values, -1, axis + 1).reshape(out_shape)


def _affine_dequantize(x: Inputs) -> tuple[np.ndarray, ...]:
    q = np.asarray(x["quantized_data"])
    axis = int(x["axis"])
    zp, scale = along_axis(x["zero_point"], q.ndim, axis), along_axis(x["scale"], q.ndim, axis)
    return (_float_out(scale * (q.astype(np.float64) - zp), x["scale"]),)


def _blockwise_shift_scale(x: Inputs) -> tuple[np.ndarray, ...]:
    data = np.asarray(x["data"], dtype=np.float64)
    offset = 0.0 if x.get("offset") is None else _blockwise(x["offset"], data.shape)
    return (_float_out(_blockwise(x["scale"], data.shape) * (data - offset), x["scale"]),)


def _lut_to_dense_any(x: Inputs) -> tuple[np.ndarray, ...]:
    lut = np.asarray(x["lut"])
    if "shape" in x:  # iOS16: a flat LUT and bit-packed indices
        shape = tuple(int(d) for d in np.asarray(x["shape"]))
        count = int(np.prod(shape))
        nbits = int(np.log2(lut.size))
        return (lut[_unpack_bits(x["indices"], nbits, count)].reshape(shape),)
    return (_lut_to_dense(x["indices"], lut, x.get("vector_axis")),)


def _sparse_to_dense_any(x: Inputs) -> tuple[np.ndarray, ...]:
    nonzero = np.asarray(x["nonzero_data"])
    if "shape" in x:  # iOS16: a bit-packed mask and the output shape
        shape = tuple(int(d) for d in np.asarray(x["shape"]))
        count = int(np.prod(shape))
        mask = _unpack_bits(x["mask"], 1, count).reshape(shape)
        return (_sparse_to_dense(nonzero, mask),)
    return (_sparse_to_dense(nonzero, np.asarray(x["mask"])),)


def _lut_to_sparse(x: Inputs) -> tuple[np.ndarray, ...]:
    mask = np.asarray(x["indices_mask"])
    lut = np.asarray(x["lut"])
    dense = _lut_to_dense(_sparse_to_dense(x["indices_nonzero_data"], mask), lut, x.get("vector_axis"))
    if lut.shape[-1] > 1:
        mask = np.repeat(mask, lut.shape[-1], axis=int(x["vector_axis"]) % mask.ndim)
    return mask, dense[mask != 0]


def _sparse_blockwise_shift_scale(x: Inputs) -> tuple[np.ndarray, ...]:
    mask = np.asarray(x["data_mask"])
    data = _sparse_to_dense(np.asarray(x["nonzero_data"], dtype=np.float64), mask)
    offset = 0.0 if x.get("offset") is None else _blockwise(x["offset"], mask.shape)
    dense = _blockwise(x["scale"], mask.shape) * (data - offset)
    return mask, _float_out(dense[mask != 0], x["scale"])


def _cast(x: Inputs) -> tuple[np.ndarray, ...]:
    return (np.asarray(x["source_val"]).astype(STORAGE_DTYPES[str(x["output_dtype"])]),)


#: op type -> ``inputs -> outputs``; inputs by parameter name (absent optional ones left out).
DECOMPRESSORS: dict[str, Callable[[Inputs], tuple[np.ndarray, ...]]] = {
    "constexpr_affine_dequantize": _affine_dequantize,
    "constexpr_blockwise_shift_scale": _blockwise_shift_scale,
    "constexpr_cast": _cast,
    "constexpr_lut_to_dense": _lut_to_dense_any,
    "constexpr_lut_to_sparse": _lut_to_sparse,
    "constexpr_sparse_blockwise_shift_scale": _sparse_blockwise_shift_scale,
    "constexpr_sparse_to_dense": _sparse_to_dense_any,
}


def decompress(op_type: str, inputs: Inputs) -> tuple[np.ndarray, ...]:
    """The outputs of one ``constexpr_*`` op from its inputs' values (see the module docstring)."""
    return DECOMPRESSORS[op_type](inputs)
