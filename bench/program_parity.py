"""Benchmark report: the packages of the default export run as typed vs their PyTorch modules.

1. Exports the chosen model's default components with the default precision profile
   (``auto``: float16 for the ANE components, float32 for ``preprocessor``/``mel_encoder``)
   into a temporary folder and runs each **as typed** with the reference executor on the
   speech clips of ``data/``, full-scale tones (100 Hz, 440 Hz, 1 kHz), speech next to digital
   silence, full-scale noise and seeded random inputs, against float64 references
   (:mod:`parakeet_nb.study.program_parity`). Prints the raw max and mean error per output
   next to the reference's spread (their last digits vary between machines), then the goals,
   met / NOT met.
2. End to end (skipped with ``--tiny-only``): the digits model's default-exported chunked
   set (``mel_encoder_chunked`` + ``decoder`` + ``joint_decision``) transcribes the whole
   committed held-out test set (``data/digits/test/``) next to PyTorch: the WER of both and
   whether every clip gives the same words.

Same as ``parakeet-nb parity --programs-only --digits`` (and ``--preset digits --end-to-end``),
plus the machine and versions, and the time each part took.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=["tiny", "digits"], default="tiny",
                        help="model of part 1: tiny, seeded random weights (default); digits: data/digits_tdt.nemo")
    parser.add_argument("--precision", choices=["auto", "fp32", "fp16"], default="auto",
                        help="export profile (default auto, the default export)")
    parser.add_argument("--tiny-only", action="store_true", help="make bench --quick: skip the end-to-end digits run")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from benchutil import machine_summary

    from parakeet_nb.digits.corpus import TEST_DIR, load_split
    from parakeet_nb.digits.wer import wer
    from parakeet_nb.model import presets
    from parakeet_nb.model.checkpoint import load_nemo
    from parakeet_nb.paths import ROOT
    from parakeet_nb.study import program_parity

    checkpoint = ROOT / "data" / "digits_tdt.nemo"  # the shipped spoken-digits model
    print(machine_summary())
    digits = None
    modules = presets.build("tiny")
    if args.preset == "digits":
        modules = digits = load_nemo(checkpoint)
    start = time.perf_counter()
    report = program_parity.run_program_parity(modules, precisions=(args.precision,))
    print(f"\nexported programs ({args.precision} profile, run as typed) vs float64 references, "
          f"model {report.meta['model']}:")
    print(report.table(digits=True))
    print(f"\nexport and executor runs: {time.perf_counter() - start:.1f} s")
    if args.tiny_only:
        return
    start = time.perf_counter()
    digits = digits or load_nemo(checkpoint)
    examples = load_split(TEST_DIR / "manifest.jsonl")
    result = program_parity.run_end_to_end(digits, [(e.waveform, e.text) for e in examples], wer,
                                           precision=args.precision)
    print(f"\nend to end, digits model, committed test set ({TEST_DIR.relative_to(TEST_DIR.parents[2])}):")
    print(result.summary())
    print(f"\nexport and {len(examples)} clips through PyTorch and the executor: {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
