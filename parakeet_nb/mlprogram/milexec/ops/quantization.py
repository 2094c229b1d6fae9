"""Activation quantization: ``quantize`` and ``dequantize`` (iOS17).

Definitions: coremltools ``converters/mil/mil/ops/defs/iOS17/quantization_ops.py``.
``scale`` and ``zero_point`` are scalars, or vectors along ``axis``; ``zero_point`` is 0
when absent.

* ``quantize``: ``clip(round(input / scale) + zero_point)`` to the range of ``output_dtype``
  (``int8`` or ``uint8``). ``round`` is round-half-to-even, as numpy's ``around`` in
  coremltools' reference (``coremltools/optimize/_utils.py``, ``quantize_by_scale_and_zp``);
  the definition does not name a tie rule. ``input / scale`` is computed in float64, so the
  only rounding is the one to an integer.
* ``dequantize``: ``scale * (input - zero_point)``, computed in float64 and rounded once to
  the output type.
"""

from __future__ import annotations

import numpy as np

from parakeet_nb.mlprogram.milexec.core import OpContext, along_axis, normalize_axis, register

_RANGES = {"int8": (-128, 127), "uint8": (0, 255)}


def _param(ctx: OpContext, name: str, rank: int) -> np.ndarray:
    """``scale``/``zero_point`` in float64, shaped to broadcast along ``axis``."""
    value = ctx.x(name)
    axis = normalize_axis(int(ctx.attr("axis")), rank, ctx) if np.ndim(value) else 0
    return along_axis(value, rank, axis)


@register("quantize", params=("input", "zero_point", "scale", "axis", "output_dtype"), family="quantization")
def op_quantize(ctx: OpContext) -> np.ndarray:
    x = np.asarray(ctx.x("input"), dtype=np.float64)
    dtype = ctx.out_dtype()
    if dtype not in _RANGES:
        raise ctx.unsupported(f"output_dtype {dtype}")
    q = np.round(x / _param(ctx, "scale", x.ndim))
    if ctx.has("zero_point"):
        q = q + _param(ctx, "zero_point", x.ndim)
    if np.isnan(q).any():
        raise ctx.undefined("quantize of NaN (no integer result is defined)")
    low, high = _RANGES[dtype]
    return np.clip(q, low, high).astype(ctx.out_compute_dtype())


@register("dequantize", params=("input", "zero_point", "scale", "axis"), family="quantization")
def op_dequantize(ctx: OpContext) -> np.ndarray:
    q = np.asarray(ctx.x("input"), dtype=np.float64)
    if ctx.has("zero_point"):
        q = q - _param(ctx, "zero_point", q.ndim)
    return (_param(ctx, "scale", q.ndim) * q).astype(np.float32)
