"""The streaming alternative: log-mel from short windows, carried with state.

Instead of one 15 s window, audio arrives in windows of at most 16384 samples (1.024 s,
so even the raw window fits the ANE's W limit). :class:`StreamingLogMel` keeps the state
that NeMo's global computation spreads across the whole clip:

* the last raw sample, for preemphasis across window borders;
* the unconsumed tail of preemphasised samples (a 512-point frame spans 3.2 hops), so a
  frame is computed once all of its samples have arrived (256 samples after its centre);
* the 256 leading zeros of NeMo's centre padding (and the trailing ones at the end).

The log-mel frames it emits are NeMo's, exactly up to float32 rounding. What streaming
cannot reproduce is NeMo's **per-feature normalisation**, which needs the mean and
standard deviation of the *whole* clip before the first frame can be normalised. The
:data:`NORMALISERS` show the options and :func:`compare` measures what each costs.
The same trade-off changes control flow: the app must loop over windows carrying this
state, and Parakeet's FastConformer encoder (full-context attention, not cache-aware)
would have to re-encode a growing buffer or be replaced by a streaming-trained encoder.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from parakeet_nb.frontend.recipe import HOP, PREPROCESSOR_KWARGS, WINDOW_SAMPLES, build_preprocessor

#: The largest window: 1.024 s, the W limit of the ANE.
MAX_WINDOW = 16384
N_FFT = 512
PAD = N_FFT // 2
PREEMPH = 0.97
LOG_GUARD = 2.0**-24
STD_EPS = 1e-5


class StreamingLogMel:
    """Un-normalised log-mel frames ``[128, k]`` from consecutive windows of a waveform.

    ``push(window)`` takes the next samples (1-D, at most ``max_window``) and returns the
    frames that became complete; ``finish()`` returns the rest. Frames are those NeMo marks
    valid: ``total_samples // 160`` of them.
    """

    def __init__(self, max_window: int = MAX_WINDOW) -> None:
        if not 1 <= max_window <= MAX_WINDOW:
            raise ValueError(f"max_window {max_window}: expected 1..{MAX_WINDOW} samples (the ANE's W limit)")
        featurizer = build_preprocessor().featurizer
        self.max_window = max_window
        self.fb = featurizer.fb[0].to(torch.float32)  # [128, 257]
        self.window = featurizer.window.to(torch.float32)  # [400], centred in 512 by torch.stft
        self.reset()

    def reset(self) -> None:
        self._prev = 0.0  # last raw sample (NeMo: y[0] = x[0], i.e. a zero before the clip)
        self._buf = torch.zeros(PAD)  # preemphasised samples, starting with the centre padding
        self._buf_start = 0  # padded-coordinate index of _buf[0]
        self._next_frame = 0
        self._total = 0
        self._finished = False

    def _frames(self, upto: int) -> torch.Tensor:
        """Frames ``next_frame .. upto - 1`` from the buffer, then drop what no frame needs."""
        if upto <= self._next_frame:
            return torch.zeros(self.fb.shape[0], 0)
        start = HOP * self._next_frame - self._buf_start
        end = HOP * (upto - 1) + N_FFT - self._buf_start
        spec = torch.stft(
            self._buf[start:end], n_fft=N_FFT, hop_length=HOP, win_length=self.window.numel(),
            window=self.window, center=False, return_complex=True,
        )
        power = spec.abs().pow(2.0)
        logmel = torch.log(self.fb @ power + LOG_GUARD)
        self._next_frame = upto
        keep_from = HOP * self._next_frame - self._buf_start
        self._buf = self._buf[keep_from:]
        self._buf_start += keep_from
        return logmel

    def push(self, window: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Append ``window [S]`` (1 <= S <= max_window); return the newly complete frames ``[128, k]``."""
        if self._finished:
            raise RuntimeError("finish() was called; reset() before streaming again")
        x = torch.as_tensor(np.asarray(window, dtype=np.float32))
        if x.ndim != 1 or not 1 <= x.numel() <= self.max_window:
            raise ValueError(f"window of shape {tuple(x.shape)}: expected 1-D with 1..{self.max_window} samples")
        previous = torch.cat([torch.tensor([self._prev]), x[:-1]])
        y = x - PREEMPH * previous
        self._prev = float(x[-1])
        self._total += x.numel()
        self._buf = torch.cat([self._buf, y])
        buf_end = self._buf_start + self._buf.numel()
        complete = (buf_end - N_FFT) // HOP + 1  # frames whose 512 samples have all arrived
        return self._frames(min(complete, self._total // HOP))

    def finish(self) -> torch.Tensor:
        """The remaining valid frames (the trailing centre padding is zeros)."""
        self._finished = True
        self._buf = torch.cat([self._buf, torch.zeros(PAD + N_FFT)])
        return self._frames(self._total // HOP)


def stream_logmel(waveform: np.ndarray, window: int = MAX_WINDOW) -> torch.Tensor:
    """Run a whole waveform ``[S]`` through :class:`StreamingLogMel` in windows: ``[128, S // 160]``."""
    streamer = StreamingLogMel(window)
    parts = [streamer.push(waveform[i : i + window]) for i in range(0, len(waveform), window)]
    parts.append(streamer.finish())
    return torch.cat(parts, dim=1)


# --------------------------------------------------------------------------- normalisation

Normaliser = Callable[[torch.Tensor], torch.Tensor]


def normalise_global(logmel: torch.Tensor) -> torch.Tensor:
    """NeMo's per-feature normalisation over all frames ``[128, T]`` (needs the whole clip)."""
    mean = logmel.mean(dim=1, keepdim=True)
    std = logmel.std(dim=1, keepdim=True) if logmel.shape[1] > 1 else torch.zeros_like(mean)
    return (logmel - mean) / (std + STD_EPS)


def normalise_running(logmel: torch.Tensor) -> torch.Tensor:
    """Causal: each frame normalised with the mean and unbiased std of the frames up to it."""
    n = torch.arange(1, logmel.shape[1] + 1, dtype=torch.float64)
    x = logmel.to(torch.float64)
    mean = x.cumsum(dim=1) / n
    sq = (x * x).cumsum(dim=1)
    var = torch.where(n > 1, (sq - n * mean * mean) / (n - 1).clamp(min=1), torch.zeros_like(mean))
    std = var.clamp(min=0).sqrt()
    return ((x - mean) / (std + STD_EPS)).to(torch.float32)


def fixed_normaliser(mean: torch.Tensor, std: torch.Tensor) -> Normaliser:
    """Normalise with statistics fixed in advance (e.g. from calibration audio): ``[128, 1]`` each."""

    def normalise(logmel: torch.Tensor) -> torch.Tensor:
        return (logmel - mean) / (std + STD_EPS)

    return normalise


NORMALISERS: dict[str, str] = {
    "global": "NeMo's: per-feature statistics of the whole clip (not streamable: waits for the end)",
    "running": "causal: statistics of the frames so far (streamable; early frames are noisy)",
    "fixed": "statistics computed once from calibration audio and shipped with the app (streamable)",
}


@dataclass(frozen=True)
class StreamingRow:
    """Max and mean abs difference from NeMo's mel on the valid frames, for one option."""

    option: str
    max_abs: float
    mean_abs: float
    first_second_max_abs: float


def nemo_mel(waveform: np.ndarray, normalize: str | None = "per_feature") -> torch.Tensor:
    """NeMo's mel ``[128, S // 160]`` (valid frames) for ``waveform [S]`` (at most 240000)."""
    from nemo.core.classes.common import typecheck

    from parakeet_nb.frontend.recipe import AudioToMelSpectrogramPreprocessor

    if len(waveform) > WINDOW_SAMPLES:
        raise ValueError(f"{len(waveform)} samples: expected at most {WINDOW_SAMPLES}")
    pre = AudioToMelSpectrogramPreprocessor(**{**PREPROCESSOR_KWARGS, "normalize": normalize}).eval()
    x = torch.as_tensor(np.asarray(waveform, dtype=np.float32))[None]
    with torch.inference_mode(), typecheck.disable_checks():
        mel, length = pre(input_signal=x, length=torch.tensor([x.shape[1]]))
    return mel[0, :, : int(length[0])]


def compare(waveform: np.ndarray, calibration: Sequence[np.ndarray], window: int = MAX_WINDOW) -> list[StreamingRow]:
    """What streaming costs against NeMo's mel, per option (see :data:`NORMALISERS`).

    The first row checks the streamed *un-normalised* log-mel against NeMo's own (the
    state carried across windows makes it exact up to rounding); the others compare each
    normalisation option's output with NeMo's normalised mel. ``calibration`` clips give
    the statistics of the ``fixed`` option (use clips other than ``waveform``).
    """
    logmel = stream_logmel(waveform, window)
    reference_raw = nemo_mel(waveform, normalize=None)
    reference = nemo_mel(waveform)
    calib = torch.cat([stream_logmel(c, window) for c in calibration], dim=1)
    fixed = fixed_normaliser(calib.mean(dim=1, keepdim=True), calib.std(dim=1, keepdim=True))
    outputs = {
        "log-mel before normalisation": (logmel, reference_raw),
        "global (offline)": (normalise_global(logmel), reference),
        "running": (normalise_running(logmel), reference),
        "fixed (calibration)": (fixed(logmel), reference),
    }
    rows = []
    for option, (ours, ref) in outputs.items():
        diff = (ours - ref).abs()
        rows.append(StreamingRow(option, float(diff.max()), float(diff.mean()), float(diff[:, :100].max())))
    return rows
