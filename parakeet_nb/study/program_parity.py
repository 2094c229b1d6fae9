"""Parity of the exported Core ML programs with their PyTorch modules, on Linux.

Core ML's ``predict`` only runs on macOS, so this runs every exported package with the
reference MIL executor (:mod:`parakeet_nb.mlprogram.milexec`) **as typed** (each op in the
dtype the program declares: float16 ops round to float16, the float32 island of the chunked
fp16 design and every op of a float32 package stay float32, as Core ML runs a program;
coremltools guide "Typed Execution",
https://apple.github.io/coremltools/docs-guides/source/typed-execution.html) and compares
each output with the PyTorch module it was converted from, on the same inputs:

* the front ends (``preprocessor``, ``mel_encoder`` and their chunked versions) on the
  speech clips of ``data/``, full-scale tones (100 Hz, 440 Hz, 1 kHz), full-scale white
  noise and speech next to digital silence (the signals of :mod:`parakeet_nb.study.parity`);
* the ``encoder`` on the mel of those clips and on a seeded random mel;
* ``decoder``, ``joint`` and ``joint_decision`` on seeded random inputs
  (:func:`parakeet_nb.coreml.convert.example_inputs`).

By default the packages are those of the **default export** (precision profile ``auto``:
float16 compute for the components the ANE may take, float32 for ``preprocessor`` and
``mel_encoder``; :func:`parakeet_nb.coreml.convert.component_precision`).

Figures that do not depend on the machine
-----------------------------------------
A float32 error printed to three digits is noise from one machine's summation order: the
same program gave 9.78e-04 on one x86-64 machine and 2.97e-04 on another (OpenBLAS
SkylakeX kernels). So every figure here measures the *program's own* deviation, and the
stored text shows it only at a resolution that noise cannot move:

* the executor accumulates products in float64 (``accumulate="fp64"``) and rounds each op
  once to its declared type, so BLAS kernels and thread counts no longer choose the
  summation order;
* the reference is computed in float64: the mel from the float64 recipe of NeMo's
  preprocessor (:func:`parakeet_nb.frontend.mel_reference.mel_float64`; NeMo's module itself
  casts to float32 and the chunked module is float32-only), the encoder, decoder and joints
  from their PyTorch wrappers converted to float64 (``mel_encoder*``: the float64 encoder
  on the float64 mel). The encoder's input mel is the float64 recipe rounded to float32,
  the same bits on every machine;
* what remains machine-dependent is the last-ulp behaviour of float32 elementwise maths
  (numpy's SIMD ``log``/``exp``/``tanh`` differ by CPU), which moves a max error by about
  its own size. :meth:`ProgramParityReport.table` therefore prints each error as its
  relation to a bound (``<0.001``, ``>0.05``), with bounds at least 5x above the
  float32 figures and 2.5x above the float16 ones measured here (each goal's text states
  its margin);
  ``table(digits=True)`` (``parakeet-nb parity --programs --digits``, ``make bench``) prints
  the raw values, whose last digits vary between machines. The reference's spread
  (``std`` over the output) is a float64 figure and is printed to two digits.

Errors are max and mean absolute differences per output (mels over the valid frames
``t < mel_length``); integer outputs (lengths, token ids, durations) must be equal.

``run_program_parity(modules)`` returns a :class:`ProgramParityReport` (``.table()``,
``.to_json()``, ``.goals()``); it backs ``parakeet-nb parity --programs``.
:func:`run_end_to_end` transcribes clips with an exported set and with PyTorch.
"""

from __future__ import annotations

import copy
import json
import math
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from parakeet_nb.frontend.mel_reference import mel_float64
from parakeet_nb.coreml.convert import COMPONENTS, PROFILES, component_precision, contract_dtype, example_inputs
from parakeet_nb.model.components import Encoder, wrappers
from parakeet_nb.model.presets import ParakeetModules
from parakeet_nb.study.parity import F32_BOUNDS, bound_text

#: Bounds of the goals and of the printed relation (module docstring). float32 programs:
#: the mel as in the mel study (:data:`parakeet_nb.study.parity.F32_BOUNDS`: NeMo's float32
#: recipe itself is ~1e-3 from float64 on a full-scale 440 Hz tone, whatever the summation
#: order), by source group; the encoder, decoder and joints against fixed bounds.
MEL_BOUNDS = {"speech": F32_BOUNDS["speech"], "tone": F32_BOUNDS["tone"], "noise": F32_BOUNDS["noise"]}
ENCODER_ATOL = 1e-3
OTHER_ATOL = 1e-4
#: float16 programs, mel: on speech (the issue's goal), and on tones and silence edges.
FP16_MEL_SPEECH = 0.05
FP16_MEL_HARD = 0.5
#: float16 programs, encoder/decoder/joint outputs: printed against this fraction of the
#: reference's own spread (std); a report, not a goal.
FP16_SPREAD_FRACTION = 0.1
#: Speech clips of ``data/`` used as inputs (name -> file).
CLIPS = {"speech_15s": "speech_15s.wav", "speech_short": "speech_short.wav"}
#: Signals of :func:`parakeet_nb.study.parity.default_cases` added for the front ends:
#: full-scale tones and speech next to digital silence (goal: finite, within 0.5), noise.
HARD_SOURCES = ("sine_100_fs", "sine_440_fs", "sine_1000_fs", "speech_in_digital_silence")
NOISE_SOURCE = "noise_white_fs"
#: Components whose inputs come from a waveform, and the one taking a mel.
WAVEFORM_COMPONENTS = ("preprocessor", "mel_encoder", "preprocessor_chunked", "mel_encoder_chunked")
MEL_COMPONENTS = ("encoder",)
#: The outputs of an encoder (error reported next to their spread).
ENCODER_OUTPUTS = ("encoder",)


@dataclass(frozen=True)
class ProgramRow:
    """One output of one package on one input: ``|program - float64 reference|``.

    ``package``: the compute precision the package was converted with (``fp32``/``fp16``);
    ``numerics``: how the executor ran it (``typed``: each op in its declared dtype;
    ``fp16``: every tensor rounded to float16 after each op, an emulation shown for float32
    packages); ``source``: the input (a clip or signal name, or ``"random"``);
    ``ref_max`` / ``ref_std``: the largest ``|reference|`` and the reference's standard
    deviation (float64 figures, for scale); ``integer``: an int32 output (must be equal);
    ``bound``: the bound the printed relation uses (``None`` for integers).
    """

    component: str
    package: str
    numerics: str
    source: str
    output: str
    max_abs: float
    mean_abs: float
    ref_max: float
    ref_std: float
    integer: bool
    bound: float | None = None

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("max_abs", "mean_abs", "ref_max", "ref_std"):
            if not math.isfinite(out[key]):
                out[key] = str(out[key])
        return out


def _difference(program: np.ndarray, reference: np.ndarray) -> tuple[float, float, float, float]:
    """``(max, mean)`` of ``|program - reference|`` and ``(max |ref|, std ref)``, in float64."""
    a = np.asarray(program, dtype=np.float64)
    b = np.asarray(reference, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"shape {list(a.shape)} differs from the reference's {list(b.shape)}")
    if a.size == 0:
        return 0.0, 0.0, 0.0, 0.0
    scale = (float(np.abs(b).max()), float(b.std()))
    if not np.all(np.isfinite(a)):
        return (math.inf, math.inf, *scale)
    d = np.abs(a - b)
    return (float(d.max()), float(d.mean()), *scale)


def row_bound(component: str, package: str, source: str, output: str, ref_std: float) -> float | None:
    """The bound a row's max error is printed against (and, for the goals, judged on).

    float32 packages: :data:`MEL_BOUNDS` by source group, :data:`ENCODER_ATOL`,
    :data:`OTHER_ATOL`. float16 packages: the mel against :data:`FP16_MEL_SPEECH` or, on
    :data:`HARD_SOURCES`, :data:`FP16_MEL_HARD`; other outputs against
    :data:`FP16_SPREAD_FRACTION` times the reference's std, to one digit (that fraction
    itself for a single-value output, whose std is 0). ``None`` for integer outputs.
    """
    if contract_dtype(output) == "int32":
        return None
    if package == "fp32":
        if output == "mel":
            group = "tone" if source.startswith("sine_") else "noise" if source == NOISE_SOURCE else "speech"
            return MEL_BOUNDS[group]
        return ENCODER_ATOL if output in ENCODER_OUTPUTS else OTHER_ATOL
    if output == "mel":
        return FP16_MEL_HARD if source in HARD_SOURCES else FP16_MEL_SPEECH
    return float(f"{FP16_SPREAD_FRACTION * ref_std:.1g}") if ref_std > 0 else FP16_SPREAD_FRACTION


#: The signals the front ends get besides the clips (default of ``signals``).
SIGNALS = (*HARD_SOURCES, NOISE_SOURCE)


def waveforms(clips: dict[str, np.ndarray], signals: Sequence[str] = SIGNALS) -> dict[str, np.ndarray]:
    """``clips`` plus ``signals``, cases of :func:`parakeet_nb.study.parity.default_cases`
    (default: the tones, speech next to digital silence and noise)."""
    from parakeet_nb.study.parity import default_cases

    cases = {c.name: c.signal for c in default_cases()}
    unknown = [name for name in signals if name not in cases]
    if unknown:
        raise ValueError(f"unknown signal(s) {', '.join(unknown)}: expected names from {', '.join(SIGNALS)}")
    return {**clips, **{name: cases[name] for name in signals}}


def _mel64(samples: np.ndarray) -> tuple[np.ndarray, int]:
    """The float64 recipe mel ``[128, 1501]`` of a waveform padded to the 15 s window, and its length."""
    from parakeet_nb.transcribe.pipeline import window

    signal, length = window(samples)
    return mel_float64(signal[0].numpy(), int(length[0]))


def input_sets(
    modules: ParakeetModules, name: str, clips: dict[str, np.ndarray], signals: Sequence[str] = SIGNALS
) -> dict[str, tuple[torch.Tensor, ...]]:
    """The inputs ``component name`` is checked on: source name -> torch inputs in contract order.

    ``clips``: mono 16 kHz waveforms (``[S]``, ``S <= 240000``) by name; the front ends also
    get ``signals`` (:func:`waveforms`). The encoder's mel
    is the float64 recipe rounded to float32 (``[1, 128, 1501]``), identical on every machine.
    """
    from parakeet_nb.frontend.chunked import to_chunks
    from parakeet_nb.transcribe.pipeline import window

    sets: dict[str, tuple[torch.Tensor, ...]] = {}
    chunked = "audio_chunks" in [spec.name for spec in COMPONENTS[name].inputs]
    if name in WAVEFORM_COMPONENTS:
        for source, samples in waveforms(clips, signals).items():
            sets[source] = to_chunks(samples) if chunked else window(samples)
        return sets
    if name in MEL_COMPONENTS:
        for source, samples in clips.items():
            mel, n = _mel64(samples)
            sets[source] = (torch.from_numpy(mel.astype(np.float32))[None], torch.tensor([n], dtype=torch.int32))
    sets["random"] = example_inputs(COMPONENTS[name], modules, seed=1)
    return sets


def _feed(name: str, inputs: tuple[torch.Tensor, ...]) -> dict[str, np.ndarray]:
    feed = {}
    for spec, tensor in zip(COMPONENTS[name].inputs, inputs):
        array = tensor.detach().numpy()
        feed[spec.name] = array.astype(np.int32 if contract_dtype(spec.name) == "int32" else np.float32)
    return feed


class _References:
    """The float64 reference of each component (module docstring), wrappers built once."""

    def __init__(self, modules: ParakeetModules) -> None:
        self._wrappers = wrappers(modules)
        self._encoder64 = Encoder(copy.deepcopy(modules.encoder)).double().eval()
        self._wide: dict[str, torch.nn.Module] = {}

    def _wide_wrapper(self, name: str) -> torch.nn.Module:
        if name not in self._wide:
            self._wide[name] = copy.deepcopy(self._wrappers[name]).double().eval()
        return self._wide[name]

    def __call__(self, name: str, inputs: tuple[torch.Tensor, ...]) -> dict[str, np.ndarray]:
        """``output name -> float64 array``; a mel keeps only its valid frames."""
        if name in WAVEFORM_COMPONENTS:
            samples = inputs[0].reshape(-1).double().numpy()
            mel, n = mel_float64(samples, int(inputs[1].reshape(-1)[0]))
            if name.startswith("preprocessor"):
                return {"mel": mel[None, :, :n], "mel_length": np.array([n], np.int32)}
            with torch.no_grad():
                enc, enc_len = self._encoder64(torch.from_numpy(mel)[None], torch.tensor([n], dtype=torch.int32))
            return {"encoder": enc.numpy(), "encoder_length": enc_len.numpy()}
        wide = tuple(t.double() if t.is_floating_point() else t for t in inputs)
        with torch.no_grad():
            out = self._wide_wrapper(name)(*wide)
        out = out if isinstance(out, (tuple, list)) else (out,)
        return {key: value.detach().numpy() for key, value in zip(COMPONENTS[name].outputs, out)}


@dataclass
class ProgramParityReport:
    """Rows for every package, output, input and numerics mode, plus where they came from."""

    rows: list[ProgramRow]
    meta: dict[str, Any]

    def select(self, **match: str) -> list[ProgramRow]:
        """Rows whose fields equal the given values, e.g. ``select(component="encoder")``."""
        return [r for r in self.rows if all(getattr(r, k) == v for k, v in match.items())]

    def goals(self) -> list[dict[str, Any]]:
        """The goals, each ``{"goal", "met", "detail"}``, judged on the typed runs.

        ``detail`` states the bound and the margin the bound has over the figures measured
        when it was set; failures name the row and its relation to the bound (no raw noise).
        """
        out: list[dict[str, Any]] = []
        typed = [r for r in self.rows if r.numerics == "typed"]
        clips = set(self.meta["clips"])

        def add(goal: str, rows: list[ProgramRow]) -> None:
            if not rows:
                return

            def ok(r: ProgramRow) -> bool:
                return r.max_abs == 0.0 if r.bound is None else r.max_abs < r.bound

            bad = [r for r in rows if not ok(r)]
            detail = "; ".join(f"{r.component} {r.output} on {r.source}: "
                               f"{'differs' if r.bound is None else bound_text(r.max_abs, r.bound)}" for r in bad)
            out.append({"goal": goal, "met": not bad, "detail": detail or f"{len(rows)} checks"})

        fp32 = [r for r in typed if r.package == "fp32"]
        fp16 = [r for r in typed if r.package == "fp16"]
        add(f"float32 programs: mel within {MEL_BOUNDS['speech']:g} of the float64 recipe on speech, "
            f"{MEL_BOUNDS['tone']:g} on tones and noise (measured <1e-4 and <2e-3: >=5x margin)",
            [r for r in fp32 if r.output == "mel"])
        add(f"float32 programs: encoder output within {ENCODER_ATOL:g} of the float64 module (measured <1e-4: "
            ">=10x margin)", [r for r in fp32 if r.output in ENCODER_OUTPUTS])
        add(f"float32 programs: decoder and joint outputs within {OTHER_ATOL:g} of the float64 modules",
            [r for r in fp32 if not r.integer and r.output not in ("mel", *ENCODER_OUTPUTS)])
        add("integer outputs (lengths, token ids, durations) equal to the reference's",
            [r for r in typed if r.integer])
        add(f"float16 chunked mel within {FP16_MEL_SPEECH:g} of NeMo's recipe on speech (measured <0.01: >=5x margin)",
            [r for r in fp16 if r.output == "mel" and r.source in clips])
        add(f"float16 chunked mel finite and within {FP16_MEL_HARD:g} on full-scale tones and next to digital "
            "silence (measured <0.2: >=2.5x margin)",
            [r for r in fp16 if r.output == "mel" and r.source in HARD_SOURCES])
        return out

    def to_json(self) -> dict[str, Any]:
        """A JSON-serialisable dict: ``meta``, ``goals`` and ``rows`` (raw figures)."""
        return {"meta": self.meta, "goals": self.goals(), "rows": [r.as_dict() for r in self.rows]}

    def table(self, outputs: Sequence[str] | None = None, *, digits: bool = False) -> str:
        """A fixed-width text table (one line per row; only ``outputs`` if given), then the goals.

        By default each error is printed as its relation to the row's bound (``<1e-4``), the
        same on every machine; ``digits=True`` prints the raw max and mean (machine-dependent
        last digits). ``ref std``: the float64 reference's spread, two digits.
        """
        err = "max abs" if digits else "max vs bound"
        head = (f"{'component':20s} {'pkg':4s} {'run':5s} {'input':25s} {'output':14s} {err:>12s} "
                f"{'mean abs':>12s} {'ref std':>8s}")
        lines = [head, "-" * len(head)]
        for r in self.rows:
            if outputs is not None and r.output not in outputs:
                continue
            if r.integer:
                worst = mean = "equal" if r.max_abs == 0 else "differ"
            elif digits:
                worst, mean = f"{r.max_abs:.2e}", f"{r.mean_abs:.2e}"
            else:
                worst, mean = bound_text(r.max_abs, r.bound), bound_text(r.mean_abs, r.bound / 10)
            std = "-" if r.integer else f"{r.ref_std:.2g}"
            lines.append(f"{r.component:20s} {r.package:4s} {r.numerics:5s} {r.source:25s} {r.output:14s} "
                         f"{worst:>12s} {mean:>12s} {std:>8s}")
        lines += ["", "pkg: the package's compute precision; run: typed = each op in the dtype the program "
                  "declares (as Core ML runs it), fp16 = every tensor rounded to float16 after each op (an "
                  "emulation, not the Neural Engine's arithmetic). Errors vs a float64 reference (the mel: "
                  "NeMo's recipe in float64; the rest: the PyTorch module in float64), products accumulated "
                  "in float64; "
                  + ("raw values: their last digits vary with the machine's float32 maths."
                     if digits else "printed against bounds (mean: a tenth of the bound) so that they read "
                     "the same on every machine; float16 non-mel outputs: bound = "
                     f"{FP16_SPREAD_FRACTION:g} x ref std.")]
        lines += [f"[{'met' if g['met'] else 'NOT met'}] {g['goal']}: {g['detail']}" for g in self.goals()]
        return "\n".join(lines)


def default_clips() -> dict[str, np.ndarray]:
    """The speech clips of ``data/`` (:data:`CLIPS`), first 15 s, as float32 waveforms."""
    from parakeet_nb.frontend.audio import data_clip
    from parakeet_nb.frontend.recipe import WINDOW_SAMPLES

    return {name: data_clip(file).samples[:WINDOW_SAMPLES] for name, file in CLIPS.items()}


def export_packages(
    modules: ParakeetModules, folder: str | Path, components: Sequence[str], profiles: Iterable[str]
) -> dict[tuple[str, str], Path]:
    """Export ``components`` under each precision profile into ``folder/<profile>/``.

    Returns ``(name, compute precision) -> package``; a component with the same precision
    under two profiles is exported once.
    """
    from parakeet_nb.coreml.export import export

    packages: dict[tuple[str, str], Path] = {}
    for profile in profiles:
        todo = [n for n in components if (n, component_precision(profile, n)) not in packages]
        if not todo:
            continue
        result = export(modules, Path(folder) / profile, only=todo, precision=profile)
        for component in result.components:
            packages[(component.name, component_precision(profile, component.name))] = result.out_dir / component.file
    return packages


def packages_in(export_dir: str | Path, modules: ParakeetModules | None = None) -> dict[tuple[str, str], Path]:
    """The packages an earlier ``parakeet-nb export`` wrote: ``(name, compute precision) -> package``.

    Reads ``export_dir/metadata.json``; raises ``ValueError`` if it is missing, unreadable,
    lists no package that exists, or (with ``modules``) was exported from another model.
    """
    export_dir = Path(export_dir)
    meta_path = export_dir / "metadata.json"
    if not meta_path.is_file():
        raise ValueError(f"{export_dir}: no metadata.json; expected a folder written by `parakeet-nb export`")
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{meta_path}: not valid JSON ({exc})") from None
    source = meta.get("model", {}).get("source")
    if modules is not None and source != modules.source:
        raise ValueError(f"{export_dir} was exported from {source!r}, not from {modules.source!r}; "
                         "pass the same --preset or --nemo as for the export")
    found = {}
    for name, entry in meta.get("components", {}).items():
        path = export_dir / entry["file"]
        if name in COMPONENTS and path.exists():
            found[(name, entry.get("precision", {}).get("requested", "fp32"))] = path
    if not found:
        raise ValueError(f"{export_dir}: metadata.json lists no package that exists")
    return found


def run_program_parity(
    modules: ParakeetModules,
    *,
    packages: dict[tuple[str, str], Path] | None = None,
    components: Sequence[str] | None = None,
    precisions: Sequence[str] = ("auto",),
    clips: dict[str, np.ndarray] | None = None,
    signals: Sequence[str] = SIGNALS,
    emulate_fp16: bool = False,
) -> ProgramParityReport:
    """Run every package with the MIL executor, as typed, against its float64 reference.

    ``packages``: ``(component, compute precision) -> .mlpackage`` (e.g. :func:`packages_in`);
    by default ``components`` (those :data:`COMPONENTS` exports by default) are exported under the precision
    profiles ``precisions`` (default the deployable ``auto``; also ``fp32``, ``fp16``) into
    a temporary folder first. ``modules`` must be the model the packages came from.
    ``clips``: speech waveforms by name (default :func:`default_clips`); the front ends also
    get ``signals`` (default :data:`SIGNALS`: the tones, speech next to digital silence and
    noise). ``emulate_fp16``: also run float32 packages with every
    tensor rounded to float16 (shows what blanket float16 does to a float32 design).
    """
    from parakeet_nb.mlprogram.load import load_program
    from parakeet_nb.mlprogram.milexec import MilExecutor

    names = list(components) if components is not None else [n for n, c in COMPONENTS.items() if c.default]
    unknown = [n for n in names if n not in COMPONENTS]
    if unknown:
        raise ValueError(f"unknown component(s) {', '.join(unknown)}: expected names from {', '.join(COMPONENTS)}")
    bad = [p for p in precisions if p not in PROFILES]
    if bad:
        raise ValueError(f"unknown precision profile(s) {', '.join(bad)}: expected {', '.join(PROFILES)}")
    clips = default_clips() if clips is None else clips
    references = _References(modules)
    rows: list[ProgramRow] = []
    with tempfile.TemporaryDirectory(prefix="program_parity_") as tmp:
        if packages is None:
            packages = export_packages(modules, tmp, names, precisions)
        order = list(COMPONENTS)
        for (name, package), path in sorted(packages.items(), key=lambda kv: (order.index(kv[0][0]), kv[0][1] != "fp32")):
            if name not in names:
                continue
            program = load_program(path)
            inputs = input_sets(modules, name, clips, signals)
            refs = {source: references(name, tensors) for source, tensors in inputs.items()}
            modes = [("typed", "fp32")] + ([("fp16", "fp16")] if emulate_fp16 and package == "fp32" else [])
            for label, numerics in modes:
                executor = MilExecutor(program, numerics=numerics, accumulate="fp64")
                for source, tensors in inputs.items():
                    result = executor.run(_feed(name, tensors))
                    for output, ref in refs[source].items():
                        got = result[output]
                        if output == "mel":
                            got = got[:, :, : ref.shape[-1]]
                        d = _difference(got, ref)
                        rows.append(ProgramRow(name, package, label, source, output, *d,
                                               integer=contract_dtype(output) == "int32",
                                               bound=row_bound(name, package, source, output, d[3])))
    meta = {
        "model": modules.source,
        "clips": {name: int(len(samples)) for name, samples in clips.items()},
        "signals": list(signals),
        "numerics": "typed: each op in the dtype the program declares; fp16: every floating tensor rounded to "
                    "float16 after each op (parakeet_nb.mlprogram.milexec; an emulation, not the Neural Engine's "
                    "arithmetic); products accumulated in float64",
        "reference": "float64: the mel recipe (parakeet_nb.frontend.mel_reference.mel_float64), the PyTorch "
                     "wrappers (parakeet_nb.model.components.wrappers) converted to float64",
    }
    return ProgramParityReport(rows=rows, meta=meta)


# ---------------------------------------------------------------------- end to end
@dataclass
class EndToEnd:
    """Transcripts of the same clips by PyTorch and by an exported set run by the executor."""

    refs: list[str]
    torch_hyps: list[str]
    program_hyps: list[str]
    torch_wer: float
    program_wer: float
    label: str

    def goal(self) -> dict[str, Any]:
        """``{"goal", "met", "detail"}``: the exported set gives the same words as PyTorch on every clip."""
        differ = [i for i, (a, b) in enumerate(zip(self.torch_hyps, self.program_hyps)) if a.split() != b.split()]
        return {"goal": f"{self.label}: same words as PyTorch on every clip", "met": not differ,
                "detail": f"{len(self.refs)} clips" if not differ else f"clips {differ} differ"}

    def to_json(self) -> dict[str, Any]:
        return {"goal": self.goal(), "torch_wer": self.torch_wer, "program_wer": self.program_wer,
                "clips": [{"reference": r, "torch": t, "program": p}
                          for r, t, p in zip(self.refs, self.torch_hyps, self.program_hyps)]}

    def summary(self) -> str:
        g = self.goal()
        return (f"WER on {len(self.refs)} clips: PyTorch {100 * self.torch_wer:.2f} %, exported "
                f"{100 * self.program_wer:.2f} %\n[{'met' if g['met'] else 'NOT met'}] {g['goal']}: {g['detail']}")


def run_end_to_end(
    modules: ParakeetModules,
    clips: Sequence[tuple[np.ndarray, str]],
    score: Callable[[Sequence[str], Sequence[str]], float],
    *,
    variant: str = "chunked",
    precision: str = "auto",
    export_dir: str | Path | None = None,
) -> EndToEnd:
    """Transcribe ``clips`` (``(waveform [S], reference text)``) with PyTorch and with the
    exported set of ``variant`` (its front end, ``decoder``, ``joint_decision``) run as typed
    by the executor (:func:`parakeet_nb.transcribe.pipeline.transcribe_exported`).

    ``export_dir``: an export holding that set; by default it is exported under the
    ``precision`` profile (default ``auto``, the default export) into a temporary folder.
    ``score(refs, hyps)`` is the word error rate (e.g. :func:`parakeet_nb.digits.wer.wer`).
    Words are robust to float32 noise and the WERs are exact ratios, so both read the same on
    every machine.
    """
    from parakeet_nb.coreml.export import export
    from parakeet_nb.transcribe.pipeline import exported_components, transcribe, transcribe_exported

    tok = modules.tokenizer
    with tempfile.TemporaryDirectory(prefix="end_to_end_") as tmp:
        if export_dir is None:
            export_dir = export(modules, Path(tmp) / precision, only=exported_components([variant]),
                                precision=precision).out_dir
        refs, torch_hyps, program_hyps = [], [], []
        for waveform, text in clips:
            refs.append(text)
            torch_hyps.append(tok.ids_to_text(transcribe(modules, waveform, variant).tokens))
            program_hyps.append(transcribe_exported(export_dir, waveform, variant, tokenizer=tok).text or "")
    return EndToEnd(refs, torch_hyps, program_hyps, score(refs, torch_hyps), score(refs, program_hyps),
                    label=f"{variant} set exported with precision {precision}, run as typed")
