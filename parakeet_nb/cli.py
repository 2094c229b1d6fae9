"""The ``parakeet-nb`` command line (also ``python -m parakeet_nb``).

Exit codes: 0 success (a clean audit), 1 a finding (an audit over the limits), 2 bad
input or usage, with a one-line reason on stderr.
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

    report = audit_program(_load_program(args.path))
    print(report.to_json() if args.json else report.format_text(limit=args.limit))
    return report.exit_code


def _cmd_plan(args: argparse.Namespace) -> int:
    from parakeet_nb.ane import planner

    result = planner.plan(_load_program(args.path), args.compute_units, args.policy, typed_execution=args.typed_execution)
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
    for item in args.input:
        name, sep, file = item.partition("=")
        if not sep or not name or not file:
            raise UsageError(f"--input {item!r}: expected NAME=FILE.npy")
        if name not in specs:
            raise UsageError(f"--input {name}: the program has no input {name!r} (it takes {', '.join(specs)})")
        try:
            feed[name] = np.load(file, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise UsageError(f"--input {name}: cannot read {file} as a .npy array ({exc})") from None
    missing = [n for n in specs if n not in feed]
    if missing:
        raise UsageError(f"missing input{'s' if len(missing) > 1 else ''} {', '.join(missing)} (give --input NAME=FILE.npy or --audio WAV)")
    try:
        outputs = executor.run(feed)
    except MilExecError as exc:
        raise UsageError(str(exc)) from None
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out}: exists and is a file; expected a folder")
    out.mkdir(parents=True, exist_ok=True)
    for name, value in outputs.items():
        tmp = out / f".{name}.npy.tmp"
        with open(tmp, "wb") as f:
            np.save(f, value)
        tmp.replace(out / f"{name}.npy")
        print(f"{name}: {list(value.shape)} {value.dtype} -> {out / (name + '.npy')}")
    return 0


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
    programs = None
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
                precisions=("fp32",) if args.no_fp16 else ("fp32", "fp16"),
            )
        except ValueError as exc:
            raise UsageError(str(exc)) from None
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
        print(json.dumps(document, indent=2))
        return 0
    if report is not None:
        print(report.table())
    if programs is not None:
        print(f"{'' if report is None else chr(10)}exported programs (reference MIL executor) vs PyTorch, "
              f"model {programs.meta['model']}:")
        print(programs.table())
    return 0


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
    from tqdm.auto import tqdm

    from parakeet_nb.coreml import export as exporter

    only = _names(args.only)
    try:
        names = exporter.select(only)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out}: exists and is a file; expected a folder (or a path that does not exist)")
    modules = _load_modules(args)
    bar = tqdm(total=len(names), unit="component", disable=args.quiet)

    def progress(name: str) -> None:
        if bar.n or name != names[0]:
            bar.update(1)
        bar.set_description(f"export {name}")

    try:
        result = exporter.export(modules, out, only=names, precision=args.precision, progress=progress)
    except exporter.ExportError as exc:
        raise UsageError(str(exc)) from None
    finally:
        bar.update(bar.total - bar.n)
        bar.close()
    print(result.table())
    print(f"wrote {len(result.components)} packages and metadata.json to {out}")
    return 0


def _cmd_transcribe(args: argparse.Namespace) -> int:
    import json

    from parakeet_nb.transcribe import pipeline
    from parakeet_nb.frontend.audio import AudioError, load_wav
    from parakeet_nb.frontend.recipe import SAMPLE_RATE, WINDOW_SAMPLES

    try:
        clip = load_wav(args.wav)
    except AudioError as exc:
        raise UsageError(str(exc)) from None
    for note in clip.notes:
        print(f"parakeet-nb transcribe: note: {note} (the models expect 16 kHz mono)", file=sys.stderr)
    if len(clip.samples) > WINDOW_SAMPLES:
        raise UsageError(
            f"{args.wav}: {clip.seconds:.2f} s is longer than the {WINDOW_SAMPLES // SAMPLE_RATE} s window "
            "of the exported models; cut it into pieces of at most 15 s"
        )
    modules = _load_modules(args)
    transcript = pipeline.transcribe(modules, clip.samples, args.variant)
    transcript.notes.extend(clip.notes)
    if args.json:
        print(json.dumps({"file": args.wav, "model": modules.source, **transcript.as_dict()}, indent=2))
        return 0
    if transcript.text is not None:
        print(transcript.text)
    print(f"{len(transcript.tokens)} tokens ({transcript.variant}, {modules.source}):")
    print(" ".join(f"{tok}@{t:.2f}s" for tok, t in zip(transcript.tokens, transcript.timestamps)))
    return 0


def _add_model_source(p: argparse.ArgumentParser) -> None:
    source = p.add_mutually_exclusive_group()
    source.add_argument("--preset", choices=["tiny", "full", "digits"], default=None,
                        help="tiny or full: seeded random weights (default tiny); digits: the shipped "
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
    p.add_argument("--typed-execution", action="store_true", help="keep fp32-typed ops off the ANE (coremltools' rule)")
    p.add_argument("--png", metavar="FILE", help="also draw the partition diagram to FILE")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(func=_cmd_plan)

    p = sub.add_parser("run", help="run an ML Program on any OS with the reference MIL executor (numpy)")
    p.add_argument("path", help="a .mlpackage (ML Program)")
    p.add_argument("--input", action="append", default=[], metavar="NAME=FILE.npy", help="an input array (repeat)")
    p.add_argument("--audio", metavar="WAV", help="a WAV for the waveform input (audio_signal or audio_chunks, and audio_length)")
    p.add_argument("--fp16", action="store_true", help="emulate float16: round every tensor after each op")
    p.add_argument("--out", default="build/run", help="folder for <output name>.npy (default build/run)")
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("parity", help="chunked vs global vs NeMo mel: the error table (fp32 and emulated fp16); "
                                      "--programs: the exported packages vs PyTorch")
    p.add_argument("--audio", metavar="WAV", help="add this clip (first 15 s) as a case")
    p.add_argument("--cases", metavar="NAME,...", help="run only these cases")
    p.add_argument("--no-fp16", action="store_true", help="skip the float16 emulation (faster)")
    p.add_argument("--frames", action="store_true", help="with --json: include per-frame error arrays")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.add_argument("--programs", action="store_true",
                   help="also run every exported package with the MIL executor against its PyTorch module")
    p.add_argument("--programs-only", action="store_true", help="only the exported-programs table (skip the mel study)")
    p.add_argument("--export-dir", metavar="DIR",
                   help="with --programs: check the packages of an earlier export (default: export afresh to a temp folder)")
    p.add_argument("--components", metavar="NAME,...", help="with --programs: only these components")
    _add_model_source(p)
    p.set_defaults(func=_cmd_parity)

    p = sub.add_parser("export", help="export the Core ML components and metadata.json")
    _add_model_source(p)
    p.add_argument("--out", default="build/parakeet_coreml", help="output folder (default build/parakeet_coreml)")
    p.add_argument("--only", metavar="NAME,...", help="components to export (default all)")
    p.add_argument("--precision", choices=["fp32", "fp16"], default="fp32", help="compute precision (default fp32)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser("transcribe", help="transcribe a 16 kHz WAV of at most 15 s (token ids, timestamps)")
    p.add_argument("wav", help="a WAV file (16 kHz mono expected; others are converted, and said)")
    _add_model_source(p)
    p.add_argument("--variant", choices=["split", "chunked", "fused"], default="split",
                   help="front end: split (NeMo preprocessor), chunked ([1,15,16000]) or fused (default split)")
    p.add_argument("--json", action="store_true", help="print one JSON document (tokens, timestamps, text)")
    p.set_defaults(func=_cmd_transcribe)
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
