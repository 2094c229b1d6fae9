"""Benchmark: strict nbval of every notebook, from a cold and from a warm export cache.

Runs ``pytest --nbval`` (the flags of ``make test-notebooks``) once per notebook in a
subprocess, twice: first with an empty export cache (``PARAKEET_NB_BUILD`` pointed at a
fresh temporary folder, so :func:`parakeet_nb.coreml.cache.cached_export` converts), then
again with the cache the first pass filled. Prints seconds per notebook, the totals, and
the goals of issue 13 (2 cores: all notebooks <= 150 s from a cold cache, each <= 45 s).
One run per pass: a busy machine moves the figures.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchutil import machine_summary

ROOT = Path(__file__).resolve().parents[1]
NBVAL = ["--nbval", "--nbval-current-env", "--nbval-sanitize-with", "tests/nbval_sanitize.cfg",
         "--nbval-cell-timeout", "600", "-q", "-p", "no:cacheprovider"]
TOTAL_GOAL, EACH_GOAL = 150.0, 45.0


def run_pass(notebooks: list[Path], build: Path) -> dict[str, tuple[float, int]]:
    """``{name: (seconds, pytest exit code)}`` for each notebook, run one after another."""
    env = dict(os.environ, PARAKEET_NB_BUILD=str(build))
    results = {}
    for nb in notebooks:
        start = time.perf_counter()
        code = subprocess.run([sys.executable, "-m", "pytest", *NBVAL, str(nb)], cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
        results[nb.name] = (time.perf_counter() - start, code)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny-only", action="store_true", help="accepted for make bench --quick; no effect")
    parser.parse_args(argv)
    notebooks = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    print(machine_summary())
    with tempfile.TemporaryDirectory(prefix="parakeet-nb-bench-") as tmp:
        cold = run_pass(notebooks, Path(tmp))
        warm = run_pass(notebooks, Path(tmp))
    print(f"{'notebook':<40} {'cold s':>7} {'warm s':>7}  nbval")
    for name in cold:
        verdict = "pass" if cold[name][1] == 0 and warm[name][1] == 0 else "FAIL"
        print(f"{name:<40} {cold[name][0]:>7.1f} {warm[name][0]:>7.1f}  {verdict}")
    total_cold = sum(s for s, _ in cold.values())
    total_warm = sum(s for s, _ in warm.values())
    slowest = max(s for s, _ in cold.values())
    print(f"{'total':<40} {total_cold:>7.1f} {total_warm:>7.1f}")
    print(f"goal: all notebooks <= {TOTAL_GOAL:.0f} s from a cold cache: "
          f"{'met' if total_cold <= TOTAL_GOAL else 'NOT met'} ({total_cold:.0f} s)")
    print(f"goal: each notebook <= {EACH_GOAL:.0f} s (cold): {'met' if slowest <= EACH_GOAL else 'NOT met'} "
          f"(slowest {slowest:.0f} s)")
    failed = any(code for _, code in list(cold.values()) + list(warm.values()))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
