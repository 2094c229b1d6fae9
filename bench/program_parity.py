"""Benchmark report: every exported package run by the MIL executor vs its PyTorch module.

Exports the chosen model's eight components in fp32 and fp16 (into a temporary folder),
runs each with the reference executor (float32 and float16 emulation) on the speech clips
of ``data/``, seeded noise and seeded random inputs, and prints the error table with the
issue's goals (:mod:`parakeet_nb.study.program_parity`), then the time it took.
Same as ``parakeet-nb parity --programs-only``, plus the machine and versions.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=["tiny", "digits"], default="tiny",
                        help="tiny: seeded random weights (default); digits: data/digits_tdt.nemo")
    parser.add_argument("--tiny-only", action="store_true", help="accepted for make bench --quick (always tiny-sized)")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from benchutil import machine_summary

    from parakeet_nb.model import presets
    from parakeet_nb.study import program_parity
    from parakeet_nb.paths import ROOT

    print(machine_summary())
    if args.preset == "digits":
        from parakeet_nb.model.checkpoint import load_nemo

        modules = load_nemo(ROOT / "data" / "digits_tdt.nemo")
    else:
        modules = presets.build("tiny")
    start = time.perf_counter()
    report = program_parity.run_program_parity(modules)
    print(f"\nexported programs vs PyTorch, model {report.meta['model']}:")
    print(report.table())
    print(f"\nexport (fp32 + fp16) and executor runs: {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
