"""The parity study of the chunked preprocessor, as data.

For each case (a signal and a valid length) it runs, on the same 240000-sample window:

* NeMo's own ``AudioToMelSpectrogramPreprocessor`` (eval mode, float32): the target;
* :class:`parakeet_nb.frontend.chunked.ChunkedPreprocessor` in float32 (the exported module);
* a plain global ``torch.stft`` float32 pipeline (:func:`mel_reference.mel_torch_stft`);
* the float64 reference (:func:`mel_reference.mel_float64`), the "exact" answer;
* the chunked module under float16 emulation (:mod:`parakeet_nb.frontend.fp16`): the
  ``fp16_safe`` variant with and without subnormal flushing, and the default variant,
  each compared with NeMo's float32 mel.

Errors are absolute differences of the normalised mel over the valid frames
(``t < mel_length``); per-frame arrays hold the max over the 128 features. "Seam frames"
are the frames whose window spans a chunk boundary (``100 c - 1 .. 100 c + 1``).

``run_parity(audio)`` returns a :class:`ParityReport` (``.table()``, ``.to_json()``,
``.goals()``); it backs ``parakeet-nb parity [--audio WAV] [--json]``.
"""

from __future__ import annotations

import math
import platform
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from parakeet_nb.frontend import mel_reference as ref
from parakeet_nb.frontend.audio import data_clip
from parakeet_nb.frontend.chunked import CHUNK_SAMPLES, N_CHUNKS, ChunkedPreprocessor, to_chunks
from parakeet_nb.model.components import Preprocessor
from parakeet_nb.frontend.fp16 import run_fp16
from parakeet_nb.frontend.recipe import HOP, MEL_FRAMES, SAMPLE_RATE, WINDOW_SAMPLES, build_preprocessor

#: The lengths every length sweep covers (samples).
SWEEP_LENGTHS = (1, 159, 160, 161, 319, 320, 15999, 16000, 16001, 239999, 240000)
#: Frames whose window (taps ``160 f - 200 .. 160 f + 199``) spans a chunk boundary.
SEAM_FRAMES = np.array(
    sorted({f for c in range(1, N_CHUNKS) for f in (100 * c - 1, 100 * c, 100 * c + 1)}), dtype=np.int64
)
#: Cases whose signal is a full-scale tone (goal: fp16 error finite and below 0.5).
TONE_CASES = ("sine_100_fs", "sine_440_fs", "sine_1000_fs", "sine_3000_fs", "sine_7000_fs", "chirp_fs")


# ---------------------------------------------------------------------- signals
#: The speech clips of the study (``data/``, made by ``data/make_clips.py``).
SPEECH_FILES = {"speech": "speech_15s.wav", "speech_short": "speech_short.wav"}


def speech_clips() -> dict[str, np.ndarray]:
    """``{"speech": [S], "speech_short": [S]}``: the committed clips of ``data/`` (first 15 s)."""
    return {name: data_clip(file).samples[:WINDOW_SAMPLES] for name, file in SPEECH_FILES.items()}


@dataclass(frozen=True)
class Case:
    """One parity case: a waveform (``[S]``, ``S <= 240000``) and its valid length."""

    name: str
    signal: np.ndarray
    length: int
    group: str  # "speech", "silence", "tone", "noise", "sweep"


def default_cases(audio: np.ndarray | None = None) -> list[Case]:
    """The study's cases: speech, silence, digital-silence padding, tones, noise, a length sweep.

    ``audio`` (mono 16 kHz float samples), if given, is added as case ``audio`` (its
    first 15 s).
    """
    t = np.arange(WINDOW_SAMPLES) / SAMPLE_RATE
    rng = np.random.default_rng(1234)
    clips = speech_clips()
    speech = clips["speech"]
    short = clips["speech_short"]
    padded = np.zeros(WINDOW_SAMPLES, np.float32)
    start = 4 * CHUNK_SAMPLES + 123  # off the chunk grid, so seams fall inside speech and silence
    padded[start : start + len(short)] = short
    cases = []
    if audio is not None:
        a = np.asarray(audio, dtype=np.float32)[:WINDOW_SAMPLES]
        cases.append(Case("audio", a, len(a), "speech"))
    cases += [
        Case("speech", speech, len(speech), "speech"),
        Case("speech_short", short, len(short), "speech"),
        Case("speech_in_digital_silence", padded, WINDOW_SAMPLES, "speech"),
        Case("silence", np.zeros(WINDOW_SAMPLES, np.float32), WINDOW_SAMPLES, "silence"),
    ]
    for freq in (100, 440, 1000, 3000, 7000):
        sig = np.sin(2 * np.pi * freq * t + 0.3).astype(np.float32)
        cases.append(Case(f"sine_{freq}_fs", sig, WINDOW_SAMPLES, "tone"))
    chirp = np.sin(2 * np.pi * (50 * t + (7900 - 50) / (2 * 15.0) * t**2)).astype(np.float32)
    cases.append(Case("chirp_fs", chirp, WINDOW_SAMPLES, "tone"))
    cases.append(Case("noise_white_fs", rng.uniform(-1, 1, WINDOW_SAMPLES).astype(np.float32), WINDOW_SAMPLES, "noise"))
    cases.append(Case("noise_quiet", (1e-3 * rng.standard_normal(WINDOW_SAMPLES)).astype(np.float32), WINDOW_SAMPLES, "noise"))
    sweep = (0.1 * rng.standard_normal(WINDOW_SAMPLES)).astype(np.float32)
    for length in SWEEP_LENGTHS:
        cases.append(Case(f"noise_len_{length}", sweep[:length], length, "sweep"))
    return cases


# ---------------------------------------------------------------------- rows
@dataclass
class ParityRow:
    """The numbers of one case. Errors are max/mean absolute differences over valid frames.

    ``*_frames`` arrays hold, per valid frame, the max over the 128 features.
    ``fp16_*`` compare the float16-emulated chunked mel with NeMo's float32 mel
    (``None`` when the fp16 study was skipped).
    """

    case: str
    group: str
    length: int
    mel_length: int
    mel_length_nemo: int
    mel_length_equal: bool
    pad_zero_and_finite: bool
    chunked_vs_nemo_max: float
    chunked_vs_nemo_mean: float
    chunked_vs_f64_max: float
    chunked_vs_f64_mean: float
    nemo_vs_f64_max: float
    nemo_vs_f64_mean: float
    global_vs_f64_max: float
    seam_vs_f64_max: float
    rest_vs_f64_max: float
    frames_vs_nemo: np.ndarray = field(repr=False)
    frames_vs_f64: np.ndarray = field(repr=False)
    frames_nemo_vs_f64: np.ndarray = field(repr=False)
    fp16_safe_vs_nemo_max: float | None = None
    fp16_safe_ftz_vs_nemo_max: float | None = None
    fp16_plain_vs_nemo_max: float | None = None

    def as_dict(self, frames: bool = True) -> dict[str, Any]:
        """JSON-ready dict (numpy arrays as lists, non-finite numbers as strings)."""
        out: dict[str, Any] = {}
        for key, value in self.__dict__.items():
            if isinstance(value, np.ndarray):
                if frames:
                    out[key] = [_json_number(float(v), 4) for v in value]
            else:
                out[key] = _json_number(value) if isinstance(value, float) else value
        return out


def _json_number(v: float, digits: int | None = None) -> float | str:
    if not math.isfinite(v):
        return str(v)
    return float(f"{v:.{digits}g}") if digits else v


def _errors(a: np.ndarray, b: np.ndarray, n_valid: int) -> tuple[float, float, np.ndarray]:
    """``(max, mean, per-frame max)`` of ``|a - b|`` over frames ``< n_valid`` (``[128, T]`` inputs)."""
    if n_valid <= 0:
        return 0.0, 0.0, np.zeros(0)
    d = np.abs(a[:, :n_valid].astype(np.float64) - b[:, :n_valid].astype(np.float64))
    per_frame = d.max(axis=0)
    return float(d.max()), float(d.mean()), per_frame


class _Runner:
    """Holds the modules (built once) and runs one case through every implementation."""

    def __init__(self) -> None:
        self.nemo = Preprocessor(build_preprocessor()).eval()
        self.chunked = ChunkedPreprocessor().eval()
        self.chunked_fp16 = ChunkedPreprocessor(fp16_safe=True).eval()

    def run(self, case: Case, fp16: bool) -> ParityRow:
        chunks, length = to_chunks(case.signal)
        window = chunks.reshape(1, -1)
        full = window[0].numpy()
        with torch.no_grad():
            nemo_mel, nemo_len = self.nemo(window, length)
            mel, mel_len = self.chunked(chunks, length)
            glob, _ = ref.mel_torch_stft(window, length)
        nemo_mel = nemo_mel[0].numpy()
        mel_np = mel[0].numpy()
        exact, exact_len = ref.mel_float64(full, case.length)
        n = int(mel_len[0])
        seam = SEAM_FRAMES[SEAM_FRAMES < n]
        rest = np.setdiff1d(np.arange(n), seam)
        c_nemo = _errors(mel_np, nemo_mel, n)
        c_f64 = _errors(mel_np, exact, n)
        n_f64 = _errors(nemo_mel, exact, n)
        g_f64 = _errors(glob[0].numpy(), exact, n)
        pad_ok = bool(np.isfinite(mel_np).all() and np.all(mel_np[:, n:] == 0.0))
        row = ParityRow(
            case=case.name, group=case.group, length=case.length,
            mel_length=n, mel_length_nemo=int(nemo_len[0]),
            mel_length_equal=(n == int(nemo_len[0]) == exact_len),
            pad_zero_and_finite=pad_ok,
            chunked_vs_nemo_max=c_nemo[0], chunked_vs_nemo_mean=c_nemo[1],
            chunked_vs_f64_max=c_f64[0], chunked_vs_f64_mean=c_f64[1],
            nemo_vs_f64_max=n_f64[0], nemo_vs_f64_mean=n_f64[1],
            global_vs_f64_max=g_f64[0],
            seam_vs_f64_max=float(c_f64[2][seam].max()) if len(seam) else 0.0,
            rest_vs_f64_max=float(c_f64[2][rest].max()) if len(rest) else 0.0,
            frames_vs_nemo=c_nemo[2], frames_vs_f64=c_f64[2], frames_nemo_vs_f64=n_f64[2],
        )
        if fp16:
            row.fp16_safe_vs_nemo_max = _fp16_error(self.chunked_fp16, chunks, length, nemo_mel, n, False)
            row.fp16_safe_ftz_vs_nemo_max = _fp16_error(self.chunked_fp16, chunks, length, nemo_mel, n, True)
            row.fp16_plain_vs_nemo_max = _fp16_error(self.chunked, chunks, length, nemo_mel, n, False)
        return row


def _fp16_error(module, chunks, length, nemo_mel, n, flush) -> float:
    mel16, _ = run_fp16(module, chunks, length, flush_subnormals=flush)
    m = mel16[0].numpy()
    if not np.isfinite(m[:, :n]).all():
        return float("inf")
    return _errors(m, nemo_mel, n)[0]


# ---------------------------------------------------------------------- report
@dataclass
class ParityReport:
    """Rows of the study plus the environment; ``table()`` for people, ``to_json()`` for tools."""

    rows: list[ParityRow]
    meta: dict[str, Any]

    def row(self, case: str) -> ParityRow:
        """The row of ``case`` (``KeyError`` if absent)."""
        for r in self.rows:
            if r.case == case:
                return r
        raise KeyError(case)

    def goals(self) -> list[dict[str, Any]]:
        """The issue's goals, each ``{"goal", "met", "detail"}``, evaluated on these rows."""
        out = []

        def add(goal: str, failures: list[str], checked: int) -> None:
            out.append({"goal": goal, "met": not failures and checked > 0,
                        "detail": "; ".join(failures) if failures else f"{checked} cases"})

        rows = self.rows
        add("chunked fp32 at least as close to float64 as NeMo fp32 (max abs)",
            [f"{r.case}: {r.chunked_vs_f64_max:.2e} > {r.nemo_vs_f64_max:.2e}" for r in rows
             if r.chunked_vs_f64_max > r.nemo_vs_f64_max], len(rows))
        sp = [r for r in rows if r.group in ("speech", "noise", "sweep")]
        add("speech and noise within 1e-4 of NeMo",
            [f"{r.case}: {r.chunked_vs_nemo_max:.2e} (NeMo itself {r.nemo_vs_f64_max:.2e} from float64, chunked "
             f"{r.chunked_vs_f64_max:.2e})" for r in sp if r.chunked_vs_nemo_max > 1e-4], len(sp))
        seamed = [r for r in rows if r.mel_length > SEAM_FRAMES[0] + 1 and r.rest_vs_f64_max > 0]
        add("seam frames not above 2x the rest (error vs float64)",
            [f"{r.case}: seam {r.seam_vs_f64_max:.2e} vs rest {r.rest_vs_f64_max:.2e}" for r in seamed
             if r.seam_vs_f64_max > 2.0 * r.rest_vs_f64_max + 1e-6], len(seamed))
        add("mel_length equal to NeMo's; padding frames 0, all finite",
            [r.case for r in rows if not (r.mel_length_equal and r.pad_zero_and_finite)], len(rows))
        f16 = [r for r in rows if r.fp16_safe_vs_nemo_max is not None]
        if f16:
            add("fp16 (emulated, fp16_safe) within 0.05 of NeMo on speech",
                [f"{r.case}: {r.fp16_safe_vs_nemo_max:.3g}" for r in f16
                 if r.group == "speech" and not r.fp16_safe_vs_nemo_max <= 0.05],
                sum(r.group == "speech" for r in f16))
            hard = [r for r in f16 if r.case in TONE_CASES or r.case == "speech_in_digital_silence"]
            add("fp16 (emulated, fp16_safe, with and without flushing) finite and < 0.5 on full-scale tones "
                "and next to digital silence",
                [f"{r.case}: {max(r.fp16_safe_vs_nemo_max, r.fp16_safe_ftz_vs_nemo_max):.3g}" for r in hard
                 if not max(r.fp16_safe_vs_nemo_max, r.fp16_safe_ftz_vs_nemo_max) < 0.5], len(hard))
        return out

    def to_json(self, frames: bool = True) -> dict[str, Any]:
        """A JSON-serialisable dict: ``meta``, ``goals`` and ``rows`` (with per-frame arrays)."""
        return {"meta": self.meta, "goals": self.goals(), "rows": [r.as_dict(frames) for r in self.rows]}

    def table(self) -> str:
        """A short fixed-width text table of every case, then the goals."""
        head = (f"{'case':27s} {'len':>6s} {'mel':>4s} {'ok':>2s} {'vs NeMo':>8s} {'mean':>8s} "
                f"{'vs f64':>8s} {'NeMo-f64':>8s} {'glob-f64':>8s} {'seam/rest':>9s} "
                f"{'fp16':>7s} {'ftz':>7s} {'plain16':>7s}")
        lines = [head, "-" * len(head)]

        def g(v: float | None) -> str:
            return "    -  " if v is None else f"{v:7.3g}"

        for r in self.rows:
            ratio = f"{r.seam_vs_f64_max / r.rest_vs_f64_max:9.2f}" if r.rest_vs_f64_max > 0 else f"{'-':>9s}"
            ok = "y" if r.mel_length_equal and r.pad_zero_and_finite else "N"
            lines.append(
                f"{r.case:27s} {r.length:6d} {r.mel_length:4d} {ok:>2s} {r.chunked_vs_nemo_max:8.1e} "
                f"{r.chunked_vs_nemo_mean:8.1e} {r.chunked_vs_f64_max:8.1e} {r.nemo_vs_f64_max:8.1e} "
                f"{r.global_vs_f64_max:8.1e} {ratio} {g(r.fp16_safe_vs_nemo_max)} "
                f"{g(r.fp16_safe_ftz_vs_nemo_max)} {g(r.fp16_plain_vs_nemo_max)}"
            )
        lines.append("")
        lines.append("columns: max abs error of the normalised mel over valid frames. vs NeMo / mean: chunked fp32 "
                     "vs NeMo fp32; vs f64: chunked vs the float64 reference; NeMo-f64, glob-f64: NeMo and a global "
                     "torch.stft fp32 pipeline vs float64; seam/rest: max error on chunk-seam frames over the rest; "
                     "fp16, ftz, plain16: emulated float16 (fp16_safe variant, same with subnormals flushed, default "
                     "variant) vs NeMo fp32; the default variant is float32-only, so plain16 shows what blanket "
                     "float16 does to it (inf: its exact-DFT split overflows).")
        for goal in self.goals():
            lines.append(f"[{'met' if goal['met'] else 'NOT met'}] {goal['goal']}: {goal['detail']}")
        return "\n".join(lines)


def environment() -> dict[str, Any]:
    """Versions and machine facts recorded with a report."""
    import nemo

    return {
        "torch": torch.__version__, "numpy": np.__version__, "nemo": nemo.__version__,
        "python": platform.python_version(), "machine": platform.machine(),
        "torch_threads": torch.get_num_threads(),
    }


def run_parity(
    audio: np.ndarray | None = None, *, cases: list[str] | None = None, fp16: bool = True
) -> ParityReport:
    """Run the parity study.

    ``audio``: optional mono 16 kHz float samples, added as case ``audio`` (first 15 s).
    ``cases``: run only these case names (default: all of :func:`default_cases`).
    ``fp16``: also run the float16 emulation (about 3 extra runs per case).
    Returns a :class:`ParityReport`. Deterministic: every signal is seeded.
    """
    if audio is not None:
        audio = np.asarray(audio)
        if audio.ndim != 1 or audio.size == 0:
            raise ValueError(f"audio must be 1-D mono samples, got shape {list(audio.shape)}")
    selected = default_cases(audio)
    if cases is not None:
        unknown = sorted(set(cases) - {c.name for c in selected})
        if unknown:
            raise ValueError(f"unknown case(s): {', '.join(unknown)}")
        selected = [c for c in selected if c.name in cases]
    runner = _Runner()
    rows = [runner.run(case, fp16) for case in selected]
    meta = environment()
    meta.update({
        "speech_source": {name: f"data/{file}" for name, file in SPEECH_FILES.items()},
        "audio_samples_used": None if audio is None else int(min(audio.size, WINDOW_SAMPLES)),
        "audio_truncated": bool(audio is not None and audio.size > WINDOW_SAMPLES),
        "fp16": "emulation: each op exact in float32, inputs and outputs rounded to float16 "
                "(parakeet_nb.frontend.fp16); not the Neural Engine's arithmetic" if fp16 else None,
        "frames": MEL_FRAMES, "hop": HOP, "seam_frames": SEAM_FRAMES.tolist(),
    })
    return ParityReport(rows=rows, meta=meta)
