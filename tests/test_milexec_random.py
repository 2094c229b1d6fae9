"""The random ops and ``non_zero`` of the MIL reference executor.

Draws are numpy's, not Core ML's: degenerate parameters are checked value by value, the
rest by the statistics of a large seeded draw (within a few standard errors of the
definition's mean, variance or class frequencies; seeded, so deterministic).
"""

from __future__ import annotations

import numpy as np
import pytest

from parakeet_nb import _quiet

_quiet.import_heavy()

import coremltools as ct  # noqa: E402
from coremltools.converters.mil import Builder as mb  # noqa: E402
from coremltools.converters.mil.mil import types  # noqa: E402

from parakeet_nb.mlprogram.milexec import (  # noqa: E402
    MilExecutor,
    UndefinedBehaviorError,
    UnsupportedOpError,
    run_program,
)

pytestmark = pytest.mark.usefixtures("one_blas_thread")

_MB_DTYPES = {np.dtype(np.float16): types.fp16, np.dtype(np.float32): types.fp32,
              np.dtype(np.int32): types.int32, np.dtype(np.bool_): types.bool}
N = 200_000


def build(fn, *arrays: np.ndarray, opset=ct.target.iOS17):
    specs = [mb.TensorSpec(shape=a.shape, dtype=_MB_DTYPES[a.dtype]) for a in arrays]
    return mb.program(input_specs=specs, opset_version=opset)(fn)


def run(fn, *arrays: np.ndarray, opset=ct.target.iOS17, numerics="fp32"):
    """Build and run; one output comes back as an array, several as a tuple."""
    prog = build(fn, *arrays, opset=opset)
    names = fn.__code__.co_varnames[: len(arrays)]
    out = list(run_program(prog, dict(zip(names, arrays)), numerics=numerics).values())
    return out[0] if len(out) == 1 else tuple(out)


DUMMY = np.zeros(1, np.float32)  # a program needs an input; the random ops ignore it


def draw(op: str, shape=(N,), numerics="fp32", **params):
    """One run of ``op`` with a const ``shape`` (its output alongside the dummy input)."""
    def prog(x):
        return mb.add(x=x, y=0.0), getattr(mb, op)(shape=np.array(shape, np.int32), **params)
    return run(prog, DUMMY, numerics=numerics)[1]


def categorical(x: np.ndarray, **params) -> np.ndarray:
    return run(lambda x: mb.random_categorical(x=x, **params), x)


# ------------------------------------------------------------------------------------
# degenerate parameters: exact values
# ------------------------------------------------------------------------------------

def test_degenerate_parameters_are_exact():
    for seed in (-1, 3):
        np.testing.assert_array_equal(draw("random_bernoulli", (2, 1, 3), prob=1.0, seed=seed), np.ones((2, 1, 3)))
        np.testing.assert_array_equal(draw("random_bernoulli", (3, 2), prob=0.0, seed=seed), np.zeros((3, 2)))
        np.testing.assert_array_equal(draw("random_normal", (4, 5), mean=1.5, stddev=0.0, seed=seed),
                                      np.full((4, 5), 1.5))
        np.testing.assert_array_equal(draw("random_uniform", (2, 2, 2), low=-2.25, high=-2.25, seed=seed),
                                      np.full((2, 2, 2), -2.25))
    out = draw("random_bernoulli", (3, 4), prob=np.float16(1.0))
    assert out.dtype == np.float16 and out.shape == (3, 4) and np.all(out == 1)


def test_empty_dimension_gives_empty_tensor():
    assert draw("random_uniform", (3, 0, 2)).shape == (3, 0, 2)


# ------------------------------------------------------------------------------------
# seeds
# ------------------------------------------------------------------------------------

@pytest.mark.parametrize("op, params", [
    ("random_bernoulli", {"prob": 0.3}), ("random_normal", {"mean": 1.0, "stddev": 2.0}),
    ("random_uniform", {"low": -1.0, "high": 3.0}),
])
def test_fixed_seed_repeats_and_seeds_differ(op, params):
    prog = build(lambda x: (mb.add(x=x, y=0.0), getattr(mb, op)(shape=np.array([64], np.int32), seed=7, **params)),
                 DUMMY)
    ex = MilExecutor(prog)
    a, b = (list(ex.run({"x": DUMMY}).values())[1] for _ in range(2))
    np.testing.assert_array_equal(a, b)  # same op, two runs
    np.testing.assert_array_equal(a, draw(op, (64,), seed=7, **params))  # same seed, another program
    assert not np.array_equal(a, draw(op, (64,), seed=8, **params))
    unseeded = draw(op, (64,), **params)
    assert not np.array_equal(unseeded, draw(op, (64,), **params))


def test_categorical_seed():
    logits = np.zeros((2, 10), np.float32)
    a = categorical(logits, size=50, seed=1)
    np.testing.assert_array_equal(a, categorical(logits, size=50, seed=1))
    assert not np.array_equal(a, categorical(logits, size=50, seed=2))


# ------------------------------------------------------------------------------------
# statistics of large seeded draws
# ------------------------------------------------------------------------------------

def test_bernoulli_frequency():
    p = 0.3
    out = draw("random_bernoulli", prob=p, seed=11)
    assert set(np.unique(out)) == {0.0, 1.0}
    assert abs(out.mean() - p) < 4 * np.sqrt(p * (1 - p) / N)


def test_normal_mean_and_variance():
    mean, sd = -1.5, 2.5
    out = draw("random_normal", mean=mean, stddev=sd, seed=12).astype(np.float64)
    assert abs(out.mean() - mean) < 4 * sd / np.sqrt(N)
    # the variance of the sample variance of a normal is 2 sd^4 / (N - 1)
    assert abs(out.var(ddof=1) - sd**2) < 4 * sd**2 * np.sqrt(2 / (N - 1))
    assert abs(np.mean(np.abs(out - mean) < sd) - 0.6826894921) < 4 * np.sqrt(0.68 * 0.32 / N)


def test_uniform_mean_variance_and_bounds():
    low, high = -1.0, 3.0
    out = draw("random_uniform", low=low, high=high, seed=13).astype(np.float64)
    assert out.min() >= low and out.max() < high
    w = high - low
    assert abs(out.mean() - (low + high) / 2) < 4 * w / np.sqrt(12 * N)
    # variance of (u - m)^2 for a uniform of width w: w^4/80 - w^4/144
    assert abs(out.var(ddof=1) - w**2 / 12) < 4 * np.sqrt((w**4 / 80 - w**4 / 144) / N)
    counts = np.histogram(out, bins=8, range=(low, high))[0]
    assert np.all(np.abs(counts - N / 8) < 4 * np.sqrt(N / 8 * 7 / 8))


def test_uniform_stays_below_high_in_fp16():
    """fp16 rounding would carry values just below ``high`` up to it; they stay below."""
    out = draw("random_uniform", (20_000,), low=np.float16(0.0), high=np.float16(1.0), seed=5)
    assert out.dtype == np.float16 and out.min() >= 0 and out.max() < 1
    assert out.max() == np.nextafter(np.float16(1), np.float16(0))  # the top bin is reached
    out = draw("random_uniform", (20_000,), numerics="fp16", low=2047.0, high=2048.0, seed=5)
    assert out.max() < 2048


def _check_frequencies(samples: np.ndarray, p: np.ndarray) -> None:
    n = samples.size
    freq = np.bincount(samples.astype(np.int64), minlength=p.size) / n
    assert freq.size == p.size
    np.testing.assert_array_less(np.abs(freq - p), 4 * np.sqrt(p * (1 - p) / n) + 1e-12)


def test_categorical_logits_and_probs():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 6)).astype(np.float32)
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    size = N // 2
    out = categorical(logits, size=size, mode="logits", seed=21)
    assert out.shape == (2, size) and out.dtype == np.float32
    for row in range(2):
        _check_frequencies(out[row], p[row])
    # probs need not sum to 1: the definition takes their log as logits
    weights = (3 * p).astype(np.float32)
    out = categorical(weights, size=size, mode="probs", seed=22)
    for row in range(2):
        _check_frequencies(out[row], p[row])


def test_categorical_degenerate_and_shapes():
    one_hot = np.array([[0, 0, 1, 0], [1, 0, 0, 0]], np.float32)
    np.testing.assert_array_equal(categorical(one_hot, mode="probs", size=7), [[2] * 7, [0] * 7])
    logits = np.array([[-np.inf, 0.5, -np.inf]], np.float32)
    np.testing.assert_array_equal(categorical(logits, size=5), [[1] * 5])
    out = categorical(np.zeros((2, 3, 4), np.float32))  # size defaults to 1
    assert out.shape == (2, 3, 1) and set(np.unique(out)) <= {0, 1, 2, 3}
    # zero-probability classes are never drawn
    out = categorical(np.array([[0, 1, 0, 1, 0]], np.float32), mode="probs", size=5000, seed=3)
    assert set(np.unique(out)) == {1.0, 3.0}


# ------------------------------------------------------------------------------------
# runtime shapes
# ------------------------------------------------------------------------------------

@pytest.mark.parametrize("op, params, value", [
    ("random_bernoulli", {"prob": 1.0}, 1.0), ("random_normal", {"mean": 2.0, "stddev": 0.0}, 2.0),
    ("random_uniform", {"low": 0.5, "high": 0.5}, 0.5),
])
def test_runtime_shape(op, params, value):
    def prog(shape):
        return getattr(mb, op)(shape=shape, **params)
    prog_ = build(prog, np.zeros(3, np.int32))
    assert all(not isinstance(d, int) for d in prog_.functions["main"].outputs[0].shape)
    ex = MilExecutor(prog_)
    for shape in ([2, 3, 4], [1, 5, 1]):
        out = list(ex.run({"shape": np.array(shape, np.int32)}).values())[0]
        np.testing.assert_array_equal(out, np.full(shape, value, np.float32))


def test_runtime_shape_from_another_tensor():
    x = np.zeros((3, 5), np.float32)
    out = run(lambda x: mb.random_uniform(shape=mb.shape(x=x), low=-1.0, high=1.0, seed=0), x)
    assert out.shape == (3, 5) and out.min() >= -1 and out.max() < 1


# ------------------------------------------------------------------------------------
# undefined parameters
# ------------------------------------------------------------------------------------

def test_undefined_parameters():
    with pytest.raises(UndefinedBehaviorError, match=r"prob = 1.5 is not a probability"):
        draw("random_bernoulli", (2,), prob=1.5)
    with pytest.raises(UndefinedBehaviorError, match=r"stddev = -1.0 is negative"):
        draw("random_normal", (2,), stddev=-1.0)
    with pytest.raises(UndefinedBehaviorError, match=r"low = 2.0 > high = 1.0"):
        draw("random_uniform", (2,), low=2.0, high=1.0)
    with pytest.raises(UndefinedBehaviorError, match=r"negative dimension in shape \[2, -1\]"):
        run(lambda shape: mb.random_uniform(shape=shape), np.array([2, -1], np.int32))
    with pytest.raises(UndefinedBehaviorError, match="probs must be finite and non-negative"):
        categorical(np.array([[0.5, -0.1, 0.6]], np.float32), mode="probs")
    with pytest.raises(UndefinedBehaviorError, match="probs are all zero"):
        categorical(np.zeros((1, 3), np.float32), mode="probs")
    with pytest.raises(UndefinedBehaviorError, match="logits are all -inf"):
        categorical(np.full((1, 3), -np.inf, np.float32))


def test_unknown_mode_is_refused():
    prog = build(lambda x: mb.random_categorical(x=x), np.zeros((1, 3), np.float32))
    op = next(o for o in prog.functions["main"].operations if o.op_type == "random_categorical")
    mode = next(o for o in prog.functions["main"].operations if o.outputs[0] is op.mode)
    mode.outputs[0]._sym_val.val = "gumbel"
    with pytest.raises(UnsupportedOpError, match="mode 'gumbel'"):
        run_program(prog, {"x": np.zeros((1, 3), np.float32)})


# ------------------------------------------------------------------------------------
# non_zero
# ------------------------------------------------------------------------------------

@pytest.mark.parametrize("x", [
    np.array([[3, 0, 0], [0, 4, 0], [5, 6, 0]], np.float32),
    np.random.default_rng(1).integers(-1, 2, size=(6, 1, 7)).astype(np.int32),
    np.random.default_rng(2).random((2, 3, 4, 5)) < 0.3,
    np.array([0.0, -0.0, np.nan, 1.0], np.float16),
    np.zeros((4, 5), np.float32),
    np.zeros((2, 0, 3), np.float32),
])
def test_non_zero(x):
    out = run(lambda x: mb.non_zero(x=x), x)
    assert out.dtype == np.int32
    np.testing.assert_array_equal(out, np.transpose(np.nonzero(x)))
    assert out.shape == (np.count_nonzero(x), x.ndim)
