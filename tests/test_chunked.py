"""The chunked preprocessor: contract, NeMo parity, seams, tracing and the converted program."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from parakeet_nb.frontend import mel_reference as ref
from parakeet_nb.frontend.chunked import (
    ChunkedPreprocessor,
    dft_matrices_f64,
    fp16_compute_precision,
    island_op_names,
    to_chunks,
)
from parakeet_nb.model.components import Preprocessor
from parakeet_nb.frontend.recipe import WINDOW_SAMPLES, build_preprocessor
from parakeet_nb.study.parity import SEAM_FRAMES, speech_clips

ANE_MAX_AXIS = 16384
EDGE_LENGTHS = [1, 159, 160, 161, 15999, 16000, 16001, 239999, 240000]


@pytest.fixture(scope="module")
def nemo():
    return Preprocessor(build_preprocessor()).eval()


@pytest.fixture(scope="module")
def chunked():
    return ChunkedPreprocessor().eval()


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    return speech_clips()["speech"]


def _run(module, x: np.ndarray):
    chunks, length = to_chunks(x)
    with torch.no_grad():
        mel, mel_length = module(chunks, length)
    return mel[0].double().numpy(), int(mel_length[0])


def _nemo(nemo, x: np.ndarray):
    chunks, length = to_chunks(x)
    with torch.no_grad():
        mel, mel_length = nemo(chunks.reshape(1, -1), length)
    return mel[0].double().numpy(), int(mel_length[0])


def _exact(x: np.ndarray):
    window = np.zeros(WINDOW_SAMPLES, np.float32)
    window[: len(x)] = x
    return ref.mel_float64(window, len(x))


# ---------------------------------------------------------------- contract
def test_to_chunks_layout_and_padding():
    x = np.arange(1, 20001, dtype=np.float32)
    chunks, length = to_chunks(x)
    assert chunks.shape == (1, 15, 16000) and chunks.dtype == torch.float32
    assert length.dtype == torch.int32 and length.tolist() == [20000]
    assert chunks[0, 0, 0] == 1 and chunks[0, 1, 0] == 16001 and chunks[0, 1, 3999] == 20000
    assert not chunks.reshape(-1)[20000:].any()
    chunks_t, length_t = to_chunks(torch.from_numpy(x).double())
    assert torch.equal(chunks_t, chunks) and torch.equal(length_t, length)


@pytest.mark.parametrize(
    "waveform, match",
    [
        (np.zeros((2, 100), np.float32), "1-D"),
        (np.zeros(0, np.float32), "1..240000"),
        (np.zeros(WINDOW_SAMPLES + 1, np.float32), "1..240000"),
        (np.zeros(100, np.int16), "float"),
        (np.array([0.0, np.nan], np.float32), "NaN"),
        (np.array([0.0, np.inf], np.float32), "NaN or inf"),
        ([0.0, 1.0], "numpy array or torch tensor"),
    ],
)
def test_to_chunks_rejects_bad_waveforms(waveform, match):
    with pytest.raises(ValueError, match=match):
        to_chunks(waveform)


@pytest.mark.parametrize(
    "chunks, length, match",
    [
        (torch.zeros(1, 240000), torch.tensor([1], dtype=torch.int32), r"shape \[B, 15, 16000\]"),
        (torch.zeros(1, 15, 16000, dtype=torch.float64), torch.tensor([1], dtype=torch.int32), "float32"),
        (torch.zeros(1, 15, 16000), torch.tensor([0], dtype=torch.int32), r"\[1, 240000\]"),
        (torch.zeros(1, 15, 16000), torch.tensor([240001], dtype=torch.int32), "240001"),
        (torch.zeros(1, 15, 16000), torch.tensor([1.0]), "int32"),
        (torch.zeros(2, 15, 16000), torch.tensor([1], dtype=torch.int32), r"shape \[2\]"),
        (torch.full((1, 15, 16000), float("nan")), torch.tensor([5], dtype=torch.int32), "NaN"),
        (np.zeros((1, 15, 16000), np.float32), torch.tensor([5], dtype=torch.int32), "torch.Tensor"),
    ],
)
def test_bad_inputs_raise_value_error_in_eager_mode(chunked, chunks, length, match):
    with pytest.raises(ValueError, match=match):
        chunked(chunks, length)


def test_output_contract(chunked):
    chunks, length = to_chunks(np.ones(48000, np.float32))
    mel, mel_length = chunked(chunks, length)
    assert mel.shape == (1, 128, 1501) and mel.dtype == torch.float32
    assert mel_length.dtype == torch.int32 and mel_length.tolist() == [300]


def test_dft_matrices_reproduce_the_rfft_power():
    """The folded half-DFT gives |rfft(window * frame)|^2 for bins 1..256 (float64)."""
    rng = np.random.default_rng(0)
    frame = rng.standard_normal(400)  # samples 160 f - 200 .. 160 f + 199
    cos, sin = dft_matrices_f64()
    upper, lower = frame[200:], frame[:200][::-1]
    re, im = (upper + lower) @ cos, (upper - lower) @ sin
    full = np.zeros(512)
    full[56:456] = frame
    spec = np.fft.rfft(full * ref.frame_window_f64())
    np.testing.assert_allclose(re**2 + im**2, np.abs(spec[1:257]) ** 2, rtol=1e-10, atol=1e-10)


def _float32_dft(module, e: torch.Tensor, o: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The float32 design's ``Re X, Im X`` (bins 1..256) of taps ``e, o [B, F, 200]``."""
    re = torch.cat(module._dft_fp32(e, module.dft_cos_exact, module.dft_cos_low, module.dft_cos_rest), dim=2)
    im = torch.cat(module._dft_fp32(o, module.dft_sin_exact, module.dft_sin_low, module.dft_sin_rest), dim=2)
    return re, im


@pytest.mark.parametrize("amplitude", [1e-4, 0.01, 1.0, 3.0])
def test_low_bins_of_the_float32_dft_are_exact(chunked, amplitude):
    """Bins 1..72: within a few float32 roundings of the float64 DFT of the same taps.

    A plain float32 matmul misses by ~eps * (largest partial sum): for a full-scale tone,
    hundreds of ulps of the small bins. Frames: noise, and tones (the hard case).
    """
    rng = np.random.default_rng(3)
    j = np.arange(200) + 0.5
    frames = [rng.uniform(-1, 1, (8, 2, 200))]
    for f in (100.0, 440.0, 3000.0, 7000.0):
        phase = rng.uniform(0, 6.3, (4, 1, 1))
        frames.append(np.concatenate([np.cos(2 * np.pi * f * j / 16000 + phase), np.sin(2 * np.pi * f * j / 16000 + phase)], 1))
    taps = torch.from_numpy((amplitude * np.concatenate(frames)).astype(np.float32))  # [24, 2, 200]
    e, o = taps[None, :, 0], taps[None, :, 1]
    with torch.no_grad():
        re, im = _float32_dft(chunked, e, o)
    cos, sin = dft_matrices_f64()
    exact_re = e.double().numpy() @ cos
    exact_im = o.double().numpy() @ sin
    n = chunked_module_exact_columns()
    for got, want, x in ((re, exact_re, e), (im, exact_im, o)):
        got = got.double().numpy()
        scale = np.abs(x.double().numpy()).max(axis=2, keepdims=True)  # per frame
        # exact columns: ~2 roundings of the value plus the float32 rounding of W (~eps * |x|)
        tol = 4 * 2.0**-24 * (np.abs(want[..., :n]) + 8 * scale)
        assert np.all(np.abs(got[..., :n] - want[..., :n]) <= tol)
        # the rest: a plain float32 matmul (~eps * sum |x| |W|)
        assert np.abs(got[..., n:] - want[..., n:]).max() <= 1e-4 * scale.max()


def chunked_module_exact_columns() -> int:
    from parakeet_nb.frontend.chunked import EXACT_COLUMNS

    return EXACT_COLUMNS


def test_exact_part_is_exact_in_any_order(chunked):
    """``x_hi @ W_hi`` of the split is exact in float32 (the premise of design step 4)."""
    from parakeet_nb.frontend.chunked import EXACT_COLUMNS, SPLIT_SCALE

    rng = np.random.default_rng(4)
    x = torch.from_numpy((rng.uniform(-1, 1, (1, 64, 200)) * 10.0 ** rng.uniform(-6, 0.6, (1, 64, 1))).astype(np.float32))
    c = x.abs().amax(dim=2, keepdim=True) * SPLIT_SCALE
    x_hi = (x + c) - c
    w_hi = chunked.dft_cos_exact[:, :EXACT_COLUMNS]
    assert torch.equal(x_hi + (x - x_hi), x)
    f32 = torch.matmul(x_hi, w_hi).double()
    f32_reversed = torch.matmul(x_hi.flip(2), w_hi.flip(0)).double()
    f64 = torch.matmul(x_hi.double(), w_hi.double())
    assert torch.equal(f32, f64) and torch.equal(f32_reversed, f64)


def test_full_scale_tones_as_close_to_float64_as_nemo(nemo, chunked):
    """The tones that a plain float32 DFT got wrong (sine_440: 4.9e-3 vs NeMo's 1.1e-3)."""
    t = np.arange(WINDOW_SAMPLES) / 16000
    for freq in (100, 440, 1000):
        x = np.sin(2 * np.pi * freq * t + 0.3).astype(np.float32)
        mel, _ = _run(chunked, x)
        mel_nemo, _ = _nemo(nemo, x)
        exact, n = _exact(x)
        assert np.abs(mel - exact)[:, :n].max() <= np.abs(mel_nemo - exact)[:, :n].max(), freq


# ---------------------------------------------------------------- parity
@pytest.mark.parametrize("length", EDGE_LENGTHS)
def test_parity_with_nemo_at_edge_lengths(nemo, chunked, length):
    x = (0.1 * np.random.default_rng(length).standard_normal(length)).astype(np.float32)
    mel, n = _run(chunked, x)
    mel_nemo, n_nemo = _nemo(nemo, x)
    exact, n_exact = _exact(x)
    assert n == n_nemo == n_exact == length // 160
    assert np.isfinite(mel).all() and not mel[:, n:].any()
    err_exact = np.abs(mel - exact).max()
    assert err_exact <= max(np.abs(mel_nemo - exact).max(), 1e-6)  # at least as close as NeMo
    assert np.abs(mel - mel_nemo).max() < 3e-4


def test_speech_parity(nemo, chunked, speech):
    mel, n = _run(chunked, speech)
    mel_nemo, _ = _nemo(nemo, speech)
    exact, _ = _exact(speech)
    assert np.abs(mel - mel_nemo).max() < 1e-4
    assert np.abs(mel - exact).max() <= np.abs(mel_nemo - exact).max()


def test_no_error_concentrated_at_seams(chunked, speech):
    """Frames whose window spans a chunk boundary are no worse than the others."""
    x = speech + np.float32(0.01) * np.random.default_rng(5).standard_normal(len(speech)).astype(np.float32)
    mel, n = _run(chunked, x)
    exact, _ = _exact(x)
    per_frame = np.abs(mel - exact)[:, :n].max(axis=0)
    seam = SEAM_FRAMES[SEAM_FRAMES < n]
    rest = np.setdiff1d(np.arange(n), seam)
    assert len(seam) == 42
    assert per_frame[seam].max() <= 2.0 * per_frame[rest].max()


@pytest.mark.parametrize("at", [15998, 15999, 16000, 16001, 16199, 16200, 16201, 224000])
def test_impulse_at_a_seam(chunked, at):
    """A click right at (or next to) a chunk boundary lands in the right frames."""
    x = (1e-3 * np.random.default_rng(at).standard_normal(WINDOW_SAMPLES)).astype(np.float32)
    x[at] += 0.9
    mel, _ = _run(chunked, x)
    exact, _ = _exact(x)
    assert np.abs(mel - exact).max() < 1e-3


def test_batch_with_mixed_lengths_equals_single_runs(chunked):
    rng = np.random.default_rng(11)
    lengths = [16001, 400, 240000]
    waves = [(0.2 * rng.standard_normal(n)).astype(np.float32) for n in lengths]
    singles = [to_chunks(w) for w in waves]
    batch = torch.cat([c for c, _ in singles]), torch.cat([ln for _, ln in singles])
    with torch.no_grad():
        mel_b, len_b = chunked(*batch)
        for i, (c, ln) in enumerate(singles):
            mel_1, len_1 = chunked(c, ln)
            assert int(len_b[i]) == int(len_1[0])
            torch.testing.assert_close(mel_b[i], mel_1[0], rtol=0, atol=1e-5)


def test_one_trace_serves_every_length(chunked):
    x = (0.1 * np.random.default_rng(2).standard_normal(WINDOW_SAMPLES)).astype(np.float32)
    example = to_chunks(x)
    traced = torch.jit.trace(chunked, example)
    for length in (1, 161, 16000, 239999):
        chunks, ln = to_chunks(x[:length])
        with torch.no_grad():
            mel_eager, len_eager = chunked(chunks, ln)
            mel_traced, len_traced = traced(chunks, ln)
        assert torch.equal(len_eager, len_traced)
        torch.testing.assert_close(mel_traced, mel_eager, rtol=0, atol=0)


@settings(max_examples=8, deadline=None)
@given(
    length=st.integers(min_value=1, max_value=WINDOW_SAMPLES),
    amplitude=st.sampled_from([1e-4, 0.01, 0.3, 1.0]),
    seed=st.integers(min_value=0, max_value=2**32 - 1),
    kind=st.sampled_from(["noise", "tone", "clicks"]),
)
def test_property_random_signals_match_the_exact_mel(nemo, chunked, length, amplitude, seed, kind):
    """On any length and signal, the chunked mel is about as close to the exact one as NeMo's.

    (Where a feature barely varies, float32 itself cannot resolve the normalisation, and
    NeMo's own error vs float64 can reach 0.1; the bound is relative to it.)
    """
    rng = np.random.default_rng(seed)
    t = np.arange(length) / 16000
    if kind == "noise":
        x = amplitude * rng.uniform(-1, 1, length)
    elif kind == "tone":
        x = amplitude * np.sin(2 * np.pi * rng.uniform(50, 7900) * t + rng.uniform(0, 6.3))
    else:
        x = np.zeros(length)
        x[rng.integers(0, length, size=1 + length // 4000)] = amplitude
    x = x.astype(np.float32)
    mel, n = _run(chunked, x)
    mel_nemo, n_nemo = _nemo(nemo, x)
    exact, n_exact = _exact(x)
    assert n == n_nemo == n_exact == length // 160
    assert np.isfinite(mel).all() and not mel[:, n:].any()
    assert np.abs(mel - exact).max() <= 2.0 * np.abs(mel_nemo - exact).max() + 1e-4


# ---------------------------------------------------------------- Core ML
def _convert(module, precision):
    from parakeet_nb import _quiet

    _quiet.import_heavy()
    import coremltools as ct

    example = to_chunks(np.zeros(WINDOW_SAMPLES, np.float32))
    traced = torch.jit.trace(module, example)
    return ct.convert(
        traced,
        inputs=[
            ct.TensorType(name="audio_chunks", shape=(1, 15, 16000), dtype=np.float32),
            ct.TensorType(name="audio_length", shape=(1,), dtype=np.int32),
        ],
        outputs=[ct.TensorType(name="mel"), ct.TensorType(name="mel_length")],
        convert_to="mlprogram",
        minimum_deployment_target=ct.target.iOS17,
        compute_precision=precision,
    )


def _widest_axes(function) -> list[tuple[str, str, tuple[int, ...]]]:
    """Every tensor each op takes or makes (consts included): (op type, var name, shape)."""
    seen = []
    for op in function.operations:
        values = list(op.inputs.values()) + list(op.outputs)
        for value in values:
            for var in value if isinstance(value, (list, tuple)) else [value]:
                shape = tuple(int(d) for d in getattr(var, "shape", ()) or ())
                seen.append((op.op_type, var.name, shape))
    return seen


def test_converted_program_has_no_axis_over_16384(chunked, tmp_path):
    from parakeet_nb import _quiet

    _quiet.import_heavy()
    import coremltools as ct

    from parakeet_nb.mlprogram.load import load_program

    model = _convert(chunked, ct.precision.FLOAT32)
    path = tmp_path / "chunked.mlpackage"
    model.save(str(path))
    main = load_program(path).main
    tensors = _widest_axes(main)
    assert len(tensors) > 100
    too_wide = [(t, n, s) for t, n, s in tensors if s and max(s) > ANE_MAX_AXIS]
    assert not too_wide, too_wide
    shapes = {n: s for _, n, s in tensors}
    assert shapes["audio_chunks"] == (1, 15, 16000) and shapes["mel"] == (1, 128, 1501)
    assert {op.op_type for op in main.operations} >= {"linear", "matmul", "log", "reverse", "select"}
    # the exact split of the low-bin DFT, (x + c) - c with c from a per-frame max, survives conversion
    assert {op.op_type for op in main.operations} >= {"abs", "reduce_max", "sub"}


def test_fp16_variant_converts_with_a_float32_island(tmp_path):
    """With fp16_compute_precision(), the front end stays float32 and everything after is float16."""
    from parakeet_nb import _quiet

    _quiet.import_heavy()
    from coremltools.converters.mil.mil import types

    model = _convert(ChunkedPreprocessor(fp16_safe=True).eval(), fp16_compute_precision())
    main = model._mil_program.functions["main"]
    ops = [op for op in main.operations if op.op_type != "const"]
    dtype = {op.name: types.builtin_to_string(op.outputs[0].dtype) for op in ops}
    by_output = {op.outputs[0].name: op for op in ops}
    # the float32 island: preemphasis, mask, reversal, tap folding, hi/lo split
    for name in ("y", "prev", "rev", "upper", "lower", "e", "o"):
        assert dtype[by_output[name].name] == "fp32", name
    island = island_op_names(main)
    assert {"y", "rev", "upper"} <= {op.outputs[0].name for op in ops if op.name in island}
    # it ends in casts float32 -> float16 (the high and low halves of e and o)
    splits = [op for op in ops if op.op_type == "cast" and dtype[op.name] == "fp16"
              and types.builtin_to_string(op.inputs["x"].dtype) == "fp32" and op.inputs["x"].op is not None
              and op.inputs["x"].op.op_type != "floor_div"]
    assert len(splits) == 4
    # everything from the DFT on is float16
    compute = [op for op in ops if op.op_type in ("linear", "matmul", "gather", "log", "exp", "reduce_max", "sqrt")]
    assert compute and all(dtype[op.name] == "fp16" for op in compute)
    assert all(types.builtin_to_string(op.inputs["x"].dtype) == "fp16" for op in ops if op.op_type == "linear")
    too_wide = [(t, n, s) for t, n, s in _widest_axes(main) if s and max(s) > ANE_MAX_AXIS]
    assert not too_wide, too_wide
