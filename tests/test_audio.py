"""Reading WAV clips (``parakeet_nb.frontend.audio``): 16 kHz mono float32, stated conversions, clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from parakeet_nb.frontend.audio import AudioError, Clip, data_clip, load_wav


def _sine(freq: float, rate: int, seconds: float, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _peak_hz(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[np.argmax(spectrum)])


def test_a_16khz_mono_wav_loads_unchanged(tmp_path):
    wave = _sine(440, 16000, 1.0)
    path = tmp_path / "mono.wav"
    sf.write(path, wave, 16000, subtype="FLOAT")
    clip = load_wav(path)
    assert isinstance(clip, Clip)
    assert clip.samples.dtype == np.float32 and clip.samples.ndim == 1
    np.testing.assert_array_equal(clip.samples, wave)
    assert clip.notes == []
    assert clip.seconds == 1.0
    assert clip.source == str(path)


def test_int16_samples_are_scaled_to_plus_minus_one(tmp_path):
    path = tmp_path / "pcm16.wav"
    sf.write(path, np.array([0, 16384, -32768, 32767], dtype=np.int16), 16000, subtype="PCM_16")
    clip = load_wav(path)
    np.testing.assert_allclose(clip.samples, [0.0, 0.5, -1.0, 32767 / 32768], atol=1e-6)


def test_stereo_is_mixed_down_with_a_note(tmp_path):
    left = _sine(440, 16000, 0.5)
    right = np.zeros_like(left) + 0.25
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([left, right], axis=1), 16000, subtype="FLOAT")
    clip = load_wav(path)
    assert clip.samples.shape == left.shape
    np.testing.assert_allclose(clip.samples, (left + right) / 2, atol=1e-7)
    assert clip.notes == ["mixed 2 channels down to mono"]


def test_stereo_with_mix_down_false_raises(tmp_path):
    path = tmp_path / "stereo.wav"
    sf.write(path, np.zeros((1600, 2), dtype=np.float32), 16000)
    with pytest.raises(AudioError, match="2 channels; expected mono"):
        load_wav(path, mix_down=False)


def test_44k1_is_resampled_with_a_note(tmp_path):
    path = tmp_path / "cd.wav"
    sf.write(path, _sine(1000, 44100, 2.0), 44100, subtype="FLOAT")
    clip = load_wav(path)
    assert clip.notes == ["resampled from 44100 Hz to 16000 Hz"]
    assert abs(len(clip.samples) - 2.0 * 16000) <= 1  # 88200 samples * 160/441
    assert abs(clip.seconds - 2.0) < 1e-3
    assert abs(_peak_hz(clip.samples, 16000) - 1000) <= 1.0  # the tone keeps its pitch
    middle = clip.samples[4000:-4000]
    assert abs(np.sqrt(np.mean(middle.astype(np.float64) ** 2)) - 0.5 / np.sqrt(2)) < 0.01  # and its level
    assert clip.samples.dtype == np.float32


def test_stereo_44k1_gets_both_notes(tmp_path):
    path = tmp_path / "both.wav"
    wave = _sine(300, 44100, 0.5)
    sf.write(path, np.stack([wave, wave], axis=1), 44100)
    clip = load_wav(path)
    assert clip.notes == ["mixed 2 channels down to mono", "resampled from 44100 Hz to 16000 Hz"]


def test_resample_false_raises(tmp_path):
    path = tmp_path / "cd.wav"
    sf.write(path, _sine(1000, 44100, 0.1), 44100)
    with pytest.raises(AudioError, match="sample rate 44100 Hz; expected 16000 Hz"):
        load_wav(path, resample=False)


def test_missing_file(tmp_path):
    with pytest.raises(AudioError, match="no such file"):
        load_wav(tmp_path / "missing.wav")


def test_a_folder_is_not_a_file(tmp_path):
    with pytest.raises(AudioError, match="no such file"):
        load_wav(tmp_path)


def test_flac_is_refused(tmp_path):
    path = tmp_path / "speech.flac"
    sf.write(path, _sine(440, 16000, 0.2), 16000)
    with pytest.raises(AudioError, match="a FLAC file; expected a 16 kHz mono WAV"):
        load_wav(path)


def test_flac_named_wav_is_refused(tmp_path):
    path = tmp_path / "speech.wav"
    sf.write(path, _sine(440, 16000, 0.2), 16000, format="FLAC")
    with pytest.raises(AudioError, match="FLAC"):
        load_wav(path)


def test_a_text_file_is_refused(tmp_path):
    path = tmp_path / "notes.wav"
    path.write_text("this is not audio\n" * 10)
    with pytest.raises(AudioError, match="not a readable audio file") as caught:
        load_wav(path)
    assert "expected a 16 kHz mono WAV" in str(caught.value)
    assert "\n" not in str(caught.value)


def test_an_empty_wav_is_refused(tmp_path):
    path = tmp_path / "empty.wav"
    sf.write(path, np.zeros(0, dtype=np.float32), 16000)
    with pytest.raises(AudioError, match="holds no samples"):
        load_wav(path)


def test_a_zero_byte_file_is_refused(tmp_path):
    path = tmp_path / "zero.wav"
    path.write_bytes(b"")
    with pytest.raises(AudioError, match="not a readable audio file"):
        load_wav(path)


def test_a_wave_format_extensible_wav_loads(tmp_path):
    """24-bit (or multichannel) WAVs from sox/ffmpeg use WAVE_FORMAT_EXTENSIBLE ("WAVEX")."""
    wave = _sine(440, 16000, 0.5)
    path = tmp_path / "pcm24.wav"
    sf.write(path, wave, 16000, format="WAVEX", subtype="PCM_24")
    assert sf.info(str(path)).format == "WAVEX"
    clip = load_wav(path)
    np.testing.assert_allclose(clip.samples, wave, atol=1e-6)
    assert clip.notes == []


def test_audio_error_is_a_value_error():
    assert issubclass(AudioError, ValueError)


def test_the_committed_clips_are_16k_mono():
    clip = data_clip("speech_short.wav")
    assert clip.source == "data/speech_short.wav"
    assert clip.notes == []
    assert len(clip.samples) == 35947
    assert clip.samples.dtype == np.float32
    assert float(np.abs(clip.samples).max()) <= 1.0
    assert len(data_clip("speech_15s.wav").samples) == 240000
