"""The streaming log-mel: exact against NeMo across windows; normalisation options measured."""

import numpy as np
import pytest
import torch

from parakeet_nb.frontend import streaming


@pytest.fixture(scope="module")
def clip():
    rng = np.random.default_rng(7)
    t = np.arange(37_123) / 16000
    return (0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(t.size)).astype(np.float32)


@pytest.mark.parametrize("window", [16384, 4000, 160, 161, 1])
def test_streamed_logmel_equals_nemo_for_any_window(clip, window):
    x = clip[:8000] if window == 1 else clip
    ours = streaming.stream_logmel(x, window)
    ref = streaming.nemo_mel(x, normalize=None)
    assert ours.shape == ref.shape == (128, len(x) // 160)
    assert float((ours - ref).abs().max()) < 1e-4


def test_push_emits_frames_once_their_samples_arrived(clip):
    s = streaming.StreamingLogMel(16384)
    first = s.push(clip[:16384])
    # frame f needs samples up to 160 f + 256: 16384 samples complete frames 0..100
    assert first.shape[1] == (16384 - 256) // 160 + 1
    rest = s.finish()
    assert first.shape[1] + rest.shape[1] == 16384 // 160


def test_bad_windows_are_refused():
    with pytest.raises(ValueError, match="16384"):
        streaming.StreamingLogMel(16385)
    s = streaming.StreamingLogMel(1000)
    with pytest.raises(ValueError, match="1..1000"):
        s.push(np.zeros(1001, dtype=np.float32))
    s.finish()
    with pytest.raises(RuntimeError, match="reset"):
        s.push(np.zeros(10, dtype=np.float32))


def test_running_normalisation_is_causal_and_matches_global_at_the_end():
    logmel = torch.randn(128, 50)
    running = streaming.normalise_running(logmel)
    changed = logmel.clone()
    changed[:, 30:] += 5.0
    assert torch.allclose(streaming.normalise_running(changed)[:, :30], running[:, :30])
    assert torch.allclose(running[:, -1], streaming.normalise_global(logmel)[:, -1], atol=1e-5)


def test_compare_reports_exact_raw_and_costly_causal_options(clip):
    rows = {r.option: r for r in streaming.compare(clip, [clip[::-1].copy()])}
    assert rows["log-mel before normalisation"].max_abs < 1e-4
    assert rows["global (offline)"].max_abs < 1e-4
    assert rows["running"].max_abs > 0.1
    assert rows["fixed (calibration)"].max_abs > rows["global (offline)"].max_abs
