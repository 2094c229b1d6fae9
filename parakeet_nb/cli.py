"""The ``parakeet-nb`` command line (also ``python -m parakeet_nb``).

Exit codes: 0 success (a clean audit), 1 a finding (an audit over the limits, a ``run``
that made inf/NaN), 2 bad input or usage, with a one-line reason on stderr.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path


class UsageError(Exception):
    """Bad input from the user: printed as one line, exit code 2."""


def _names(text: str | None) -> list[str] | None:
    """A ``NAME,...`` option as a list of names (``None`` when the option was not given)."""
    return [n.strip() for n in text.split(",") if n.strip()] if text else None


def _load_program(path: str):
    """The package at ``path`` as a loaded program; unreadable input is a :class:`UsageError`."""
    from parakeet_nb.mlprogram.load import ModelReadError, load_program

    try:
        return load_program(path)
    except ModelReadError as exc:
        raise UsageError(str(exc)) from None


def _cmd_audit(args: argparse.Namespace) -> int:
    from parakeet_nb.ane.audit import audit_program

    loaded = _load_program(args.path)
    report = audit_program(loaded)
    print(report.to_json() if args.json else report.format_text(limit=args.limit))
    if not args.json:
        from parakeet_nb.ane.planner import float32_only_note, program_precision

        note = float32_only_note(loaded.main.inputs, program_precision(loaded))
        if note:
            print(f"note: {note}")
    return report.exit_code


def _cmd_plan(args: argparse.Namespace) -> int:
    from parakeet_nb.ane import planner

    result = planner.plan(_load_program(args.path), args.compute_units, args.policy, typed_execution=not args.assume_fp16)
    if args.png:
        from parakeet_nb.teach import diagrams

        png = Path(args.png)
        if png.is_dir():
            raise UsageError(f"{png}: is a folder; expected a .png file path")
        tmp = png.with_name(png.name + ".tmp.png")
        diagrams.plot_plan(result, tmp)
        tmp.replace(png)
    print(result.to_json() if args.json else result.format_text())
    return result.exit_code


def _cmd_run(args: argparse.Namespace) -> int:
    import numpy as np

    from parakeet_nb.mlprogram.milexec import MilExecError, MilExecutor
    from parakeet_nb.mlprogram.milexec.executor import NonFiniteError

    loaded = _load_program(args.path)
    try:
        executor = MilExecutor(loaded, numerics="fp16" if args.fp16 else "fp32")
    except MilExecError as exc:
        raise UsageError(str(exc)) from None
    specs = executor.input_specs()
    feed: dict[str, np.ndarray] = {}
    if args.audio:
        from parakeet_nb.frontend.audio import AudioError, load_wav
        from parakeet_nb.transcribe.pipeline import program_inputs

        try:
            clip = load_wav(args.audio)
            feed.update(program_inputs(clip.samples, list(specs)))
        except (AudioError, ValueError) as exc:
            raise UsageError(str(exc)) from None
        for note in clip.notes:
            print(f"parakeet-nb run: note: {note}", file=sys.stderr)
    feed.update(_npy_arguments(args.input, "--input", "input", specs))
    missing = [n for n in specs if n not in feed]
    if missing:
        raise UsageError(f"missing input{'s' if len(missing) > 1 else ''} {', '.join(missing)} (give --input NAME=FILE.npy or --audio WAV)")
    state = executor.make_state()  # zeros, as Core ML's makeState(); empty for a stateless program
    for name, value in _npy_arguments(args.state, "--state", "state", executor.state_specs()).items():
        try:
            state.write_state(name, value)
        except MilExecError as exc:
            raise UsageError(f"--state {name}: {exc}") from None
    try:
        outputs = executor.run(feed, state=state, stop_on_nonfinite=not args.allow_nonfinite)
    except NonFiniteError as exc:
        print(f"parakeet-nb run: non-finite: {exc} (nothing written; --allow-nonfinite writes it anyway)", file=sys.stderr)
        return 1
    except MilExecError as exc:
        raise UsageError(str(exc)) from None
    # what gets written, by name relative to --out: the outputs, then states/<name>
    results = {**outputs, **{f"states/{name}": state.read_state(name) for name in state.names}}
    nonfinite = [n for n, v in results.items() if v.dtype.kind == "f" and not np.isfinite(v).all()]
    if nonfinite and not args.allow_nonfinite:
        bad_outputs = [n for n in nonfinite if n in outputs]
        bad_states = [n.removeprefix("states/") for n in nonfinite if n not in outputs]
        which = " and ".join(
            f"{kind}(s) {', '.join(names)}" for kind, names in (("output", bad_outputs), ("state", bad_states)) if names
        )
        sources = "inputs, states or constants" if state.names else "inputs or constants"
        print(f"parakeet-nb run: non-finite: {which} hold inf/NaN carried from non-finite {sources} "
              "(nothing written; --allow-nonfinite writes them anyway)", file=sys.stderr)
        return 1
    for name in nonfinite:
        print(f"parakeet-nb run: note: {name} holds inf/NaN (written because of --allow-nonfinite)", file=sys.stderr)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out}: exists and is a file; expected a folder")
    for name, value in results.items():
        file = out / f"{name}.npy"
        file.parent.mkdir(parents=True, exist_ok=True)
        tmp = file.with_name(f".{file.name}.tmp")
        with open(tmp, "wb") as f:
            np.save(f, value)
        tmp.replace(file)
        print(f"{name}: {list(value.shape)} {value.dtype} -> {file}")
    return 0


def _npy_arguments(items: list[str], flag: str, what: str, known: dict) -> dict:
    """``NAME=FILE.npy`` arguments of ``flag`` read as arrays; ``known`` holds the names
    the program has (its inputs or its states)."""
    import numpy as np

    arrays = {}
    for item in items:
        name, sep, file = item.partition("=")
        if not sep or not name or not file:
            raise UsageError(f"{flag} {item!r}: expected NAME=FILE.npy")
        if name not in known:
            raise UsageError(f"{flag} {name}: the program has no {what} {name!r} (it has {', '.join(known) or 'none'})")
        try:
            arrays[name] = np.load(file, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise UsageError(f"{flag} {name}: cannot read {file} as a .npy array ({exc})") from None
    return arrays


def _cmd_parity(args: argparse.Namespace) -> int:
    from parakeet_nb.study import parity

    samples = None
    if args.audio:
        from parakeet_nb.frontend.audio import AudioError, load_wav

        try:
            clip = load_wav(args.audio)
        except AudioError as exc:
            raise UsageError(str(exc)) from None
        for note in clip.notes:
            print(f"parakeet-nb parity: note: {note}", file=sys.stderr)
        samples = clip.samples
    cases = _names(args.cases)
    programs = end_to_end = None
    if args.end_to_end and not (args.programs or args.programs_only):
        raise UsageError("--end-to-end goes with --programs or --programs-only")
    if args.end_to_end and args.preset != "digits":
        raise UsageError("--end-to-end transcribes the digits test set (data/digits/test/); pass --preset digits")
    if args.programs or args.programs_only:
        from parakeet_nb.study import program_parity

        components = _names(args.components)
        packages = None
        modules = _load_modules(args)
        if args.export_dir:
            try:
                packages = program_parity.packages_in(args.export_dir, modules)
            except ValueError as exc:
                raise UsageError(str(exc)) from None
        try:
            programs = program_parity.run_program_parity(
                modules, packages=packages, components=components,
                precisions=("fp32",) if args.no_fp16 else (args.precision,),
            )
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        if args.end_to_end:
            end_to_end = _end_to_end(modules, "fp32" if args.no_fp16 else args.precision)
    report = None
    if not args.programs_only:
        try:
            report = parity.run_parity(samples, cases=cases, fp16=not args.no_fp16)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    if args.json:
        import json

        document = report.to_json(frames=args.frames) if report is not None else {}
        if programs is not None:
            document["programs"] = programs.to_json()
        if end_to_end is not None:
            document["end_to_end"] = end_to_end.to_json()
        print(json.dumps(document, indent=2))
        return 0
    if report is not None:
        print(report.table(digits=args.digits))
    if programs is not None:
        print(f"{'' if report is None else chr(10)}exported programs (reference MIL executor) vs PyTorch, "
              f"model {programs.meta['model']}:")
        print(programs.table(digits=args.digits))
    if end_to_end is not None:
        print(f"\n{end_to_end.summary()}")
    return 0


def _end_to_end(modules, precision: str):
    """The digits model's exported chunked set vs PyTorch on the committed test set (``--end-to-end``)."""
    from parakeet_nb.digits.corpus import TEST_DIR, load_split
    from parakeet_nb.digits.wer import wer
    from parakeet_nb.study import program_parity

    examples = load_split(TEST_DIR / "manifest.jsonl")
    return program_parity.run_end_to_end(modules, [(e.waveform, e.text) for e in examples], wer, precision=precision)


def _load_modules(args: argparse.Namespace):
    """The model named by ``--preset`` or ``--nemo`` (mutually exclusive)."""
    from parakeet_nb.model import presets

    nemo = getattr(args, "nemo", None)
    if args.preset == "digits":  # the shipped spoken-digits checkpoint, through the --nemo route
        from parakeet_nb.paths import ROOT

        nemo = ROOT / "data" / "digits_tdt.nemo"
    if nemo:
        from parakeet_nb.model.checkpoint import CheckpointError, load_nemo

        try:
            return load_nemo(nemo)
        except CheckpointError as exc:
            raise UsageError(str(exc)) from None
    return presets.build(args.preset or "tiny")


def _cmd_export(args: argparse.Namespace) -> int:
    from parakeet_nb.coreml import export as exporter
    from parakeet_nb.progress import StepProgress

    only = _names(args.only)
    try:
        if args.layout == "fluidaudio":
            from parakeet_nb.coreml.fluidaudio_export import components

            names = components("v3", only)  # the same names for v2 (joint_decision: the version's joint)
        else:
            names = exporter.select(only)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out}: exists and is a file; expected a folder (or a path that does not exist)")
    if args.compile:
        try:
            exporter.check_can_compile()
        except exporter.CompileUnavailable as exc:
            raise UsageError(str(exc)) from None
    modules = _load_modules(args)
    try:
        with StepProgress(len(names), verb="exported", enabled=not args.quiet) as progress:
            result = exporter.export(modules, out, only=only if args.layout == "fluidaudio" else names,
                                     precision=args.precision, compile=args.compile, progress=progress,
                                     layout=args.layout)
    except exporter.ExportError as exc:
        raise UsageError(str(exc)) from None
    print(result.table())
    layout = result.metadata.get("layout")
    if layout is not None:
        print(f"FluidAudio {layout['version']} layout, vocabulary from the {layout['vocabulary']['source']}"
              f" ({layout['vocabulary']['file']}); check it with: parakeet-nb check-layout {result.out_dir}")
        if layout["unmet"]:
            print(layout["unmet"])
    compiled = " (each with its .mlmodelc)" if args.compile else ""
    print(f"wrote {len(result.components)} packages and metadata.json to {result.out_dir}{compiled}; "
          "compile.sh there compiles them to .mlmodelc on a Mac")
    return 0


def _cmd_check_layout(args: argparse.Namespace) -> int:
    import json

    from parakeet_nb.coreml.layout_check import LayoutUnreadable, check_layout

    try:
        report = check_layout(args.folder, args.runtime, args.version, _names(args.only), strict=args.strict)
    except LayoutUnreadable as exc:
        raise UsageError(str(exc)) from None
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    print(json.dumps(report.as_dict(), indent=2) if args.json else report.table())
    return report.exit_code


def _cmd_transcribe(args: argparse.Namespace) -> int:
    import json

    from parakeet_nb.transcribe import long_audio
    from parakeet_nb.frontend.audio import AudioError, load_wav

    try:
        clip = load_wav(args.wav)
    except AudioError as exc:
        raise UsageError(str(exc)) from None
    for note in clip.notes:
        print(f"parakeet-nb transcribe: note: {note} (the models expect 16 kHz mono)", file=sys.stderr)
    if args.packages:
        if args.preset:
            raise UsageError("--packages takes the model from the folder's metadata.json; drop --preset")
        from parakeet_nb.coreml.runtime import read_metadata

        try:
            source = read_metadata(args.packages)["model"]["source"]
            backend, tokenizer = long_audio.packages_window(args.packages, args.variant, nemo=args.nemo)
            transcript = long_audio.transcribe_long(clip.samples, backend, tokenizer=tokenizer)
        except (ValueError, KeyError) as exc:
            raise UsageError(str(exc)) from None
    else:
        modules = _load_modules(args)
        source = modules.source
        backend = long_audio.pytorch_window(modules, args.variant)
        transcript = long_audio.transcribe_long(clip.samples, backend, tokenizer=modules.tokenizer)
    transcript.notes.extend(clip.notes)
    if args.json:
        print(json.dumps({"file": args.wav, "model": source, **transcript.as_dict()}, indent=2))
        return 0
    if transcript.text is not None:
        print(transcript.text)
    print(f"{len(transcript.tokens)} tokens ({transcript.variant}, {source}):")
    print(" ".join(f"{tok}@{t:.2f}s" for tok, t in zip(transcript.tokens, transcript.timestamps)))
    return 0


def _cmd_device_check(args: argparse.Namespace) -> int:
    from parakeet_nb.device import check

    ok, why = check.availability()
    if not ok:
        raise UsageError(check.unavailable_message(why))
    units = _names(args.compute_units) or []
    if args.runs < 1:
        raise UsageError(f"--runs {args.runs}: expected a number of predict calls of at least 1")
    if args.png and Path(args.png).is_dir():
        raise UsageError(f"--png {args.png}: is a folder; expected a .png file path")
    if args.out and Path(args.out).exists() and not Path(args.out).is_dir():
        raise UsageError(f"--out {args.out}: exists and is a file; expected a folder")
    modules = _load_modules(args) if (args.preset or args.nemo) else None
    try:
        report = check.check(args.dir, units, args.runs, modules=modules,
                             progress=lambda name: print(f"parakeet-nb device-check: {name}", file=sys.stderr))
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if args.out:
        for path in check.write(report, args.out):
            print(f"parakeet-nb device-check: wrote {path}", file=sys.stderr)
    if args.png:
        from parakeet_nb.device.figure import placement_figure, save_png

        panels = report.placement_panels()
        if panels:
            save_png(placement_figure(panels), args.png)
        else:
            print(f"parakeet-nb device-check: note: no placement was compared; {args.png} not written", file=sys.stderr)
    print(report.to_json() if args.json else report.table())
    return 0


def _add_model_source(p: argparse.ArgumentParser) -> None:
    source = p.add_mutually_exclusive_group()
    source.add_argument("--preset", choices=["tiny", "v2", "v3", "full", "digits"], default=None,
                        help="tiny, v2, v3 (Parakeet TDT 0.6B v2/v3 shapes; full = v2): seeded random weights "
                             "(default tiny); digits: the shipped "
                             "spoken-digits model (data/digits_tdt.nemo)")
    source.add_argument("--nemo", metavar="PATH", help="a local .nemo TDT checkpoint (trusted files only: loading unpickles)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="parakeet-nb",
        description="Get NeMo Parakeet TDT onto the Apple Neural Engine: audit, export, check.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("audit", help="list every tensor of an ML Program over the ANE axis limits")
    p.add_argument("path", help="a .mlpackage (ML Program)")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.add_argument("--limit", type=int, default=40, help="finding lines to show in text mode (default 40)")
    p.set_defaults(func=_cmd_audit)

    p = sub.add_parser("plan", help="model how Core ML would partition a program across ANE, GPU and CPU")
    p.add_argument("path", help="a .mlpackage (ML Program)")
    p.add_argument("--compute-units", choices=["CPU_ONLY", "CPU_AND_GPU", "CPU_AND_NE", "ALL"], default="ALL",
                   help="the MLModelConfiguration.computeUnits to model (default ALL)")
    p.add_argument("--policy", choices=["conservative", "greedy"], default="greedy",
                   help="greedy: the iPhone-like ANE compiler (default); conservative: the Mac-like outcome")
    p.add_argument("--assume-fp16", action="store_true",
                   help="the untyped, hypothetical reading: place the graph as if every op were float16-typed "
                        "(Core ML does not: by default fp32-typed ops stay off the ANE, as it runs them)")
    p.add_argument("--png", metavar="FILE", help="also draw the partition diagram to FILE")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(func=_cmd_plan)

    p = sub.add_parser("run", help="run an ML Program on any OS with the reference MIL executor (numpy)")
    p.add_argument("path", help="a .mlpackage (ML Program)")
    p.add_argument("--input", action="append", default=[], metavar="NAME=FILE.npy", help="an input array (repeat)")
    p.add_argument("--audio", metavar="WAV", help="a WAV for the waveform input (audio_signal or audio_chunks, and audio_length)")
    p.add_argument("--fp16", action="store_true", help="emulate float16: round every tensor after each op")
    p.add_argument("--state", action="append", default=[], metavar="NAME=FILE.npy",
                   help="a stateful program's state before the run (repeat; default zeros, as Core ML's makeState)")
    p.add_argument("--out", default="build/run",
                   help="folder for <output name>.npy and, for a stateful program, states/<name>.npy after the run "
                        "(default build/run)")
    p.add_argument("--allow-nonfinite", action="store_true",
                   help="write outputs holding inf/NaN (default: stop at the first op that makes them, exit 1)")
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("parity", help="chunked vs global vs NeMo mel: the error table (fp32 and emulated fp16); "
                                      "--programs: the exported packages vs PyTorch")
    p.add_argument("--audio", metavar="WAV", help="add this clip (first 15 s) as a case")
    p.add_argument("--cases", metavar="NAME,...", help="run only these cases")
    p.add_argument("--no-fp16", action="store_true",
                   help="skip the float16 emulation (faster); with --programs: check the fp32 export profile")
    p.add_argument("--frames", action="store_true", help="with --json: include per-frame error arrays")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.add_argument("--programs", action="store_true",
                   help="also run every exported package with the MIL executor against its PyTorch module")
    p.add_argument("--programs-only", action="store_true", help="only the exported-programs table (skip the mel study)")
    p.add_argument("--export-dir", metavar="DIR",
                   help="with --programs: check the packages of an earlier export (default: export afresh to a temp folder)")
    p.add_argument("--components", metavar="NAME,...", help="with --programs: only these components")
    p.add_argument("--precision", choices=["auto", "fp32", "fp16"], default="auto",
                   help="with --programs: the export profile to check (default auto, the default export)")
    p.add_argument("--end-to-end", action="store_true",
                   help="with --programs and --preset digits: transcribe the committed digits test set with a freshly "
                        "exported chunked set and with PyTorch (same words? WER of both)")
    p.add_argument("--digits", action="store_true",
                   help="print raw error figures instead of their relation to the bounds (last digits vary by machine)")
    _add_model_source(p)
    p.set_defaults(func=_cmd_parity)

    p = sub.add_parser("export", help="export the Core ML components and metadata.json")
    _add_model_source(p)
    p.add_argument("--out", default="build/parakeet_coreml", help="output folder (default build/parakeet_coreml)")
    p.add_argument("--only", metavar="NAME,...", help="components to export (default all)")
    p.add_argument("--precision", choices=["auto", "fp32", "fp16"], default="auto",
                   help="auto (default): float16 for every component the ANE may take, float32 for the waveform-in "
                        "preprocessor and mel_encoder; fp32: all float32 (parity reference, runs on CPU/GPU); "
                        "fp16: all float16. Inputs and outputs stay float32/int32")
    p.add_argument("--compile", action="store_true",
                   help="also write <package>.mlmodelc beside each package (macOS only; elsewhere run compile.sh on a Mac)")
    p.add_argument("--layout", choices=["parakeet-nb", "fluidaudio"], default="parakeet-nb",
                   help="parakeet-nb (default): parakeet_*.mlpackage; fluidaudio: the folder FluidAudio's loader reads, "
                        "OUT/parakeet-tdt-0.6b-v3 (or -v2 for a 1024-token model, or when OUT is named so): "
                        "Preprocessor, Encoder, Decoder, JointDecision(v3) and parakeet_vocab.json")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser("check-layout", help="compare a folder of models with what a runtime's loader reads "
                                            "(exit 0 clean, 1 mismatches, 2 unreadable)")
    p.add_argument("folder", help="a folder of .mlpackage/.mlmodelc models (written by anyone)")
    p.add_argument("--runtime", choices=["fluidaudio"], default="fluidaudio", help="the loader to compare with (default fluidaudio)")
    p.add_argument("--version", choices=["v2", "v3"], default=None,
                   help="FluidAudio's model version (default: from the folder name, else the joint file, else v3)")
    p.add_argument("--only", metavar="NAME,...", help="only these components are required (e.g. encoder,joint_decision)")
    p.add_argument("--strict", action="store_true",
                   help="also fail (exit 1) when the model's sizes are not the 0.6B sizes FluidAudio hard-codes")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(func=_cmd_check_layout)

    p = sub.add_parser("transcribe", help="transcribe a 16 kHz WAV of any length (15 s windows, 2 s overlap; token ids, timestamps)")
    p.add_argument("wav", help="a WAV file (16 kHz mono expected; others are converted, and said)")
    _add_model_source(p)
    p.add_argument("--variant", choices=["split", "chunked", "fused"], default="split",
                   help="front end: split (NeMo preprocessor), chunked ([1,15,16000]) or fused (default split)")
    p.add_argument("--packages", metavar="DIR",
                   help="transcribe with the packages of an export folder, run as typed by the MIL executor "
                        "(model from its metadata.json; --nemo gives the checkpoint's path when it is not in data/)")
    p.add_argument("--json", action="store_true", help="print one JSON document (tokens, timestamps, text)")
    p.set_defaults(func=_cmd_transcribe)

    p = sub.add_parser("device-check", help="macOS 14.4+: measure an export folder with Core ML (compile, load, "
                                            "compute plan vs the planner, predict errors and latency)")
    p.add_argument("dir", help="an export folder (.mlpackage/.mlmodelc files; metadata.json when present)")
    p.add_argument("--compute-units", metavar="UNITS,...", default="CPU_ONLY,CPU_AND_GPU,CPU_AND_NE,ALL",
                   help="settings to measure (default all four: CPU_ONLY,CPU_AND_GPU,CPU_AND_NE,ALL)")
    p.add_argument("--runs", type=int, default=20, help="timed predict calls per setting, after one warm-up (default 20)")
    p.add_argument("--json", action="store_true", help="print one JSON document (schema parakeet-nb/device-check/1)")
    p.add_argument("--png", metavar="FILE", help="also draw predicted vs measured placement to FILE")
    p.add_argument("--out", metavar="DIR", help="also write device_check.json, .txt and .png into DIR")
    _add_model_source(p)
    p.set_defaults(func=_cmd_device_check)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except UsageError as exc:
        print(f"parakeet-nb {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("parakeet-nb: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
