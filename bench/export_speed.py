"""Benchmark: export time of every tiny component, and of the full-size encoder.

Prints, for the default ``auto`` precision profile and for ``fp32``, a table with wall
time per component and the total, then the ratio auto / fp32 (goal of issue 14: at most
1.5; one run each, so a busy machine moves it), the peak resident memory of this
process, plus the machine and versions. Then, for the ``v2`` and ``v3`` presets (Parakeet
TDT 0.6B shapes, d_model 1024, 24 layers, seeded random weights), the encoder of the default
export: export time, package size, peak memory, and one 15 s window of speech through the
exported package (MIL executor, as typed) next to PyTorch's eager encoder, as a ratio from
the same run; skip them with ``--tiny-only``.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

from benchutil import machine_summary

import numpy as np
import torch

from parakeet_nb.coreml import export as exporter
from parakeet_nb.frontend.audio import data_clip
from parakeet_nb.mlprogram.milexec import MilExecutor
from parakeet_nb.model import components, presets
from parakeet_nb.transcribe import pipeline


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
        for name in ("v2", "v3"):
            encoder_06b(name, Path(tmp))


def encoder_06b(name: str, tmp: Path) -> None:
    """Export the encoder of a Parakeet TDT 0.6B preset (default profile) and time one 15 s window
    through the exported package (MIL executor, as typed) next to PyTorch's eager encoder."""
    print(f"\n{name} preset (Parakeet TDT 0.6B shapes, seeded weights), encoder only, --precision auto:")
    start = time.perf_counter()
    modules = presets.build(name)
    built = time.perf_counter() - start
    params = sum(p.numel() for p in modules.encoder.parameters())
    result = exporter.export(modules, tmp / name, only=["encoder"])
    c = result.components[0]
    print(f"  build modules {built:.1f} s; encoder {params / 1e6:.1f} M parameters")
    print(f"  export {c.seconds:.1f} s, package {c.size_bytes / 2**20:.0f} MB ({c.precision['used']}), "
          f"audit {'clean' if c.audit.clean else 'OVER'} (widest axis {c.audit.widest_axis}), "
          f"peak RSS of this process so far {peak_rss_mb():.0f} MB")
    wrappers = components.wrappers(modules)
    with torch.no_grad():
        mel, mel_length = wrappers["preprocessor"](*pipeline.window(data_clip("speech_15s.wav").samples))
        start = time.perf_counter()
        wrappers["encoder"](mel, mel_length)
        eager = time.perf_counter() - start
    executor = MilExecutor(tmp / name / c.file)
    start = time.perf_counter()
    executor.run({"mel": mel.numpy(), "mel_length": mel_length.numpy().astype(np.int32)})
    executed = time.perf_counter() - start
    print(f"  one 15 s window: MIL executor {executed:.1f} s, PyTorch eager {eager:.2f} s, "
          f"ratio {executed / eager:.1f}x (one run each)")


if __name__ == "__main__":
    main()
