"""Benchmark: export time of every tiny component, and of the full-size encoder.

Prints a table with wall time per component and the peak resident memory of this
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
        print("\ntiny preset, every component (trace + checks + convert + save + audit):")
        result = exporter.export(tiny, Path(tmp) / "tiny")
        print(result.table())
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
