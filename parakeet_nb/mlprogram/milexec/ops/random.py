"""Random ops: ``random_bernoulli``, ``random_normal``, ``random_uniform`` and ``random_categorical``.

Definitions: coremltools ``coremltools/converters/mil/mil/ops/defs/iOS15/random.py`` (no later
opset redefines them, and none has a ``dtype`` parameter: the output type is that of
``prob``/``mean``/``low`` or of ``x``).

**The distributions follow the definitions, but the random streams are numpy's, not Core
ML's.** Core ML's generator is not public, so no draw here can match a Core ML draw value by
value; only the distribution is the same. A ``seed >= 0`` seeds ``np.random.default_rng(seed)``
afresh for every run of the op, so a seeded op gives the same values on every run (two
ops with the same seed and shape give the same values). ``seed == -1`` (the default) draws
from a fresh unseeded generator, different on every run. Other negative seeds are seeds
like any other (mapped to ``seed mod 2**32``, since numpy takes only non-negative seeds).
Only degenerate parameters give values every backend must agree on: ``prob`` 0 or 1,
``stddev`` 0, ``low == high`` and a categorical distribution with a single possible class.

``shape`` may be a const or a tensor computed at run time (the output shape is then
symbolic). Parameters for which the definition gives no distribution raise
:class:`~parakeet_nb.mlprogram.milexec.core.UndefinedBehaviorError`: a negative dimension,
``prob`` outside ``[0, 1]``, ``stddev < 0``, ``low > high``, non-finite parameters,
categorical probabilities that are negative or all zero, logits that are NaN, ``+inf`` or
all ``-inf``. A zero dimension gives an empty tensor (the definition asks for
``shape[k] > 0``; an empty tensor is the only possible result).

Values are drawn in float64 and rounded to the output type by the executor, except
``random_uniform``, which rounds itself so that no value reaches ``high`` (see there).
"""

from __future__ import annotations

import math

import numpy as np

from parakeet_nb.mlprogram.milexec.core import OpContext, round_to_fp16, register


def _generator(ctx: OpContext) -> np.random.Generator:
    """numpy's generator for this run: seeded by ``seed`` unless it is ``-1`` (the default)."""
    seed = int(ctx.attr("seed", -1))
    if seed == -1:
        return np.random.default_rng()
    return np.random.default_rng(seed % 2**32)


def _shape(ctx: OpContext) -> tuple[int, ...]:
    """The target output shape (``shape`` input, const or computed at run time)."""
    shape = ctx.ints("shape")
    if any(d < 0 for d in shape):
        raise ctx.undefined(f"negative dimension in shape {list(shape)}")
    return shape


def _param(ctx: OpContext, name: str, default: float) -> float:
    value = float(ctx.attr(name, default))
    if not math.isfinite(value):
        raise ctx.undefined(f"{name} = {value} (the distribution needs finite parameters)")
    return value


@register("random_bernoulli", params=("shape", "prob", "seed"), family="random")
def op_random_bernoulli(ctx: OpContext) -> np.ndarray:
    """``1`` with probability ``prob`` (default 0.5), else ``0``, in a tensor of shape ``shape``.

    Each value is ``u < prob`` for ``u`` uniform in ``[0, 1)``: exactly all ones for
    ``prob = 1`` and all zeros for ``prob = 0``.
    """
    shape = _shape(ctx)
    prob = _param(ctx, "prob", 0.5)
    if not 0.0 <= prob <= 1.0:
        raise ctx.undefined(f"prob = {prob} is not a probability in [0, 1]")
    return (_generator(ctx).random(shape) < prob).astype(np.float32)


@register("random_normal", params=("shape", "mean", "stddev", "seed"), family="random")
def op_random_normal(ctx: OpContext) -> np.ndarray:
    """Normal draws ``mean + stddev * z`` (defaults 0 and 1), ``z`` standard normal, of shape
    ``shape``; exactly ``mean`` everywhere for ``stddev = 0``."""
    shape = _shape(ctx)
    mean = _param(ctx, "mean", 0.0)
    stddev = _param(ctx, "stddev", 1.0)
    if stddev < 0:
        raise ctx.undefined(f"stddev = {stddev} is negative")
    z = _generator(ctx).standard_normal(shape)
    return mean + stddev * z


@register("random_uniform", params=("shape", "low", "high", "seed"), family="random")
def op_random_uniform(ctx: OpContext) -> np.ndarray:
    """Uniform draws over the half-open ``[low, high)`` (defaults 0 and 1) of shape ``shape``;
    exactly ``low`` everywhere when ``low == high`` (the definition says so).

    ``low + (high - low) * u`` is computed in float64 and rounded to the output type
    (float16 when the output is fp16-typed or the numerics are fp16, else float32); a value
    that rounding carried up to ``high`` becomes the largest representable value below it,
    so the interval stays half-open. ``high < low`` is undefined by the definition.
    """
    shape = _shape(ctx)
    low = _param(ctx, "low", 0.0)
    high = _param(ctx, "high", 1.0)
    if low > high:
        raise ctx.undefined(f"low = {low} > high = {high} (undefined by the definition)")
    if low == high:
        return np.full(shape, low, dtype=np.float32)
    values = low + (high - low) * _generator(ctx).random(shape)
    if ctx.rounds_to_fp16():
        values = round_to_fp16(values, ctx.flush_subnormals)
        below = np.nextafter(np.float16(high), np.float16(-np.inf)).astype(np.float32)
    else:
        values = values.astype(np.float32)
        below = np.nextafter(np.float32(high), np.float32(-np.inf))
    return np.where(values >= np.float32(high), below, values)


@register("random_categorical", params=("x", "mode", "size", "seed"), family="random")
def op_random_categorical(ctx: OpContext) -> np.ndarray:
    """``size`` class indices (as floats) drawn with replacement from each distribution of ``x``.

    ``x`` is ``[*D, C]``: every vector along the last axis is one distribution over ``C``
    classes, given as logits (``mode="logits"``, the default: probabilities
    ``softmax(x)``) or as probabilities (``mode="probs"``: the definition takes their log
    as logits, so a vector is normalized by its sum). The output is ``[*D, size]`` of the
    type of ``x`` (``size`` defaults to 1). A class of probability zero (logit ``-inf``) is
    never drawn; a distribution with one possible class always gives its index.
    """
    x = np.asarray(ctx.x("x"), dtype=np.float64)
    mode = str(ctx.attr("mode", "logits"))
    size = int(ctx.attr("size", 1))
    if size < 0:
        raise ctx.undefined(f"size = {size} is negative")
    if x.ndim == 0 or x.shape[-1] == 0:
        raise ctx.undefined(f"x of shape {list(x.shape)} has no classes along its last axis")
    rows = x.reshape(-1, x.shape[-1])
    if mode == "probs":
        if np.isnan(rows).any() or (rows < 0).any() or np.isinf(rows).any():
            raise ctx.undefined("probs must be finite and non-negative")
        totals = rows.sum(axis=1, keepdims=True)
        if (totals == 0).any():
            raise ctx.undefined("a distribution whose probs are all zero")
        p = rows / totals
    elif mode == "logits":
        if np.isnan(rows).any() or (rows == np.inf).any():
            raise ctx.undefined("logits must not be NaN or +inf")
        top = rows.max(axis=1, keepdims=True)
        if (top == -np.inf).any():
            raise ctx.undefined("a distribution whose logits are all -inf")
        e = np.exp(rows - top)
        p = e / e.sum(axis=1, keepdims=True)
    else:
        raise ctx.unsupported(f"mode {mode!r} (the definition allows 'logits' and 'probs')")
    cdf = np.cumsum(p, axis=1)
    cdf /= cdf[:, -1:]  # the last entry is exactly 1, so u < 1 never passes the last possible class
    u = _generator(ctx).random((rows.shape[0], size))
    idx = np.stack([np.searchsorted(c, r, side="right") for c, r in zip(cdf, u)]) if rows.shape[0] else u
    return idx.astype(np.float32).reshape(x.shape[:-1] + (size,))
