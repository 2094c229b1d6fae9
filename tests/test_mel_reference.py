"""The float64 and global torch.stft references against librosa, torch and NeMo itself."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from parakeet_nb.frontend import mel_reference as ref
from parakeet_nb.model.components import Preprocessor
from parakeet_nb.frontend.recipe import WINDOW_SAMPLES, build_preprocessor


@pytest.fixture(scope="module")
def nemo():
    return Preprocessor(build_preprocessor()).eval()


def _nemo_mel(nemo, x: np.ndarray, length: int) -> tuple[np.ndarray, int]:
    window = torch.zeros(1, WINDOW_SAMPLES)
    window[0, : len(x)] = torch.from_numpy(x)
    with torch.no_grad():
        mel, mel_length = nemo(window, torch.tensor([length], dtype=torch.int32))
    return mel[0].double().numpy(), int(mel_length[0])


def _padded(x: np.ndarray) -> np.ndarray:
    out = np.zeros(WINDOW_SAMPLES, np.float32)
    out[: len(x)] = x
    return out


def test_filterbank_matches_librosa_float64():
    import librosa

    lib = librosa.filters.mel(sr=16000, n_fft=512, n_mels=128, fmin=0.0, fmax=8000.0, norm="slaney", dtype=np.float64)
    ours = ref.slaney_mel_filterbank_f64()
    assert ours.shape == (128, 257)
    np.testing.assert_allclose(ours, lib, rtol=0, atol=1e-15)
    # bins 0 and 256 get no weight from any filter (the chunked module drops them)
    assert ours[:, 0].max() == 0.0 and ours[:, 256].max() == 0.0


def test_filterbank_is_nemos_buffer_to_float32(nemo):
    fb = nemo.preprocessor.featurizer.fb[0].double().numpy()
    np.testing.assert_allclose(fb, ref.slaney_mel_filterbank_f64(), rtol=1e-7, atol=0)


def test_window_is_symmetric_hann_and_centred():
    w = ref.hann_window_f64()
    np.testing.assert_allclose(w, torch.hann_window(400, periodic=False, dtype=torch.float64).numpy(), atol=1e-15)
    np.testing.assert_allclose(w, w[::-1], rtol=0, atol=1e-15)  # symmetric up to float64 rounding
    frame = ref.frame_window_f64()
    assert frame.shape == (512,)
    assert not frame[:56].any() and not frame[456:].any()
    np.testing.assert_array_equal(frame[56:456], w)


@pytest.mark.parametrize("length", [160, 320, 16001, 123457, WINDOW_SAMPLES])
def test_two_float64_implementations_agree(length):
    """numpy rfft framing and torch.stft in float64 are independent routes to the same numbers."""
    x = (0.3 * np.random.default_rng(length).standard_normal(length)).astype(np.float32)
    a, n = ref.mel_float64(_padded(x), length)
    b, bn = ref.mel_torch_stft(torch.from_numpy(_padded(x))[None], torch.tensor([length]), dtype=torch.float64)
    assert n == int(bn[0]) == length // 160
    np.testing.assert_allclose(a, b[0].numpy(), rtol=0, atol=1e-9)


@pytest.mark.parametrize("length", [1, 159, 160, 161, 319, 320, 321, 15999, 16000, 16001, 239999, 240000])
def test_reference_matches_nemo_and_its_lengths(nemo, length):
    x = (0.1 * np.random.default_rng(7).standard_normal(length)).astype(np.float32)
    mel_nemo, len_nemo = _nemo_mel(nemo, x, length)
    mel_exact, len_exact = ref.mel_float64(_padded(x), length)
    glob, len_glob = ref.mel_torch_stft(torch.from_numpy(_padded(x))[None], torch.tensor([length]))
    assert len_exact == len_nemo == int(len_glob[0]) == length // 160
    assert np.isfinite(mel_nemo).all()
    # NeMo's float32 mel sits within its own rounding noise of the exact answer
    assert np.abs(mel_nemo - mel_exact).max() < 1e-3
    assert np.abs(glob[0].numpy() - mel_exact).max() < 1e-3
    assert not mel_exact[:, len_exact:].any() and not mel_nemo[:, len_nemo:].any()


@pytest.mark.parametrize("length", [1, 100, 159, 160, 200, 319])
def test_degenerate_lengths_are_all_zero_like_nemo(nemo, length):
    """Fewer than 2 valid frames: NeMo's mean is 0/0 (n = 0) or its std is 0/0 -> 0 (n = 1).

    Either way NeMo returns an all-zero, finite mel (no NaN reaches the output), and so do
    both references.
    """
    x = np.random.default_rng(length).uniform(-1, 1, length).astype(np.float32)
    mel_nemo, n = _nemo_mel(nemo, x, length)
    assert n == length // 160 <= 1
    assert np.isfinite(mel_nemo).all() and not mel_nemo.any()
    exact, _ = ref.mel_float64(_padded(x), length)
    assert not exact.any()
    glob, _ = ref.mel_torch_stft(torch.from_numpy(_padded(x))[None], torch.tensor([length]))
    assert torch.isfinite(glob).all() and not glob.any()


def test_two_frames_follow_the_closed_form(nemo):
    """n = 2: each feature is (v0 - v1) / 2 / (|v0 - v1| / sqrt(2) + 1e-5): about +-0.7071."""
    x = np.random.default_rng(3).uniform(-1, 1, 320).astype(np.float32)
    mel_nemo, n = _nemo_mel(nemo, x, 320)
    exact, _ = ref.mel_float64(_padded(x), 320)
    logmel, _ = ref.logmel_float64(_padded(x), 320)
    assert n == 2
    d = logmel[:, 0] - logmel[:, 1]
    closed = (d / 2) / (np.abs(d) / np.sqrt(2) + 1e-5)
    np.testing.assert_allclose(exact[:, 0], closed, rtol=1e-12)
    np.testing.assert_allclose(exact[:, 1], -closed, rtol=1e-12)
    np.testing.assert_allclose(mel_nemo[:, :2], exact[:, :2], atol=1e-3)


def test_reference_rejects_bad_input():
    with pytest.raises(ValueError, match="1-D"):
        ref.logmel_float64(np.zeros((2, 100)))
    with pytest.raises(ValueError, match="length"):
        ref.logmel_float64(np.zeros(100), 101)


@settings(max_examples=20, deadline=None)
@given(
    length=st.integers(min_value=1, max_value=WINDOW_SAMPLES),
    seed=st.integers(min_value=0, max_value=2**32 - 1),
    tail=st.floats(min_value=-1.0, max_value=1.0),
)
def test_samples_past_length_do_not_matter(length, seed, tail):
    """Preemphasis is masked *after* it is applied, so nothing at or past ``length`` leaks in."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, WINDOW_SAMPLES).astype(np.float32)
    y = x.copy()
    y[length:] = tail
    a, n = ref.mel_float64(x, length)
    b, _ = ref.mel_float64(y, length)
    assert n == length // 160
    np.testing.assert_array_equal(a, b)
