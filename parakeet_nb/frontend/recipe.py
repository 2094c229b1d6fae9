"""NeMo 3.0's waveform -> mel recipe for Parakeet: its constants and NeMo's own preprocessor.

The numbers every front end in :mod:`parakeet_nb.frontend` reproduces, and
:func:`build_preprocessor`, NeMo's ``AudioToMelSpectrogramPreprocessor`` with Parakeet's
settings (the ``preprocessor`` section of the model config; NeMo source:
``nemo/collections/asr/modules/audio_preprocessing.py`` and
``nemo/collections/asr/parts/preprocessing/features.py`` in
https://github.com/NVIDIA/NeMo, release 3.0).
"""

from __future__ import annotations

from typing import Any

from parakeet_nb import _quiet

_quiet.import_heavy()

from nemo.collections.asr.modules import AudioToMelSpectrogramPreprocessor  # noqa: E402

#: Sample rate of every Parakeet model, in Hz.
SAMPLE_RATE = 16000
#: The fixed window of the exported models: 15 s at 16 kHz.
WINDOW_SAMPLES = 240000
#: Hop between mel frames, in samples (10 ms).
HOP = 160
#: Number of mel features.
N_MELS = 128
#: Mel frames for a full window: ``WINDOW_SAMPLES // HOP + 1`` (centre padding).
MEL_FRAMES = WINDOW_SAMPLES // HOP + 1

#: Keyword arguments of NeMo's preprocessor for Parakeet (NeMo's Parakeet TDT config).
PREPROCESSOR_KWARGS: dict[str, Any] = dict(
    sample_rate=SAMPLE_RATE,
    normalize="per_feature",
    window_size=0.025,
    window_stride=0.01,
    window="hann",
    features=N_MELS,
    n_fft=512,
    log=True,
    frame_splicing=1,
    dither=1e-5,
    pad_to=0,
)


def build_preprocessor() -> AudioToMelSpectrogramPreprocessor:
    """NeMo's waveform -> mel preprocessor with the Parakeet settings, in ``eval()`` mode.

    In: ``input_signal [B, S]`` float32, ``length [B]``. Out: ``mel [B, 128, S // 160 + 1]``
    and ``mel_length [B]`` (``length // 160`` in NeMo 3.0). The preprocessor has no
    trainable weights (its window and filterbank are fixed buffers).
    """
    return AudioToMelSpectrogramPreprocessor(**PREPROCESSOR_KWARGS).eval()
