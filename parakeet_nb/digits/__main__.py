"""``python -m parakeet_nb.digits train|evaluate``: train the digits model or score a checkpoint.
"""

from __future__ import annotations

import argparse

import torch

from parakeet_nb.paths import show
from parakeet_nb.digits.corpus import BUILD_DIR
from parakeet_nb.digits.evaluation import CHECKPOINT, evaluate_checkpoint
from parakeet_nb.digits.training import TrainConfig, train


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m parakeet_nb.digits", description="Train the spoken-digits TDT model, or score a checkpoint.")
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train the digits model and save data/digits_tdt.nemo")
    defaults = TrainConfig()
    t.add_argument("--epochs", type=int, default=defaults.epochs)
    t.add_argument("--batch-size", type=int, default=defaults.batch_size)
    t.add_argument("--lr", type=float, default=defaults.lr)
    t.add_argument("--seed", type=int, default=defaults.seed)
    t.add_argument("--threads", type=int, default=defaults.threads)
    t.add_argument("--windows", type=int, default=defaults.windows, help="multi-utterance 3-15 s training windows")
    t.add_argument("--train-limit", type=int, default=None, help="use only the first N training clips")
    t.add_argument("--val-limit", type=int, default=None)
    t.add_argument("--data-dir", default=defaults.data_dir)
    t.add_argument("--out", default=defaults.out)
    t.add_argument("--card", default=defaults.card)
    t.add_argument("--no-progress", action="store_true")
    e = sub.add_parser("evaluate", help="WER of a checkpoint on the test sets")
    e.add_argument("checkpoint", nargs="?", default=str(CHECKPOINT))
    e.add_argument("--data-dir", default=str(BUILD_DIR))
    e.add_argument("--show", type=int, default=5, help="print this many errors per set")
    args = parser.parse_args(argv)

    if args.command == "train":
        cfg = TrainConfig(
            epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, windows=args.windows, seed=args.seed, threads=args.threads,
            train_limit=args.train_limit, val_limit=args.val_limit, data_dir=args.data_dir, out=args.out,
            card=args.card, progress=not args.no_progress,
        )
        result = train(cfg)
        print(f"saved {show(result.checkpoint)} ({result.parameters:,} parameters) after "
              f"{result.seconds / 60:.1f} min; best epoch {result.best_epoch}; card {show(cfg.card)}")
        for ev in result.evaluations.values():
            print(ev.summary())
        return 0
    torch.set_num_threads(2)
    for ev in evaluate_checkpoint(args.checkpoint, args.data_dir).values():
        print(ev.summary())
        shown = 0
        for ref, hyp in zip(ev.refs, ev.hyps):
            if ref.split() != hyp.split() and shown < args.show:
                print(f"  ref: {ref}\n  hyp: {hyp}")
                shown += 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
