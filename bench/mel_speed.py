"""Speed of waveform -> mel on CPU for a 15 s clip: chunked module vs torch.stft vs NeMo.

Runs every implementation on the same 15 s clip (``data/speech_15s.wav``, or the seeded
synthetic speech of :mod:`parakeet_nb.study.parity` when it is missing), interleaved in one
process so that a busy machine slows all of them alike, and prints the median time of
each and its ratio to NeMo's preprocessor (both the ratio of medians and the median of
the per-round ratios). The goal of the chunked module is a ratio <= 1.0.

    .venv/bin/python bench/mel_speed.py [--rounds 60] [--threads N]

Implementations (all float32, eager, ``torch.no_grad``):

* ``nemo``: NeMo's ``AudioToMelSpectrogramPreprocessor`` (eval mode) via
  ``components.Preprocessor`` on ``[1, 240000]``;
* ``chunked``: ``ChunkedPreprocessor()`` on ``[1, 15, 16000]`` (including its eager input
  checks), and ``chunked_traced``, the same module after ``torch.jit.trace``;
* ``chunked_fp16_safe``: the float16-robust variant, run in float32;
* ``torch_stft``: the plain global ``torch.stft`` pipeline of ``mel_reference``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchutil import machine_summary  # noqa: E402

from parakeet_nb.frontend import mel_reference  # noqa: E402
from parakeet_nb.frontend.chunked import ChunkedPreprocessor, to_chunks  # noqa: E402
from parakeet_nb.model.components import Preprocessor  # noqa: E402
from parakeet_nb.frontend.recipe import build_preprocessor  # noqa: E402
from parakeet_nb.study.parity import speech_clips  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=60, help="timed rounds (default 60)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's default)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    clip = speech_clips()["speech"]
    chunks, length = to_chunks(clip)
    window = chunks.reshape(1, -1)
    nemo = Preprocessor(build_preprocessor()).eval()
    chunked = ChunkedPreprocessor().eval()
    traced = torch.jit.trace(chunked, (chunks, length))
    safe = ChunkedPreprocessor(fp16_safe=True).eval()
    impls = {
        "nemo": lambda: nemo(window, length),
        "chunked": lambda: chunked(chunks, length),
        "chunked_traced": lambda: traced(chunks, length),
        "chunked_fp16_safe": lambda: safe(chunks, length),
        "torch_stft": lambda: mel_reference.mel_torch_stft(window, length),
    }
    times: dict[str, list[float]] = {name: [] for name in impls}
    names = list(impls)
    with torch.inference_mode():
        for fn in impls.values():  # warm up (allocator, oneDNN kernels, tracing executor)
            for _ in range(3):
                fn()
        for r in range(args.rounds):
            order = names[r % len(names):] + names[: r % len(names)]  # rotate who goes first
            for name in order:
                t0 = time.perf_counter()
                impls[name]()
                times[name].append(time.perf_counter() - t0)

    print(machine_summary())
    print(f"clip: {len(clip)} samples ({len(clip) / 16000:.2f} s); rounds: {args.rounds}; "
          f"torch threads: {torch.get_num_threads()}; load average: {', '.join(f'{v:.2f}' for v in os.getloadavg())}")
    base = np.array(times["nemo"])
    print(f"{'implementation':20s} {'median ms':>10s} {'min ms':>8s} {'ratio':>7s} {'paired':>7s}")
    for name in names:
        t = np.array(times[name])
        print(f"{name:20s} {np.median(t) * 1e3:10.2f} {t.min() * 1e3:8.2f} "
              f"{np.median(t) / np.median(base):7.2f} {np.median(t / base):7.2f}")
    print("ratio: median / NeMo's median; paired: median over rounds of (time / NeMo's time in that round)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
