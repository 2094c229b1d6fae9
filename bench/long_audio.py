"""Benchmark report: transcripts of any length, long concatenations vs per-clip, and their cost.

Seeded concatenations (> 60 s) of the committed digits test clips (``data/digits/test``,
0.2-0.6 s of silence between clips) are transcribed by
:func:`parakeet_nb.transcribe.long_audio.transcribe_long` (15 s windows, FluidAudio's 2 s
overlap) with the digits model (``data/digits_tdt.nemo``) in PyTorch, and the word error rate
is set next to the per-clip transcripts joined in the same order and next to the seam-free
control of ``tests/test_long_audio.py`` (same windows, cut at the known clip boundaries):
long minus control is what the seams cost, control minus per-clip what the 15 s context costs
the model (trained on single clips and on multi-clip 3-15 s windows, see its card). Cost: wall seconds of compute per
second of audio, measured here. ``--packages DIR`` (an export with the split packages of the
digits model, e.g. ``parakeet-nb export --preset digits --only preprocessor,encoder,decoder,joint_decision``)
adds the MIL executor path on the first concatenation.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=4, help="concatenations (default 4)")
    parser.add_argument("--seconds", type=float, default=70.0, help="length of each concatenation (default 70)")
    parser.add_argument("--packages", metavar="DIR", help="also run the exported split packages (MIL executor)")
    parser.add_argument("--tiny-only", action="store_true", help="make bench --quick: two concatenations")
    args = parser.parse_args()
    here = Path(__file__).resolve().parent
    sys.path.insert(0, str(here))
    sys.path.insert(0, str(here.parent / "tests"))
    from benchutil import machine_summary
    from test_long_audio import run_long, seam_free_control

    from parakeet_nb.digits import corpus, wer
    from parakeet_nb.frontend.recipe import SAMPLE_RATE
    from parakeet_nb.model.checkpoint import load_nemo
    from parakeet_nb.paths import ROOT
    from parakeet_nb.transcribe import long_audio, pipeline

    print(machine_summary())
    modules = load_nemo(ROOT / "data" / "digits_tdt.nemo")
    examples = corpus.load_split(corpus.TEST_DIR / "manifest.jsonl")
    start = time.perf_counter()
    per_clip = {id(e): pipeline.transcribe(modules, e.waveform).text for e in examples}
    per_clip_cost = (time.perf_counter() - start) / sum(e.seconds for e in examples)
    seeds = 2 if args.tiny_only else args.seeds
    print(f"\n{'seed':>4} {'audio s':>8} {'words':>5} {'per-clip err':>12} {'seam-free err':>13} {'long err':>8} "
          f"{'long WER':>8} {'s/audio s':>9}")
    totals = [0, 0, 0, 0]
    costs = []
    first = None
    for seed in range(seeds):
        wave, spans = corpus.concatenate(examples, seed=seed, seconds=args.seconds)
        first = first if first is not None else (wave, spans)
        reference = " ".join(e.text for _, _, e in spans)
        joined = " ".join(per_clip[id(e)] for _, _, e in spans)
        t0 = time.perf_counter()
        t, windows, plan = run_long(modules, wave)
        cost = (time.perf_counter() - t0) / (len(wave) / SAMPLE_RATE)
        costs.append(cost)
        control = " ".join(seam_free_control(windows, plan, spans, modules.tokenizer))
        errs = [wer.word_errors(reference, h)[0] for h in (joined, control, t.text)]
        words = len(reference.split())
        for i, v in enumerate([words, *errs]):
            totals[i] += v
        print(f"{seed:>4} {len(wave) / SAMPLE_RATE:>8.1f} {words:>5} {errs[0]:>12} {errs[1]:>13} {errs[2]:>8} "
              f"{errs[2] / words:>8.1%} {cost:>9.3f}")
    words = totals[0]
    print(f"{'all':>4} {'':>8} {words:>5} {totals[1]:>12} {totals[2]:>13} {totals[3]:>8} {totals[3] / words:>8.1%} "
          f"{sum(costs) / len(costs):>9.3f}")
    print(f"WER: per-clip {totals[1] / words:.1%}, seam-free control {totals[2] / words:.1%}, long {totals[3] / words:.1%} "
          f"(measured, digits model, PyTorch split)")
    print(f"cost per audio second (measured, PyTorch split, {modules.source}): long {sum(costs) / len(costs):.3f} s, "
          f"per clip {per_clip_cost:.3f} s")
    if args.packages:
        wave, spans = first
        backend, tokenizer = long_audio.packages_window(args.packages, "split")
        t0 = time.perf_counter()
        t = long_audio.transcribe_long(wave, backend, tokenizer=tokenizer or modules.tokenizer)
        cost = (time.perf_counter() - t0) / (len(wave) / SAMPLE_RATE)
        err = wer.word_errors(" ".join(e.text for _, _, e in spans), t.text)[0]
        print(f"exported packages (MIL executor, fp32), seed 0: {err} errors, {cost:.3f} s per audio second (measured)")
    else:
        print("exported packages: skipped (give --packages DIR with the digits split export)")


if __name__ == "__main__":
    main()
