"""Benchmark: export time of every tiny component, and of the full-size encoder.

Prints, for the default ``auto`` precision profile and for ``fp32``, a table with wall
time per component and the total, then the ratio auto / fp32 (goal of issue 14: at most
1.5; one run each, so a busy machine moves it), the peak resident memory of this
process, plus the machine and versions. The full encoder (Parakeet TDT 0.6B shapes,
d_model 1024, 24 layers, seeded random weights) is converted once with fp32 precision;
skip it with ``--tiny-only``.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

from benchutil import machine_summary

from parakeet_nb.coreml import export as exporter
from parakeet_nb.model import presets


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny-only", action="store_true", help="skip the full-size encoder")
    args = parser.parse_args()
    print(machine_summary())
    with tempfile.TemporaryDirectory() as tmp:
        tiny = presets.build("tiny")
        totals = {}
        for profile in ("auto", "fp32"):
            print(f"\ntiny preset, every component, --precision {profile} (trace + checks + convert + save + audit + plan):")
            start = time.perf_counter()
            result = exporter.export(tiny, Path(tmp) / f"tiny_{profile}", precision=profile)
            totals[profile] = time.perf_counter() - start
            print(result.table())
            print(f"  total {totals[profile]:.1f} s")
        ratio = totals["auto"] / totals["fp32"]
        print(f"\nauto / fp32 export time: {ratio:.2f} (goal <= 1.5: {'met' if ratio <= 1.5 else 'not met'})")
        if args.tiny_only:
            return
        print("\nfull preset (Parakeet TDT 0.6B shapes), encoder only:")
        start = time.perf_counter()
        full = presets.build("full")
        built = time.perf_counter() - start
        params = sum(p.numel() for p in full.encoder.parameters())
        result = exporter.export(full, Path(tmp) / "full", only=["encoder"])
        c = result.components[0]
        print(f"  build modules {built:.1f} s; encoder {params / 1e6:.1f} M parameters")
        print(f"  export {c.seconds:.1f} s, package {c.size_bytes / 2**20:.0f} MB, "
              f"audit {'clean' if c.audit.clean else 'OVER'} (widest axis {c.audit.widest_axis}), "
              f"peak RSS {peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
