"""Benchmark: the MIL reference executor on the tiny set (15 s clip) and on the full encoder.

Tiny set: the ``tiny`` preset's ``preprocessor_chunked`` (or ``preprocessor``),
``encoder``, ``decoder`` and ``joint_decision`` are converted (fp32, into a temporary
folder, not timed); then ``data/speech_15s.wav`` (or seeded noise) goes waveform -> mel -> encoder ->
greedy TDT decoding, every op in the executor. Goal: under 10 s for the whole clip.

Full encoder: Parakeet TDT 0.6B shapes (d_model 1024, 24 layers, seeded random weights)
converted once with fp32 precision and cached as ``build/bench/full_encoder_fp32.mlpackage``
(conversion takes minutes and several GB of memory; ``--reconvert`` redoes it); then one executor run on a
``[1, 128, 1501]`` mel. ``--fp16`` adds a run with ``numerics="fp16"``; ``--parity``
also runs the encoder in PyTorch and prints the executor's error.

Prints the machine, the versions and the BLAS thread count (``--blas-threads``, default 1:
the executor runs many small products, and one thread is faster on shared cores).
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "build" / "bench"


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cached(name: str, make, folder: Path = CACHE, reconvert: bool = False) -> Path:
    """``<folder>/<name>.mlpackage``, converted by ``make() -> MLModel`` if missing (or asked)."""
    import shutil

    path = folder / f"{name}.mlpackage"
    if reconvert and path.exists():
        shutil.rmtree(path)
    if not (path / "Manifest.json").is_file():
        folder.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        model = make()
        tmp = path.with_name(f"{name}.partial.mlpackage")
        if tmp.exists():
            shutil.rmtree(tmp)
        model.save(str(tmp))
        tmp.rename(path)
        shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
        print(f"  converted {name} in {time.perf_counter() - start:.1f} s -> {shown}")
    return path


def _clip():
    import numpy as np

    wav = ROOT / "data" / "speech_15s.wav"
    if wav.is_file():
        from parakeet_nb.frontend.audio import load_wav

        samples = load_wav(wav).samples
        source = str(wav.relative_to(ROOT))
    else:
        samples = (np.random.default_rng(0).standard_normal(240000) * 0.1).astype(np.float32)
        source = "seeded noise"
    return samples[:240000], source


def bench_tiny(args) -> float:
    import tempfile

    import numpy as np

    from parakeet_nb.model import presets
    from parakeet_nb.model import tdt
    from parakeet_nb.model.components import wrappers
    from parakeet_nb.coreml.convert import COMPONENTS, convert
    from parakeet_nb.mlprogram.milexec import MilExecutor
    from parakeet_nb.mlprogram.milexec.tdt_backend import tdt_backend

    tiny = presets.build("tiny")
    front = "preprocessor_chunked" if "preprocessor_chunked" in COMPONENTS and not args.nemo_preprocessor else "preprocessor"
    names = [front, "encoder", "decoder", "joint_decision"]
    wrap = wrappers(tiny)
    # converted afresh each run (seconds), so the timings always follow the current code
    tmp = Path(tempfile.mkdtemp(prefix="milexec_bench_"))
    paths = {n: _cached(f"tiny_{n}_fp32", lambda n=n: convert(n, wrap[n], tiny, "fp32"), tmp) for n in names}

    samples, source = _clip()
    n = len(samples)
    padded = np.zeros(240000, np.float32)
    padded[:n] = samples
    if front == "preprocessor_chunked":
        front_in = {"audio_chunks": padded.reshape(1, 15, 16000), "audio_length": np.array([n], np.int32)}
    else:
        front_in = {"audio_signal": padded.reshape(1, -1), "audio_length": np.array([n], np.int32)}

    opts = dict(numerics=args.numerics, accumulate=args.accumulate)
    t0 = time.perf_counter()
    pre = MilExecutor(paths[front], **opts)
    enc = MilExecutor(paths["encoder"], **opts)
    step, decide = tdt_backend(paths["decoder"], paths["joint_decision"], **opts)
    t_load = time.perf_counter() - t0

    calls = {"step": 0, "decide": 0}

    def counted(fn, key):
        def wrapped(*a):
            calls[key] += 1
            return fn(*a)

        return wrapped

    t1 = time.perf_counter()
    mel = pre.run(front_in)
    t2 = time.perf_counter()
    mel_length = np.asarray(mel["mel_length"]).astype(np.int32).reshape(1)
    out = enc.run({"mel": mel["mel"].astype(np.float32), "mel_length": mel_length})
    t3 = time.perf_counter()
    hyp = tdt.greedy_decode(
        out["encoder"][0].astype(np.float32), int(out["encoder_length"][0]),
        counted(step, "step"), counted(decide, "decide"), blank_id=tiny.blank_id,
    )
    t4 = time.perf_counter()
    total = t4 - t0
    print(f"\ntiny set, {source} ({n / 16000:.1f} s), numerics={args.numerics}, accumulate={args.accumulate}:")
    print(f"  load + prepare 4 programs   {t_load:7.3f} s  (coremltools protobuf -> MIL, constants)")
    print(f"  {front:27s} {t2 - t1:7.3f} s  ({pre.n_ops} ops)")
    print(f"  encoder                     {t3 - t2:7.3f} s  ({enc.n_ops} ops)")
    print(f"  greedy TDT decoding         {t4 - t3:7.3f} s  ({calls['decide']} joint_decision + "
          f"{calls['step']} decoder calls, {len(hyp.tokens)} tokens)")
    print(f"  total                       {total:7.3f} s  (goal < 10 s: {'met' if total < 10 else 'NOT met'})")
    import shutil

    shutil.rmtree(tmp, ignore_errors=True)
    return total


def bench_full(args) -> None:
    import numpy as np

    from parakeet_nb.model import presets
    from parakeet_nb.model.components import wrappers
    from parakeet_nb.coreml.convert import convert
    from parakeet_nb.mlprogram.milexec import MilExecutor

    def make():
        full = presets.build("full")
        return convert("encoder", wrappers(full)["encoder"], full, "fp32")

    from parakeet_nb.mlprogram.load import load_program

    path = _cached("full_encoder_fp32", make, reconvert=args.reconvert)
    mel = np.random.default_rng(0).standard_normal((1, 128, 1501)).astype(np.float32)
    feed = {"mel": mel, "mel_length": np.array([1500], np.int32)}
    print("\nfull encoder (Parakeet TDT 0.6B shapes, random weights), one [1, 128, 1501] mel:")
    t0 = time.perf_counter()
    lp = load_program(path)
    print(f"  load_program (coremltools reads the package and its weights) {time.perf_counter() - t0:6.1f} s")
    ref = None
    if args.parity:
        import torch

        full = presets.build("full")
        with torch.no_grad():
            ref = wrappers(full)["encoder"](torch.from_numpy(mel), torch.tensor([1500], dtype=torch.int32))
        ref = ref[0].numpy()
        del full
    modes = ["fp32"] + (["fp16"] if args.fp16 else [])
    for numerics in modes:
        t1 = time.perf_counter()
        ex = MilExecutor(lp, numerics=numerics, accumulate=args.accumulate)
        t2 = time.perf_counter()
        out = ex.run(feed)
        t3 = time.perf_counter()
        enc = out["encoder"]
        extra = ""
        if ref is not None:
            err = np.abs(enc.astype(np.float64) - ref)
            extra = f", vs torch max {err.max():.3g} mean {err.mean():.3g} (|ref| max {np.abs(ref).max():.3g})"
        print(f"  numerics={numerics}: prepare {t2 - t1:5.1f} s, run {t3 - t2:6.1f} s ({ex.n_ops} ops), "
              f"output {list(enc.shape)} finite={bool(np.all(np.isfinite(enc)))}{extra}, "
              f"peak RSS {peak_rss_mb():.0f} MB")
        del ex, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny-only", action="store_true", help="skip the full-size encoder")
    parser.add_argument("--fp16", action="store_true", help="also time the full encoder with numerics='fp16'")
    parser.add_argument("--reconvert", action="store_true",
                        help="convert the full encoder again instead of using the cached package")
    parser.add_argument("--parity", action="store_true",
                        help="also run the full encoder in PyTorch and print the executor's error")
    parser.add_argument("--numerics", choices=["fp32", "fp16"], default="fp32", help="numerics of the tiny run")
    parser.add_argument("--accumulate", choices=["fp32", "fp64"], default="fp32")
    parser.add_argument("--nemo-preprocessor", action="store_true",
                        help="use NeMo's [1, 240000] preprocessor instead of the chunked one")
    parser.add_argument("--blas-threads", type=int, default=1, help="BLAS threads (0: library default)")
    args = parser.parse_args()
    if args.blas_threads:
        # before numpy/torch load their BLAS, so every copy of it sees the limit
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = str(args.blas_threads)

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from benchutil import machine_summary

    print(machine_summary())
    try:
        from threadpoolctl import threadpool_info

        blas = [f"{i['internal_api']} {i['version']} ({i['num_threads']} threads)" for i in threadpool_info()
                if i.get("user_api") == "blas"]
        print("BLAS: " + (", ".join(blas) or "not loaded yet"))
    except ImportError:
        pass
    bench_tiny(args)
    if not args.tiny_only:
        bench_full(args)


if __name__ == "__main__":
    main()
