"""Two references for NeMo 3.0's waveform -> mel, written from the recipe, not from NeMo.

* :func:`mel_float64`: the recipe in float64 numpy, with the window and the Slaney mel
  filterbank computed here in float64 from their formulas. This is the "exact" answer
  that parity is judged against: its own rounding error (about 1e-13 in the log domain)
  is far below anything a float32 pipeline can show.
* :func:`mel_torch_stft`: the same recipe as one global ``torch.stft`` over the whole
  waveform in float32 (or float64): what a plain, non-chunked implementation gives.

The recipe (NeMo 3.0's ``FilterbankFeatures`` in
``nemo/collections/asr/parts/preprocessing/features.py``, https://github.com/NVIDIA/NeMo), for a waveform ``x [S]``
with ``L`` valid samples:

1. ``mel_length = L // 160``; frames: ``S // 160 + 1``.
2. preemphasis ``y[0] = x[0]``, ``y[n] = x[n] - 0.97 x[n-1]``, then ``y[n >= L] = 0``;
3. zero centre padding of 256 on both sides, 512-point frames every 160 samples, the
   400-tap symmetric Hann window centred in the frame (56 zeros each side);
4. power spectrum ``|X|^2`` (257 bins);
5. Slaney mel filterbank (128 filters, 0-8000 Hz, ``norm="slaney"``);
6. ``log(mel + 2**-24)``;
7. per-feature normalisation over the valid frames ``t < mel_length``: mean, unbiased
   std (``n - 1``), ``(v - mean) / (std + 1e-5)``; a NaN std (one valid frame) counts
   as 0;
8. frames ``t >= mel_length`` are 0.

Degenerate lengths follow NeMo exactly (checked against NeMo in
``tests/test_mel_reference.py``): with ``mel_length == 0`` (``L < 160``) every frame
is 0; with ``mel_length == 1`` (``160 <= L < 320``) frame 0 is ``0 / 1e-5 = 0`` and
the rest are masked, so the mel is all zeros too. No NaN or inf reaches the output.
"""

from __future__ import annotations

import numpy as np
import torch

from parakeet_nb.frontend.recipe import HOP, N_MELS, SAMPLE_RATE

#: FFT size of the recipe.
N_FFT = 512
#: Taps of the (symmetric) Hann window.
WIN_LENGTH = 400
#: Zeros on each side of the window inside the 512-point frame.
WIN_OFFSET = (N_FFT - WIN_LENGTH) // 2
#: Centre padding on each side of the waveform.
CENTER_PAD = N_FFT // 2
#: Frequency bins of the one-sided spectrum.
N_BINS = N_FFT // 2 + 1
#: Preemphasis coefficient.
PREEMPH = 0.97
#: Added before the log (``log_zero_guard_value``); the smallest float16 subnormal.
LOG_GUARD = 2.0**-24
#: Added to the std before dividing (NeMo's ``CONSTANT``).
STD_EPS = 1e-5


def hann_window_f64(length: int = WIN_LENGTH) -> np.ndarray:
    """Symmetric Hann window ``0.5 - 0.5 cos(2 pi n / (length - 1))``, ``[length]`` float64.

    Same formula as ``torch.hann_window(length, periodic=False)``.
    """
    n = np.arange(length, dtype=np.float64)
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * n / (length - 1))


def frame_window_f64() -> np.ndarray:
    """The 400-tap window centred in a 512-point frame, ``[512]`` float64."""
    w = np.zeros(N_FFT, dtype=np.float64)
    w[WIN_OFFSET : WIN_OFFSET + WIN_LENGTH] = hann_window_f64()
    return w


def _hz_to_mel_slaney(hz: np.ndarray) -> np.ndarray:
    """Slaney's mel scale: linear (200/3 Hz per mel) below 1 kHz, logarithmic above."""
    hz = np.asarray(hz, dtype=np.float64)
    f_sp = 200.0 / 3.0
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    return np.where(
        hz >= min_log_hz,
        min_log_mel + np.log(np.maximum(hz, min_log_hz) / min_log_hz) / logstep,
        hz / f_sp,
    )


def _mel_to_hz_slaney(mel: np.ndarray) -> np.ndarray:
    """Inverse of :func:`_hz_to_mel_slaney`."""
    mel = np.asarray(mel, dtype=np.float64)
    f_sp = 200.0 / 3.0
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    return np.where(
        mel >= min_log_mel,
        min_log_hz * np.exp(logstep * (mel - min_log_mel)),
        f_sp * mel,
    )


def slaney_mel_filterbank_f64(
    sr: int = SAMPLE_RATE, n_fft: int = N_FFT, n_mels: int = N_MELS, fmin: float = 0.0, fmax: float | None = None
) -> np.ndarray:
    """Slaney-normalised triangular mel filterbank, ``[n_mels, n_fft // 2 + 1]`` float64.

    The formula of ``librosa.filters.mel(..., htk=False, norm="slaney")``, computed here
    in float64 (librosa's default output, and NeMo's ``fb`` buffer, are float32).
    """
    fmax = sr / 2.0 if fmax is None else fmax
    fft_freqs = np.arange(n_fft // 2 + 1, dtype=np.float64) * sr / n_fft
    mel_pts = np.linspace(_hz_to_mel_slaney(np.array(fmin)), _hz_to_mel_slaney(np.array(fmax)), n_mels + 2)
    hz_pts = _mel_to_hz_slaney(mel_pts)
    fdiff = np.diff(hz_pts)
    ramps = hz_pts[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    enorm = 2.0 / (hz_pts[2 : n_mels + 2] - hz_pts[:n_mels])
    return weights * enorm[:, None]


def _normalize_f64(logmel: np.ndarray, n_valid: int) -> np.ndarray:
    """NeMo's per-feature normalisation of ``logmel [128, T]`` over ``t < n_valid``, float64."""
    out = np.zeros_like(logmel)
    if n_valid <= 0:
        return out  # NeMo: mean is 0/0 = NaN, but every frame is masked to 0
    valid = logmel[:, :n_valid]
    mean = valid.mean(axis=1, keepdims=True)
    if n_valid == 1:
        std = np.zeros((logmel.shape[0], 1))  # NeMo: 0/0 = NaN std, filled with 0
    else:
        std = np.sqrt(((valid - mean) ** 2).sum(axis=1, keepdims=True) / (n_valid - 1))
    out[:, :n_valid] = (valid - mean) / (std + STD_EPS)
    return out


def mel_float64(waveform: np.ndarray, length: int | None = None) -> tuple[np.ndarray, int]:
    """The recipe in float64 numpy for one waveform.

    In: ``waveform [S]`` (any real dtype; converted to float64 exactly), ``length``
    valid samples (default ``S``; ``0 <= length <= S``).
    Out: ``mel [128, S // 160 + 1]`` float64 and ``mel_length = length // 160``.
    (:func:`logmel_float64` gives the log-mel before normalisation.)
    """
    logmel, mel_length = logmel_float64(waveform, length)
    return _normalize_f64(logmel, mel_length), mel_length


def logmel_float64(waveform: np.ndarray, length: int | None = None) -> tuple[np.ndarray, int]:
    """Steps 1-6 of the recipe in float64: ``log(mel + 2**-24)``, ``[128, S // 160 + 1]``.

    In: ``waveform [S]``, ``length`` valid samples. Out: ``(logmel, mel_length)``; frames
    at and after ``mel_length`` are left as computed (not masked, not normalised).
    """
    x = np.asarray(waveform, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"waveform must be 1-D, got shape {x.shape}")
    s = x.shape[0]
    length = s if length is None else int(length)
    if not 0 <= length <= s:
        raise ValueError(f"length must be in [0, {s}], got {length}")
    y = np.empty_like(x)
    y[:1] = x[:1]
    y[1:] = x[1:] - PREEMPH * x[:-1]
    y[length:] = 0.0
    padded = np.pad(y, (CENTER_PAD, CENTER_PAD))
    n_frames = s // HOP + 1
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP][:n_frames]
    spec = np.fft.rfft(frames * frame_window_f64(), axis=-1)
    power = spec.real**2 + spec.imag**2  # [T, 257]
    mel = slaney_mel_filterbank_f64() @ power.T  # [128, T]
    return np.log(mel + LOG_GUARD), length // HOP


def mel_torch_stft(
    waveform: torch.Tensor, length: torch.Tensor, dtype: torch.dtype = torch.float32
) -> tuple[torch.Tensor, torch.Tensor]:
    """The recipe as one global ``torch.stft`` over the whole waveform.

    In: ``waveform [B, S]``, ``length [B]`` (integer, valid samples).
    Out: ``mel [B, 128, S // 160 + 1]`` in ``dtype`` and ``mel_length [B]`` int32.
    Window and filterbank are the float64 ones of this module cast to ``dtype``; with
    ``dtype=torch.float32`` this is the plain float32 pipeline (like NeMo's), with
    ``torch.float64`` a second, FFT-based float64 reference.
    """
    x = waveform.to(dtype)
    length = length.to(torch.int64)
    b, s = x.shape
    y = torch.cat([x[:, :1], x[:, 1:] - PREEMPH * x[:, :-1]], dim=1)
    y = y.masked_fill(torch.arange(s)[None, :] >= length[:, None], 0.0)
    window = torch.from_numpy(hann_window_f64()).to(dtype)
    spec = torch.stft(
        y, n_fft=N_FFT, hop_length=HOP, win_length=WIN_LENGTH, window=window,
        center=True, pad_mode="constant", return_complex=True,
    )
    power = spec.real**2 + spec.imag**2  # [B, 257, T]
    fb = torch.from_numpy(slaney_mel_filterbank_f64()).to(dtype)
    logmel = torch.log(torch.matmul(fb, power) + LOG_GUARD)
    mel_length = length // HOP
    t = torch.arange(logmel.shape[-1])[None, :]
    valid = t < mel_length[:, None]  # [B, T]
    n = valid.sum(dim=1).to(dtype)[:, None]  # [B, 1]
    mean = torch.where(valid[:, None, :], logmel, 0.0).sum(dim=2) / n.clamp(min=1)
    centred = torch.where(valid[:, None, :], logmel - mean[:, :, None], 0.0)
    std = torch.sqrt((centred**2).sum(dim=2) / (n - 1).clamp(min=1))
    out = (logmel - mean[:, :, None]) / (std[:, :, None] + STD_EPS)
    out = torch.where(valid[:, None, :], out, 0.0)
    return out, mel_length.to(torch.int32)
