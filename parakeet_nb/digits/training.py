"""Training the digits model on a CPU: seeded, deterministic, with the pure-PyTorch TDT loss.

Shapes: ``B`` batch, ``F`` mel frames, ``T`` encoder frames, ``U`` labels, ``V`` vocabulary
without the blank, ``K`` durations.
"""

from __future__ import annotations

import dataclasses
import math
import os
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np  # noqa: E402
import torch  # noqa: E402

from parakeet_nb import _quiet  # noqa: E402
from parakeet_nb.model.presets import PRESETS, Preset
from parakeet_nb.paths import show
from parakeet_nb.digits.card import MODEL_CARD, write_model_card
from parakeet_nb.digits.corpus import BUILD_DIR, MelBatch, TEST_DIR, collate_mels, compose_windows, compute_mels, ensure_data, length_batches, load_split, spec_augment, train_tokenizer
from parakeet_nb.digits.evaluation import CHECKPOINT, Evaluation, count_parameters, evaluate_checkpoint, evaluate_examples, modules_of

_quiet.import_heavy()

from nemo.core.classes.common import typecheck  # noqa: E402


#: The digits model's shapes: the tiny Parakeet recipe, a little wider and deeper.
#: ``vocab_size`` is the tokenizer's (28 pieces: the 11 words, their 15 letters, ``▁`` and ``<unk>``);
#: :func:`train` checks it.
DIGITS_PRESET: Preset = dataclasses.replace(
    PRESETS["tiny"], name="digits", d_model=96, n_layers=3, n_heads=4, conv_kernel_size=9,
    subsampling_conv_channels=32, pred_hidden=96, pred_rnn_layers=1, joint_hidden=128, vocab_size=28,
)


@dataclass
class TrainConfig:
    """Everything that decides a training run (the defaults are the shipped model's)."""

    epochs: int = 12
    batch_size: int = 32
    lr: float = 3e-3
    weight_decay: float = 1e-3
    warmup_steps: int = 300
    min_lr_ratio: float = 0.02
    grad_clip: float = 1.0
    sigma: float = 0.02
    omega: float = 0.1
    spec_augment: bool = True
    windows: int = 2000  # multi-utterance 3-15 s windows added to training (corpus.compose_windows)
    val_windows: int = 100  # and to validation, so the best epoch is chosen on both
    seed: int = 0
    threads: int = 2
    train_limit: int | None = None
    val_limit: int | None = None
    data_dir: str = str(BUILD_DIR)
    test_dir: str = str(TEST_DIR)
    out: str = str(CHECKPOINT)
    card: str = str(MODEL_CARD)
    progress: bool = True
    preset: Preset = DIGITS_PRESET

    def as_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["preset"] = self.preset.as_dict()
        for key in ("data_dir", "test_dir", "out", "card"):
            d[key] = show(d[key])
        return d


@dataclass
class TrainResult:
    """What :func:`train` did: wall-clock and CPU seconds (data loading, training and
    validation, before saving), steps, per-epoch history, the checkpoint and its WERs."""

    checkpoint: Path
    seconds: float
    cpu_seconds: float
    steps: int
    parameters: int
    best_epoch: int
    history: list[dict[str, float]] = field(default_factory=list)
    evaluations: dict[str, Evaluation] = field(default_factory=dict)


def lr_at(step: int, total: int, cfg: TrainConfig) -> float:
    """Linear warm-up over ``warmup_steps``, then cosine decay to ``min_lr_ratio * lr``."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, total - cfg.warmup_steps))
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


def seed_everything(seed: int, threads: int) -> None:
    """Seed Python, numpy and torch; fix the thread count; deterministic algorithms on."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True, warn_only=True)


def batch_loss(model: Any, batch: MelBatch, cfg: TrainConfig, generator: torch.Generator) -> tuple[torch.Tensor, int]:
    """The TDT loss (:func:`parakeet_nb.model.tdt_loss.tdt_loss`, per-token ``mean_volume``) of a batch.

    Optional SpecAugment on the cached mels, encoder, prediction network on the labels
    (NeMo prepends the start symbol), joint over every (frame, step). Returns the loss and
    the number of encoder frames of the lattice.
    """
    from parakeet_nb.model.tdt_loss import tdt_loss

    mel, mel_len = batch.mel, batch.mel_len
    with typecheck.disable_checks():
        if cfg.spec_augment:
            mel = spec_augment(mel, mel_len, generator)
        encoded, encoded_len = model.encoder(audio_signal=mel, length=mel_len)
        decoded, _, _ = model.decoder(targets=batch.labels, target_length=batch.label_len)
        logits = model.joint.joint(encoded.transpose(1, 2), decoded.transpose(1, 2))  # [B, T, U + 1, V + 1 + K]
    loss = tdt_loss(
        logits, batch.labels, encoded_len, batch.label_len, blank=model.decoder.blank_idx,
        durations=cfg.preset.durations, sigma=cfg.sigma, omega=cfg.omega, reduction="mean_volume",
        generator=generator,
    )
    return loss, int(encoded.shape[-1])


def train(cfg: TrainConfig = TrainConfig()) -> TrainResult:
    """Train the digits model, keep the epoch with the best validation WER, save it with
    NeMo's ``save_to`` at ``cfg.out``, evaluate it on the test sets and write the model card.

    Makes the training data first when ``cfg.data_dir`` lacks it (``ensure_data``). Seeds
    every generator; torch's thread count and deterministic-algorithms setting are set for
    the run (:func:`seed_everything`) and restored afterwards.
    """
    threads = torch.get_num_threads()
    deterministic = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    try:
        return _train(cfg)
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)


def _train(cfg: TrainConfig) -> TrainResult:
    from tqdm.auto import tqdm

    from parakeet_nb.model.checkpoint import _nemo_quiet, build_tdt_model

    start, cpu_start = time.perf_counter(), time.process_time()
    load_start = os.getloadavg()
    seed_everything(cfg.seed, cfg.threads)
    data_dir = Path(cfg.data_dir)
    ensure_data(data_dir, seed=cfg.seed, jobs=cfg.threads)
    train_set = load_split(data_dir / "train" / "manifest.jsonl", cfg.train_limit)
    val_set = load_split(data_dir / "val" / "manifest.jsonl", cfg.val_limit)
    clips = len(train_set)
    train_set += compose_windows(train_set, cfg.windows, seed=cfg.seed)
    val_set += compose_windows(val_set, cfg.val_windows, seed=cfg.seed + 1)

    tokenizer_dir = train_tokenizer(data_dir / "tokenizer", seed=cfg.seed)
    model = build_tdt_model(cfg.preset, tokenizer_dir)
    if model.tokenizer.vocab_size != cfg.preset.vocab_size:
        raise RuntimeError(f"tokenizer has {model.tokenizer.vocab_size} pieces, preset says {cfg.preset.vocab_size}")
    modules = modules_of(model)
    blank = int(model.decoder.blank_idx)
    parameters = count_parameters(model)

    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.98))
    rng = np.random.default_rng(cfg.seed)
    generator = torch.Generator().manual_seed(cfg.seed)
    mels = compute_mels(model.preprocessor, train_set)
    token_ids = [model.tokenizer.text_to_ids(e.text) for e in train_set]
    lengths = [m.shape[1] for m in mels]
    steps_per_epoch = math.ceil(len(train_set) / cfg.batch_size)
    total = cfg.epochs * steps_per_epoch
    history: list[dict[str, float]] = []
    best: tuple[float, float, int] | None = None
    best_state: dict[str, torch.Tensor] | None = None
    step = 0
    bar = tqdm(total=total, disable=not cfg.progress, unit="step", dynamic_ncols=True, file=sys.stderr)
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        model.preprocessor.eval()
        losses: list[float] = []
        for idx in length_batches(lengths, cfg.batch_size, rng):
            batch = collate_mels([mels[i] for i in idx], [token_ids[i] for i in idx], pad_id=blank)
            for group in optimizer.param_groups:
                group["lr"] = lr_at(step, total, cfg)
            loss, _ = batch_loss(model, batch, cfg, generator)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            losses.append(loss.item())
            step += 1
            bar.update(1)
            bar.set_postfix(epoch=epoch, loss=f"{np.mean(losses[-50:]):.3f}",
                            val_wer=f"{100 * history[-1]['val_wer']:.1f}%" if history else "-")
        val = evaluate_examples(modules, val_set, "validation")
        record = {"epoch": epoch, "step": step, "train_loss": float(np.mean(losses)), "val_wer": val.wer,
                  "minutes": (time.perf_counter() - start) / 60}
        history.append(record)
        bar.set_postfix(epoch=epoch, loss=f"{record['train_loss']:.3f}", val_wer=f"{100 * val.wer:.1f}%")
        bar.write(f"epoch {epoch:2d}: train loss {record['train_loss']:.3f}, validation WER "
                  f"{100 * val.wer:.2f} % ({val.errors}/{val.words}), {record['minutes']:.1f} min")
        key = (val.wer, record["train_loss"], -epoch)  # equal WER: the lower training loss wins
        if best is None or key < best:
            best = key
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    bar.close()
    assert best_state is not None and best is not None
    model.load_state_dict(best_state)
    model.eval()
    train_seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start

    out = Path(cfg.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with _nemo_quiet():
        model.save_to(str(out))
    result = TrainResult(checkpoint=out, seconds=train_seconds, cpu_seconds=cpu_seconds, steps=step,
                         parameters=parameters, best_epoch=-best[2], history=history)
    result.evaluations = evaluate_checkpoint(out, data_dir, cfg.test_dir)
    load_end = os.getloadavg()
    train_minutes = sum(e.seconds for e in train_set) / 60
    write_model_card(
        Path(cfg.card), cfg, result, clips, train_minutes, len(val_set), (load_start, load_end)
    )
    return result
