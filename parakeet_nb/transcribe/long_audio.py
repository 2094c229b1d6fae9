"""Transcripts of any length: overlapping 15 s windows, merged at the seams by token time.

The exported models take a fixed window of ``WINDOW_SAMPLES = 240000`` samples (15 s at
16 kHz). A longer waveform ``[S]`` is cut into consecutive windows that overlap, each window
is transcribed on its own by a *backend* (a callable ``waveform [<= 240000] -> Transcript``:
:func:`pytorch_window` for the PyTorch modules, :func:`exported_window` for exported
packages run by the MIL executor), and the windows' tokens are merged into one token list
whose timestamps count from the start of the whole clip.

Geometry (:func:`plan_windows`)
    Window ``k`` starts at ``k * stride`` and holds up to 240000 samples; only the last one
    can be shorter (it is zero-padded with its true length, like any short clip). The
    default overlap is FluidAudio's, 2.0 s: ``ChunkProcessor.overlapSeconds = 2.0``
    (``Sources/FluidAudio/ASR/Parakeet/SlidingWindow/TDT/ChunkProcessor.swift`` line 28 of
    https://github.com/FluidInference/FluidAudio at commit 8a2bf2c0; also
    ``ASRConstants.standardOverlapFrames = 25``, ``Sources/FluidAudio/Shared/ASRConstants.swift``
    line 49). It is the runtime most apps ship Parakeet with on Apple devices, so a
    transcript made here cuts the audio where an app's would. Like FluidAudio
    (``strideSamples``, ChunkProcessor.swift lines 66-75) the stride is rounded *down* to
    whole encoder frames of 1280 samples (``ASRConstants.samplesPerEncoderFrame``, line 31:
    mel hop 160 x subsampling 8), so every window starts on an encoder-frame boundary and a
    window's frame ``f`` is frame ``f + k * stride / 1280`` of the clip, exactly. With the full
    240000-sample window that gives a stride of 207360 samples (162 frames, 12.96 s), which
    is FluidAudio's own stride on its no-context path (chunk ``(240000 - 160) // 1280 * 1280 =
    239360`` minus 32000, lines 59-75), and an actual overlap of 32640 samples (2.04 s).
    FluidAudio keeps 640 samples of its window unused; here the whole 15 s window is used.

Merge rule (:func:`seam_cut`, :func:`merge_windows`)
    Each seam is cut at one time ``c`` (in encoder frames of the clip): the left window keeps
    its tokens with frame ``< c``, the right window its tokens with frame ``>= c``. ``c`` lies
    in the middle half of the overlap (at least a quarter of the overlap, 0.51 s by default,
    from either window's edge, where a window has the least context) and is, within that
    band, the point farthest from every token either window emitted, distances counted up to
    0.32 s (ties: nearest the overlap's midpoint, then the earlier). Both windows hear the
    same audio there and emit a word at nearly the same frame, so the two copies of a word
    sit close together and the cut falls in a token-free stretch, between words: each word is kept once, from
    one window. Plain midpoint ownership (each half of the overlap owned by the window in
    which it is further from the edge) is this rule without the search; it doubles or drops a
    word whose two copies straddle the midpoint by a frame. FluidAudio instead matches the
    two windows' tokens in the overlap (``mergeChunks``, ChunkProcessor.swift lines
    952-1051) and falls back to the midpoint (``mergeByMidpoint``, lines 1186-1216).
    The rule fails only if the two copies of a word lie further apart than every gap between
    words in the band (continuous speech with a large timing disagreement between windows).

Timestamps
    Merged tokens keep absolute encoder frames (80 ms: hop 160 x subsampling 8 at 16 kHz,
    :data:`parakeet_nb.model.tdt.FRAME_SECONDS`) and seconds ``frame * 0.08``. They never
    decrease; TDT can emit several tokens at one frame (duration 0), so equal neighbours are
    possible. A clip of at most 15 s is one window and gives exactly the transcript of
    :func:`parakeet_nb.transcribe.pipeline.transcribe` (or ``transcribe_exported``).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from parakeet_nb.frontend.recipe import SAMPLE_RATE, WINDOW_SAMPLES
from parakeet_nb.model.tdt import FRAME_SECONDS
from parakeet_nb.transcribe.pipeline import Transcript, Variant, packages_tokenizer, transcribe, transcribe_exported

#: FluidAudio's overlap between consecutive windows, in seconds (ChunkProcessor.swift line 28).
FLUIDAUDIO_OVERLAP_SECONDS = 2.0
#: Samples per encoder frame: 80 ms at 16 kHz (mel hop 160 x subsampling 8).
FRAME_SAMPLES = round(FRAME_SECONDS * SAMPLE_RATE)
#: A seam cut this many encoder frames (0.32 s) from every token is as safe as any: beyond
#: it the cut stays nearest the overlap's midpoint. Two windows' copies of one word lie a
#: frame or two apart; words are further apart than that.
SEAM_MARGIN_FRAMES = 4.0

#: Transcribes one window ``[1 <= S <= 240000]`` (float32, 16 kHz): the pipeline's
#: ``transcribe`` or ``transcribe_exported`` bound to a model, see :func:`pytorch_window`.
WindowBackend = Callable[[np.ndarray], Transcript]


@dataclass(frozen=True)
class WindowPlan:
    """Where the windows of a ``total_samples`` long clip start, in samples.

    ``starts[k] = k * stride_samples``; window ``k`` spans ``spans[k] = (start, min(start +
    window_samples, total_samples))``. ``stride_samples`` is a whole number of encoder frames.
    """

    total_samples: int
    window_samples: int
    stride_samples: int
    starts: tuple[int, ...]

    @property
    def overlap_samples(self) -> int:
        return self.window_samples - self.stride_samples

    @property
    def spans(self) -> list[tuple[int, int]]:
        return [(s, min(s + self.window_samples, self.total_samples)) for s in self.starts]

    def frame_offset(self, k: int) -> int:
        """The clip's encoder frame at which window ``k`` starts."""
        return self.starts[k] // FRAME_SAMPLES

    def cut_bands(self) -> list[tuple[float, float]]:
        """For each seam ``k`` (between windows ``k`` and ``k + 1``): the band ``(lo, hi)``, in
        encoder frames of the clip, in which the cut may lie: the middle half of the overlap
        ``[starts[k+1], starts[k] + window_samples)``."""
        bands = []
        for k in range(len(self.starts) - 1):
            lo, hi = self.starts[k + 1] / FRAME_SAMPLES, (self.starts[k] + self.window_samples) / FRAME_SAMPLES
            quarter = (hi - lo) / 4
            bands.append((lo + quarter, hi - quarter))
        return bands


def plan_windows(
    total_samples: int,
    overlap_seconds: float = FLUIDAUDIO_OVERLAP_SECONDS,
    window_samples: int = WINDOW_SAMPLES,
) -> WindowPlan:
    """Consecutive windows over ``total_samples`` with at least ``overlap_seconds`` of overlap.

    The stride is ``window_samples - overlap`` rounded down to whole encoder frames (1280
    samples), as FluidAudio's ``strideSamples`` does; the last window ends at the clip's end
    and holds at least the overlap. One window when ``total_samples <= window_samples``.
    Raises ``ValueError`` for no samples or an overlap outside ``[0, window / 2]`` (FluidAudio
    caps it at half the window too, ChunkProcessor.swift line 68).
    """
    if total_samples < 1:
        raise ValueError(f"the clip has {total_samples} samples; expected at least 1")
    overlap = round(overlap_seconds * SAMPLE_RATE)
    if not 0 <= overlap <= window_samples // 2:
        raise ValueError(
            f"overlap {overlap_seconds} s is outside 0 to {window_samples / 2 / SAMPLE_RATE:g} s (half the window)"
        )
    stride = (window_samples - overlap) // FRAME_SAMPLES * FRAME_SAMPLES
    count = 1 if total_samples <= window_samples else 1 + math.ceil((total_samples - window_samples) / stride)
    return WindowPlan(total_samples, window_samples, stride, tuple(k * stride for k in range(count)))


@dataclass
class WindowTokens:
    """One window's tokens with their frames already in the clip's encoder frames."""

    tokens: list[int]
    frames: list[int]
    durations: list[int]


def seam_cut(
    left_frames: Sequence[int], right_frames: Sequence[int], band: tuple[float, float], margin: float = SEAM_MARGIN_FRAMES
) -> float:
    """The cut of one seam: the point of ``band = (lo, hi)`` (encoder frames) farthest from
    every frame in ``left_frames`` and ``right_frames``, distances counted up to ``margin``
    frames (a cut that far from every token is as safe as any); ties go to the point nearest
    the band's centre, then the earlier. With no token within ``margin``, the centre.

    The capped distance to the nearest token is piecewise linear, so its best points are a
    band end, the centre, halfway between two neighbouring tokens, or the point of a wide gap
    ``margin`` away from its tokens nearest the centre: those are the candidates.
    """
    lo, hi = band
    if hi < lo:
        raise ValueError(f"empty cut band ({lo}, {hi})")
    centre = (lo + hi) / 2
    points = sorted(set(left_frames) | set(right_frames))
    gaps = list(zip([-math.inf, *points], [*points, math.inf]))
    candidates = {lo, hi, centre}
    candidates.update((a + b) / 2 for a, b in gaps if math.isfinite(a + b))
    candidates.update(min(max(centre, a + margin), b - margin) for a, b in gaps if b - a >= 2 * margin)
    candidates = {min(max(c, lo), hi) for c in candidates}

    def distance(c: float) -> float:
        return min([abs(c - p) for p in points] + [margin])

    return min(candidates, key=lambda c: (-distance(c), abs(c - centre), c))


def merge_windows(
    windows: Sequence[WindowTokens], bands: Sequence[tuple[float, float]]
) -> tuple[WindowTokens, list[float]]:
    """Merge consecutive windows' tokens (frames of the clip) at the cuts of ``bands``.

    ``bands[k]`` is where the cut between ``windows[k]`` and ``windows[k + 1]`` may lie
    (:meth:`WindowPlan.cut_bands`). Window ``k`` contributes its tokens with frames in
    ``[cut[k-1], cut[k])`` (the first from the start, the last to the end), in their order.
    Returns the merged tokens and the cuts (frames). Raises ``ValueError`` when the counts
    do not fit (``len(bands) == len(windows) - 1``) or a cut band lies before the previous one.
    """
    if not windows:
        raise ValueError("no windows to merge")
    if len(bands) != len(windows) - 1:
        raise ValueError(f"{len(windows)} windows need {len(windows) - 1} cut bands, got {len(bands)}")
    cuts = [seam_cut(windows[k].frames, windows[k + 1].frames, bands[k]) for k in range(len(bands))]
    if any(b <= a for a, b in zip(cuts, cuts[1:])):
        raise ValueError(f"cuts {cuts} do not increase: the cut bands overlap")
    edges = [-math.inf, *cuts, math.inf]
    merged = WindowTokens([], [], [])
    for k, w in enumerate(windows):
        for token, frame, duration in zip(w.tokens, w.frames, w.durations):
            if edges[k] <= frame < edges[k + 1]:
                merged.tokens.append(token)
                merged.frames.append(frame)
                merged.durations.append(duration)
    return merged, cuts


@dataclass
class LongTranscript(Transcript):
    """A :class:`~parakeet_nb.transcribe.pipeline.Transcript` of a clip of any length.

    ``timestamps`` (seconds) and ``frames`` (encoder frames of 80 ms) count from the start of
    the clip; ``encoder_frames`` is the clip's frame count. ``windows`` are the windows'
    ``(start, end)`` in seconds and ``cuts`` the seams' cut times in seconds (empty for one
    window).
    """

    frames: list[int] = field(default_factory=list)
    windows: list[tuple[float, float]] = field(default_factory=list)
    cuts: list[float] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            **super().as_dict(),
            "frames": self.frames,
            "windows": [[round(a, 3), round(b, 3)] for a, b in self.windows],
            "cuts": [round(c, 3) for c in self.cuts],
        }


def transcribe_long(
    waveform: np.ndarray | torch.Tensor,
    backend: WindowBackend,
    *,
    tokenizer: Any = None,
    overlap_seconds: float = FLUIDAUDIO_OVERLAP_SECONDS,
) -> LongTranscript:
    """Transcribe a 1-D 16 kHz waveform ``[S]`` of any length, window by window.

    ``backend`` transcribes one window (:func:`pytorch_window`, :func:`exported_window`);
    ``tokenizer`` (``ids_to_text``) makes the merged text, ``None`` leaves it ``None``.
    Raises ``ValueError`` for a waveform that is not 1-D, empty or not finite, or a bad overlap.
    """
    samples = np.asarray(waveform, dtype=np.float32)
    if samples.ndim != 1:
        raise ValueError(f"expected a 1-D waveform, got shape {tuple(samples.shape)}")
    if samples.size and not np.isfinite(samples).all():
        raise ValueError("waveform contains NaN or infinite samples")
    plan = plan_windows(samples.shape[0], overlap_seconds)
    parts = [backend(samples[a:b]) for a, b in plan.spans]
    windows = [
        WindowTokens(
            list(t.tokens),
            # the pipeline gives seconds = frame * FRAME_SECONDS; round() recovers the frame exactly
            [round(s / FRAME_SECONDS) + plan.frame_offset(k) for s in t.timestamps],
            list(t.durations),
        )
        for k, t in enumerate(parts)
    ]
    merged, cuts = merge_windows(windows, plan.cut_bands())
    text = None
    if tokenizer is not None:
        text = tokenizer.ids_to_text(merged.tokens) if merged.tokens else ""
    elif len(parts) == 1:
        text = parts[0].text
    notes = []
    if len(parts) > 1:
        notes.append(
            f"{len(parts)} windows of {plan.window_samples / SAMPLE_RATE:g} s every {plan.stride_samples / SAMPLE_RATE:g} s "
            f"({plan.overlap_samples / SAMPLE_RATE:g} s overlap); seams cut at "
            + ", ".join(f"{c * FRAME_SECONDS:.2f}" for c in cuts) + " s"
        )
    return LongTranscript(
        variant=parts[0].variant,
        tokens=merged.tokens,
        timestamps=[f * FRAME_SECONDS for f in merged.frames],
        durations=merged.durations,
        text=text,
        encoder_frames=plan.frame_offset(len(parts) - 1) + parts[-1].encoder_frames,
        notes=notes,
        frames=merged.frames,
        windows=[(a / SAMPLE_RATE, b / SAMPLE_RATE) for a, b in plan.spans],
        cuts=[c * FRAME_SECONDS for c in cuts],
    )


def pytorch_window(modules, variant: Variant = "split", *, max_symbols_per_step: int = 10) -> WindowBackend:
    """A backend running :func:`~parakeet_nb.transcribe.pipeline.transcribe` with ``modules``
    (a :class:`~parakeet_nb.model.presets.ParakeetModules`) on each window."""

    def run(window: np.ndarray) -> Transcript:
        return transcribe(modules, window, variant, max_symbols_per_step=max_symbols_per_step)

    return run


def exported_window(
    export_dir: str | os.PathLike, variant: Variant = "split", *, numerics: str = "fp32"
) -> WindowBackend:
    """A backend running :func:`~parakeet_nb.transcribe.pipeline.transcribe_exported` (the
    exported packages in ``export_dir``, MIL executor) on each window; give
    :func:`transcribe_long` the model's tokenizer for text."""

    def run(window: np.ndarray) -> Transcript:
        return transcribe_exported(export_dir, window, variant, numerics=numerics)

    return run


def packages_window(
    export_dir: str | os.PathLike, variant: Variant = "split", *, nemo: str | os.PathLike | None = None
) -> tuple[WindowBackend, Any]:
    """``(backend, tokenizer)`` for an export folder alone (``parakeet-nb transcribe --packages``):
    checks once that the folder holds what ``variant`` needs and loads the tokenizer once
    (:func:`~parakeet_nb.transcribe.pipeline.packages_tokenizer`; ``ValueError`` with the reason)."""
    return exported_window(export_dir, variant), packages_tokenizer(export_dir, variant, nemo)
