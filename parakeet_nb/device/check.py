"""``parakeet-nb device-check DIR``: measure an export folder on a Mac.

For each package of ``DIR`` (the ``parakeet-nb export`` layout with ``metadata.json``, or
any folder of ``*.mlpackage`` / ``*.mlmodelc``, e.g. FluidAudio's names) and each
requested compute-unit setting it measures, through :mod:`parakeet_nb.device.worker` (one
child process per Core ML call):

* compile time (``.mlpackage`` -> ``.mlmodelc``) and load time;
* Core ML's compute plan, joined op by op with :func:`parakeet_nb.ane.planner.plan` of the
  same package and setting (policy ``conservative``, the Mac-like outcome, with typed
  execution: fp32-typed ops never reach the ANE) by :func:`parakeet_nb.device.compare.join`;
* ``predict`` on the speech clip ``data/speech_15s.wav`` (as ``[1, 240000]`` or as the
  chunked ``[1, 15, 16000]`` input, whichever the package takes; the encoder gets NeMo's
  mel of the clip; decoder and joint the seeded inputs of
  :func:`parakeet_nb.study.program_parity.input_sets`), its outputs against the PyTorch
  module and against the MIL executor running the package as typed;
* the median and spread of predict latency over ``runs`` calls after one warm-up.

Only :func:`check` calls Core ML (through the children); it refuses to start unless
:func:`availability` says this is macOS 14.4+ with coremltools' runtime.
"""

from __future__ import annotations

import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from parakeet_nb.ane.plan import COMPUTE_UNITS
from parakeet_nb.device.report import (
    DeviceReport, Latency, Maybe, NotMeasured, OutputError, PackageResult, SettingResult,
)

#: Predict calls timed per setting by default, and warm-up calls before them.
DEFAULT_RUNS = 20
WARMUP = 1
#: The planner's settings the compute plan is compared with.
POLICY = "conservative"
TYPED_EXECUTION = True
#: The clip every waveform package predicts on.
CLIP = "speech_15s.wav"
#: Seconds one child may take before it is stopped and recorded as timed out.
CHILD_TIMEOUT = 1800
#: MLComputePlan needs macOS 14.4 (coremltools' own tests skip below it).
MIN_MACOS = (14, 4)

WOULD_MEASURE = (
    "compile and load time, Core ML's compute plan (each op's device and cost) against the planner's "
    "prediction, predict outputs against PyTorch and the MIL executor, and predict latency, per package "
    "and compute-unit setting"
)


def availability(system: str | None = None, macos: str | None = None) -> tuple[bool, str]:
    """Whether ``device-check`` can run here, and why not when it cannot.

    ``system`` / ``macos`` default to ``platform.system()`` and ``platform.mac_ver()[0]``.
    """
    system = platform.system() if system is None else system
    if system != "Darwin":
        return False, f"this is {system or 'an unknown system'}"
    macos = platform.mac_ver()[0] if macos is None else macos
    try:
        version = tuple(int(part) for part in macos.split("."))
    except ValueError:
        return False, f"cannot read the macOS version {macos!r}"
    if version < MIN_MACOS:
        return False, f"this is macOS {macos}"
    from parakeet_nb.coreml.runtime import can_predict

    return can_predict()


def unavailable_message(reason: str) -> str:
    """The one line ``device-check`` prints where it cannot run."""
    return f"needs macOS {'.'.join(map(str, MIN_MACOS))}+ with Core ML ({reason}); on a Mac it measures {WOULD_MEASURE}"


@dataclass(frozen=True)
class PackageEntry:
    """A package to check: ``name`` (the contract component, or the file's stem), its path,
    and ``component`` when ``metadata.json`` names it as one of
    :data:`parakeet_nb.coreml.convert.COMPONENTS`."""

    name: str
    path: Path
    component: str | None


def read_folder(folder: str | os.PathLike) -> tuple[list[PackageEntry], dict[str, Any] | None]:
    """The packages of an export folder and its ``metadata.json`` (``None`` when absent).

    With ``metadata.json``: the components it lists whose files exist, in its order. Without:
    every ``*.mlpackage`` in the folder and every ``*.mlmodelc`` without a package of the
    same name beside it, by name. Raises ``ValueError``
    when the folder is missing, unreadable or holds no package.
    """
    from parakeet_nb.coreml.convert import COMPONENTS
    from parakeet_nb.coreml.runtime import read_metadata

    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"{folder}: not a folder; expected an export folder with .mlpackage or .mlmodelc files")
    metadata = read_metadata(folder) if (folder / "metadata.json").is_file() else None
    if metadata is not None:
        entries = [
            PackageEntry(name, folder / entry["file"], name if name in COMPONENTS else None)
            for name, entry in metadata.get("components", {}).items() if (folder / entry["file"]).exists()
        ]
    else:
        found = [p for p in sorted(folder.iterdir()) if p.suffix in (".mlpackage", ".mlmodelc") and p.is_dir()]
        packaged = {p.stem for p in found if p.suffix == ".mlpackage"}
        # a .mlmodelc beside its .mlpackage (``export --compile``) is the same model: check the package
        entries = [PackageEntry(p.stem, p, None) for p in found if p.suffix == ".mlpackage" or p.stem not in packaged]
    if not entries:
        raise ValueError(f"{folder}: no .mlpackage or .mlmodelc to check")
    return entries, metadata


def reference_model(metadata: dict[str, Any] | None, folder: Path) -> Any:
    """The PyTorch model the packages came from, or :class:`NotMeasured` saying why not.

    ``metadata["model"]["source"]`` names it: ``preset:NAME`` is rebuilt
    (:func:`parakeet_nb.model.presets.build`); ``checkpoint:FILE`` is looked for next to the
    export and in ``data/``, and used when its SHA-256 matches the metadata's.
    """
    from parakeet_nb.model import presets
    from parakeet_nb.model.checkpoint import CheckpointError, load_nemo
    from parakeet_nb.paths import ROOT

    if metadata is None:
        return NotMeasured("no metadata.json names the model the packages came from")
    model = metadata.get("model", {})
    source = str(model.get("source", ""))
    kind, _, name = source.partition(":")
    if kind == "preset" and name in presets.PRESETS:
        return presets.build(name)
    if kind == "checkpoint":
        for candidate in (folder / name, ROOT / "data" / name):
            if candidate.is_file():
                try:
                    modules = load_nemo(candidate)
                except CheckpointError as exc:
                    return NotMeasured(str(exc))
                if modules.sha256 == model.get("checkpoint_sha256"):
                    return modules
        return NotMeasured(f"the checkpoint {name} the export came from is not next to it or in data/ "
                           "(pass --nemo PATH)")
    return NotMeasured(f"metadata.json names an unknown model source {source!r}")


@dataclass
class _Inputs:
    """What one package is fed: a description, the arrays by input name, the PyTorch
    reference's outputs (or why none), the executor's outputs (or why none)."""

    description: str
    feed: Maybe[dict[str, np.ndarray]]
    pytorch: Maybe[dict[str, np.ndarray]]
    executor: Maybe[dict[str, np.ndarray]]


def _inputs(entry: PackageEntry, loaded: Maybe[Any], modules: Maybe[Any], clip: np.ndarray) -> _Inputs:
    import torch

    from parakeet_nb.mlprogram.milexec import MilExecError, MilExecutor
    from parakeet_nb.model.components import wrappers
    from parakeet_nb.coreml.convert import COMPONENTS
    from parakeet_nb.study.program_parity import _feed, input_sets
    from parakeet_nb.transcribe.pipeline import program_inputs

    pytorch: Maybe[dict[str, np.ndarray]]
    if entry.component is not None and not isinstance(modules, NotMeasured):
        sets = input_sets(modules, entry.component, {"speech_15s": clip})
        source = "speech_15s" if "speech_15s" in sets else "random"
        feed: Maybe[dict[str, np.ndarray]] = _feed(entry.component, sets[source])
        with torch.no_grad():
            out = wrappers(modules)[entry.component].eval()(*sets[source])
        out = out if isinstance(out, (tuple, list)) else (out,)
        pytorch = {name: value.numpy() for name, value in zip(COMPONENTS[entry.component].outputs, out)}
        description = f"data/{CLIP}" if source == "speech_15s" else "seeded random inputs (program_parity.input_sets)"
    else:
        pytorch = modules if isinstance(modules, NotMeasured) else NotMeasured(
            f"{entry.name} is not a component of this project's export contract")
        names = None if isinstance(loaded, NotMeasured) else [v.name for v in loaded.spec.description.input]
        try:
            feed = NotMeasured("the package's input names are unknown (a compiled .mlmodelc)") if names is None \
                else program_inputs(clip, names)
            description = f"data/{CLIP}"
        except ValueError as exc:
            feed = NotMeasured(f"{exc}; other inputs need the source model ({pytorch.reason})")
            description = "none"
    executor: Maybe[dict[str, np.ndarray]]
    if isinstance(loaded, NotMeasured):
        executor = loaded
    elif isinstance(feed, NotMeasured):
        executor = feed
    else:
        try:
            executor = MilExecutor(loaded, numerics="fp32").run(feed)
        except MilExecError as exc:
            executor = NotMeasured(f"the MIL executor cannot run it ({exc})")
    return _Inputs(description, feed, pytorch, executor)


def _run_child(request: dict[str, Any], work: Path, timeout: float) -> tuple[dict[str, Any], str | None]:
    """Run one worker request; its (possibly partial) result and, if it died, why."""
    request_file = work / "request.json"
    request_file.write_text(json.dumps(request))
    result_file = Path(request["result"])
    result_file.unlink(missing_ok=True)
    try:
        done = subprocess.run([sys.executable, "-m", "parakeet_nb.device.worker", str(request_file)],
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        stdout = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        failure: str | None = f"timed out after {timeout:.0f} s{_during(stdout)}"
    else:
        failure = None
        if done.returncode != 0:
            how = f"killed by {_signal_name(-done.returncode)}" if done.returncode < 0 else f"exit code {done.returncode}"
            tail = " ".join(done.stderr.strip().splitlines()[-1:])
            failure = f"the child process crashed{_during(done.stdout)} ({how}){': ' + tail if tail else ''}"
    result = json.loads(result_file.read_text()) if result_file.is_file() else {}
    return result, failure


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _during(stdout: str) -> str:
    stages = [line.split(" ", 1)[1] for line in stdout.splitlines() if line.startswith("stage ")]
    return f" during {stages[-1]}" if stages else ""


def _errors(outputs: dict[str, np.ndarray], reference: Maybe[dict[str, np.ndarray]]) -> Maybe[list[OutputError]]:
    if isinstance(reference, NotMeasured):
        return reference
    missing = [name for name in reference if name not in outputs]
    if missing:
        return NotMeasured(f"Core ML gave no output {', '.join(missing)}")
    try:
        return [OutputError.between(name, outputs[name], value) for name, value in reference.items()]
    except ValueError as exc:
        return NotMeasured(str(exc))


def _setting(
    units: str, compiled: Path | None, compile_failure: str | None, loaded: Maybe[Any],
    inputs: _Inputs, runs: int, work: Path, timeout: float,
) -> SettingResult:
    from parakeet_nb.ane import planner
    from parakeet_nb.device.compare import join
    from parakeet_nb.device.computeplan import ActualOp

    if compiled is None:
        why = NotMeasured(f"not compiled ({compile_failure})")
        return SettingResult(units, why, why, why, {"pytorch": why, "executor": why})
    feed_file = None
    if not isinstance(inputs.feed, NotMeasured):
        feed_file = work / "inputs.npz"
        np.savez(feed_file, **inputs.feed)
    request = {
        "action": "measure", "compiled": str(compiled), "compute_units": units,
        "inputs": None if feed_file is None else str(feed_file), "runs": runs, "warmup": WARMUP,
        "result": str(work / "measure.json"), "outputs": str(work / "outputs.npz"),
    }
    (work / "outputs.npz").unlink(missing_ok=True)
    result, failure = _run_child(request, work, timeout)
    unreached = NotMeasured(failure or "not reached")
    plan_request = {"action": "plan", "compiled": str(compiled), "compute_units": units, "result": str(work / "plan.json")}
    planned, plan_failure = _run_child(plan_request, work, timeout)

    load: Maybe[float] = result["load_seconds"] if "load_seconds" in result else NotMeasured(
        f"Core ML refused the load: {result['load_error']}" if "load_error" in result else unreached.reason)
    placement: Maybe[Any]
    if "plan" in planned:
        if isinstance(loaded, NotMeasured):
            placement = NotMeasured(f"no prediction to compare: {loaded.reason}")
        else:
            actual = [ActualOp.from_dict(op) for op in planned["plan"]]
            placement = join(planner.plan(loaded, units, POLICY, typed_execution=TYPED_EXECUTION), actual)
    else:
        placement = NotMeasured(f"no compute plan: {planned['plan_error']}" if "plan_error" in planned
                                else plan_failure or "not reached")
    if isinstance(inputs.feed, NotMeasured):
        latency: Maybe[Latency] = inputs.feed
        errors: dict[str, Maybe[list[OutputError]]] = {"pytorch": inputs.feed, "executor": inputs.feed}
    elif isinstance(load, NotMeasured):
        latency = NotMeasured(f"no model loaded ({load.reason})")
        errors = {"pytorch": latency, "executor": latency}
    else:
        predicted = "predict_seconds" in result
        latency = Latency.from_seconds(result["predict_seconds"], WARMUP) if predicted else NotMeasured(
            f"predict failed: {result['predict_error']}" if "predict_error" in result else unreached.reason)
        if (work / "outputs.npz").is_file():
            with np.load(work / "outputs.npz") as data:
                outputs = {name: data[name] for name in data.files}
            errors = {"pytorch": _errors(outputs, inputs.pytorch), "executor": _errors(outputs, inputs.executor)}
        else:
            why = latency if isinstance(latency, NotMeasured) else NotMeasured("no outputs saved")
            errors = {"pytorch": why, "executor": why}
    return SettingResult(units, load, placement, latency, errors)


def check(
    folder: str | os.PathLike,
    compute_units: Sequence[str] = COMPUTE_UNITS,
    runs: int = DEFAULT_RUNS,
    *,
    modules: Any = None,
    progress: Callable[[str], None] | None = None,
    timeout: float = CHILD_TIMEOUT,
) -> DeviceReport:
    """Measure every package of ``folder`` under each of ``compute_units`` (macOS 14.4+).

    ``modules``: the PyTorch model the packages came from (default: the one
    ``metadata.json`` names, see :func:`reference_model`). Raises ``RuntimeError`` where
    :func:`availability` says Core ML is not here, ``ValueError`` for bad input.
    """
    import coremltools as ct

    from parakeet_nb.frontend.audio import data_clip
    from parakeet_nb.frontend.recipe import WINDOW_SAMPLES
    from parakeet_nb.mlprogram.load import ModelReadError, load_program

    ok, why = availability()
    if not ok:
        raise RuntimeError(unavailable_message(why))
    unknown = [u for u in compute_units if u not in COMPUTE_UNITS]
    if unknown or not compute_units:
        raise ValueError(f"unknown compute units {', '.join(unknown) or '(none)'}: expected names from {', '.join(COMPUTE_UNITS)}")
    if runs < 1:
        raise ValueError(f"runs must be at least 1, not {runs}")
    folder = Path(folder)
    entries, metadata = read_folder(folder)
    if modules is None:
        modules = reference_model(metadata, folder)
    elif metadata is not None and metadata.get("model", {}).get("source") != modules.source:
        raise ValueError(f"{folder} was exported from {metadata.get('model', {}).get('source')!r}, "
                         f"not from {modules.source!r}")
    clip = data_clip(CLIP).samples[:WINDOW_SAMPLES]
    report = DeviceReport(
        machine={"system": platform.system(), "macos": platform.mac_ver()[0], "machine": platform.machine(),
                 "python": platform.python_version(), "coremltools": ct.__version__},
        devices=NotMeasured("no package was compiled"), runs=runs, warmup=WARMUP,
        notes=[f"predicted placement: parakeet_nb.ane.planner.plan(policy={POLICY!r}, "
               f"typed_execution={TYPED_EXECUTION}) of the same package and compute units"],
    )
    with tempfile.TemporaryDirectory(prefix="device_check_") as tmp:
        work = Path(tmp)
        for entry in entries:
            if progress:
                progress(entry.name)
            loaded: Maybe[Any]
            if entry.path.suffix == ".mlmodelc":
                loaded = NotMeasured("a compiled .mlmodelc: the planner and the executor read .mlpackage files")
            else:
                try:
                    loaded = load_program(entry.path)
                except ModelReadError as exc:
                    loaded = NotMeasured(str(exc))
            inputs = _inputs(entry, loaded, modules, clip)
            compiled: Path | None = None
            compile_failure = None
            compile_seconds: Maybe[float]
            if entry.path.suffix == ".mlmodelc":
                compiled, compile_seconds = entry.path, NotMeasured("shipped compiled (.mlmodelc)")
            else:
                destination = work / f"{entry.name}.mlmodelc"
                request = {"action": "compile", "package": str(entry.path), "destination": str(destination),
                           "result": str(work / "compile.json")}
                result, failure = _run_child(request, work, timeout)
                if "devices" in result and isinstance(report.devices, NotMeasured):
                    report.devices = result["devices"]
                if "compile_seconds" in result:
                    compiled, compile_seconds = destination, result["compile_seconds"]
                else:
                    compile_failure = result.get("compile_error") or failure or "no result"
                    compile_seconds = NotMeasured(compile_failure)
            package = PackageResult(entry.name, entry.path.name, inputs.description, compile_seconds)
            for units in compute_units:
                package.settings.append(_setting(units, compiled, compile_failure, loaded, inputs, runs, work, timeout))
            report.packages.append(package)
    return report


def write(report: DeviceReport, out: str | os.PathLike) -> list[Path]:
    """Write ``device_check.json``, ``device_check.txt`` and (when a placement was compared)
    ``device_check.png`` into the folder ``out``; each file is written whole or not at all."""
    from parakeet_nb.device.figure import placement_figure, save_png

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in (("device_check.json", report.to_json() + "\n"), ("device_check.txt", report.table() + "\n")):
        tmp = out / f".{name}.tmp"
        tmp.write_text(text)
        tmp.replace(out / name)
        written.append(out / name)
    panels = report.placement_panels()
    if panels:
        written.append(save_png(placement_figure(panels), out / "device_check.png"))
    return written
