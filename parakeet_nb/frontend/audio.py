"""Reading speech clips: 16 kHz mono float32, with clear errors and stated conversions."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from math import gcd
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

from parakeet_nb.frontend.recipe import SAMPLE_RATE
from parakeet_nb.paths import ROOT

#: The folder of committed clips (``data/`` at the project root).
DATA_DIR = ROOT / "data"


class AudioError(ValueError):
    """An audio file that cannot be used; the message says what was wrong and what is expected."""


@dataclass
class Clip:
    """A waveform ``samples [S]`` float32 in [-1, 1] at 16 kHz, and what was done to it."""

    samples: np.ndarray
    source: str
    notes: list[str] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return len(self.samples) / SAMPLE_RATE


def load_wav(path: str | os.PathLike, *, resample: bool = True, mix_down: bool = True) -> Clip:
    """Read a WAV file as 16 kHz mono float32.

    Stereo is mixed down (the mean of the channels) and another sample rate is resampled
    with a polyphase filter; each is recorded in ``Clip.notes``. With ``resample=False`` or
    ``mix_down=False`` those cases raise :class:`AudioError` instead. A missing file, a file
    that is not WAV, or an empty one raises :class:`AudioError`.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: no such file")
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise AudioError(f"{path}: not a readable audio file ({str(exc).strip()}); expected a 16 kHz mono WAV") from None
    if info.format not in ("WAV", "WAVEX"):
        raise AudioError(f"{path}: a {info.format} file; expected a 16 kHz mono WAV")
    samples, rate = sf.read(str(path), dtype="float32", always_2d=True)
    if samples.shape[0] == 0:
        raise AudioError(f"{path}: the file holds no samples")
    notes: list[str] = []
    channels = samples.shape[1]
    if channels > 1:
        if not mix_down:
            raise AudioError(f"{path}: {channels} channels; expected mono (16 kHz mono WAV)")
        notes.append(f"mixed {channels} channels down to mono")
    mono = samples.mean(axis=1, dtype=np.float64)
    if rate != SAMPLE_RATE:
        if not resample:
            raise AudioError(f"{path}: sample rate {rate} Hz; expected {SAMPLE_RATE} Hz (16 kHz mono WAV)")
        g = gcd(SAMPLE_RATE, int(rate))
        mono = resample_poly(mono, SAMPLE_RATE // g, int(rate) // g)
        notes.append(f"resampled from {rate} Hz to {SAMPLE_RATE} Hz")
    return Clip(samples=mono.astype(np.float32), source=str(path), notes=notes)


def data_clip(name: str) -> Clip:
    """A clip committed in ``data/`` by file name, e.g. ``"speech_15s.wav"``."""
    clip = load_wav(DATA_DIR / name)
    clip.source = f"data/{name}"
    return clip
