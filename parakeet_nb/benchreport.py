"""``make bench``: run every benchmark script in ``bench/`` and keep their reports.

Each script prints its own numbers with the machine and versions; this runner runs them
one after another (never in parallel, so they do not disturb each other's timings),
streams their output, and writes it to ``build/bench/report.txt``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from parakeet_nb.paths import ROOT, show

#: (script, arguments): the order they run in.
SCRIPTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("mel_speed.py", ()),
    ("export_speed.py", ()),
    ("milexec_speed.py", ("--parity",)),
    ("program_parity.py", ()),
    ("long_audio.py", ()),
    ("notebook_times.py", ()),
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build", default="build", help="build folder (default build/)")
    parser.add_argument("--quick", action="store_true", help="tiny models only (skip the full-size encoder)")
    args = parser.parse_args(argv)
    out = Path(args.build).resolve() / "bench"
    out.mkdir(parents=True, exist_ok=True)
    lines: list[str] = []
    failed = 0
    for script, extra in SCRIPTS:
        command = [sys.executable, str(ROOT / "bench" / script), *extra]
        if args.quick and script != "mel_speed.py":
            command.append("--tiny-only")
        header = f"== {script} {' '.join(command[2:])}"
        print(header, flush=True)
        lines.append(header)
        start = time.perf_counter()
        proc = subprocess.Popen(command, cwd=ROOT / "bench", stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert proc.stdout is not None
        for line in proc.stdout:
            print(line, end="", flush=True)
            lines.append(line.rstrip("\n"))
        code = proc.wait()
        footer = f"-- {script}: exit {code}, {time.perf_counter() - start:.0f} s"
        print(footer)
        lines.append(footer)
        failed += code != 0
    (out / "report.txt").write_text("\n".join(lines) + "\n")
    print(f"report written to {show(out / 'report.txt')}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
