"""The digits model's card (``data/digits_tdt.md``): data, shapes, training, WER, and how to re-make it.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
from pathlib import Path
from typing import Any, TYPE_CHECKING

import numpy as np
import torch

from parakeet_nb.paths import ROOT
from parakeet_nb.digits.evaluation import Evaluation

if TYPE_CHECKING:  # training writes the card: a runtime import would be circular
    from parakeet_nb.digits.training import TrainConfig, TrainResult


MODEL_CARD = ROOT / "data" / "digits_tdt.md"


def _machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} logical cores, {platform.system()} {platform.release()}"


def _split_info(folder: Path) -> dict[str, Any]:
    path = folder / "info.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def write_model_card(
    path: Path, cfg: TrainConfig, result: TrainResult, n_train: int, train_minutes: float, n_val: int,
    load: tuple[tuple[float, float, float], tuple[float, float, float]],
) -> None:
    """``data/digits_tdt.md``: data, held-out voices, training time and machine, WERs, and
    the command that reproduces the checkpoint."""
    import nemo

    data_dir = Path(cfg.data_dir)
    train_info, test_info = _split_info(data_dir / "train"), _split_info(Path(cfg.test_dir))
    p = cfg.preset
    lines = [
        "# digits_tdt.nemo: a tiny Parakeet-style TDT model for spoken digit strings",
        "",
        "A real (trained) NeMo `EncDecRNNTBPEModel` with Parakeet TDT's architecture at toy size, so",
        "the notebooks' pipelines print words instead of random token ids. It recognises strings of",
        "1-8 English digit words (`zero` ... `nine`, and `oh` for zero) spoken by espeak-ng voices;",
        "it knows no other words. Made by `parakeet_nb/digits/`; **restoring a .nemo unpickles:",
        "load only files you trust.**",
        "",
        "## Model",
        "",
        f"- {result.parameters:,} parameters; file {Path(result.checkpoint).stat().st_size / 1e6:.1f} MB.",
        "- Preprocessor: Parakeet's (128 mels, n_fft 512, 25 ms window, 10 ms hop, per-feature normalisation).",
        f"- Encoder: FastConformer, d_model {p.d_model}, {p.n_layers} layers, {p.n_heads} heads, conv kernel "
        f"{p.conv_kernel_size}, `dw_striding` subsampling by {p.subsampling_factor} ({p.subsampling_conv_channels} channels), "
        "relative positional attention.",
        f"- Prediction network: {p.pred_rnn_layers}-layer LSTM, hidden {p.pred_hidden}. Joint: hidden {p.joint_hidden}, "
        f"TDT durations {list(p.durations)}.",
        f"- Tokenizer: SentencePiece unigram, {p.vocab_size} pieces (one per digit word, plus letters); blank id {p.vocab_size}.",
        "",
        "## Data (synthetic; `data/digits/make_digits.py`, seed "
        f"{cfg.seed})",
        "",
        f"- Training: {n_train} clips and {cfg.windows} windows ({train_minutes:.0f} min of audio), validation: {n_val - cfg.val_windows} clips and {cfg.val_windows} windows; "
        f"`build/digits/` (not committed). espeak-ng {train_info.get('tools', {}).get('espeak-ng', '?')}, "
        f"{train_info.get('tools', {}).get('sox', '?')}.",
        f"- Voices (all splits): {', '.join(train_info.get('voices', []))}.",
        f"- Training variants ({len(train_info.get('variants', []))}, `\"\"` = none): "
        f"{', '.join(v or '(none)' for v in train_info.get('variants', []))}.",
        f"- **Held out** (test sets only, never in training): {', '.join(test_info.get('variants', []))}.",
        f"- Speed {train_info.get('speed_wpm')} words/min, pitch {train_info.get('pitch')}, word gap "
        f"{train_info.get('word_gap')} x 10 ms; gain {train_info.get('gain_db')} dB; white noise at SNR "
        f"{train_info.get('snr_db')} dB on {100 * train_info.get('noise_probability', 0):.0f} % of clips; random "
        "leading/trailing silence; 16 kHz mono 16-bit.",
        f"- Windows: {cfg.windows} training and {cfg.val_windows} validation recordings of 3-15 s made of several "
        "clips of the same split (`parakeet_nb.digits.corpus.compose_windows`: up to 6 s of silence before the "
        "first clip, 0.1-1.2 s between clips), so that speech anywhere in the exports' 15 s window is heard.",
        f"- Test: `data/digits/test/` (committed), {test_info.get('size', '?')} clips, each length 1-8 and each "
        "held-out variant equally often; `heldout`: a larger set with the same held-out variants in `build/digits/`; "
        "`... windows`: each set's clips composed into windows the same way (seed 2).",
        "",
        "## Training",
        "",
        f"- Loss: `parakeet_nb.model.tdt_loss.tdt_loss` (pure PyTorch, CPU; sigma {cfg.sigma}, omega {cfg.omega}, per-token mean).",
        f"- AdamW (lr {cfg.lr}, weight decay {cfg.weight_decay}), {cfg.warmup_steps} warm-up steps then cosine; batch "
        f"{cfg.batch_size} (length-bucketed); {cfg.epochs} epochs = {result.steps} steps; SpecAugment "
        f"{'on' if cfg.spec_augment else 'off'}; config dropout; best epoch by validation WER: {result.best_epoch}.",
        f"- Time: **{result.seconds / 60:.1f} min** wall clock for data loading, mel caching, training and "
        f"validation ({result.cpu_seconds / 60:.1f} CPU-minutes), `torch.set_num_threads({cfg.threads})`, on "
        f"{_machine()}; 1-minute load average {load[0][0]:.1f} at the start and {load[1][0]:.1f} at the end "
        "(a load above the core count means other jobs shared the cores).",
        f"- Software: Python {platform.python_version()}, torch {torch.__version__}, NeMo {nemo.__version__}, "
        f"numpy {np.__version__}. Trained {_dt.date.today().isoformat()}.",
        "",
        "| epoch | train loss | validation WER | minutes |",
        "|---:|---:|---:|---:|",
        *[f"| {h['epoch']} | {h['train_loss']:.3f} | {100 * h['val_wer']:.2f} % | {h['minutes']:.1f} |" for h in result.history],
        "",
        "## Word error rate (greedy TDT decoding, `parakeet_nb.model.tdt`)",
        "",
        "| set | voices | clips | words | WER | clips wrong |",
        "|---|---|---:|---:|---:|---:|",
    ]
    test = result.evaluations.get("test", Evaluation("test", 0.0, 0, 0, 0, 0, [], []))
    for ev in result.evaluations.values():
        lines.append(f"| {ev.name} | held-out variants | {ev.clips} | {ev.words} | {100 * ev.wer:.2f} % | {ev.sentence_errors} |")
    lines += [
        f"| validation (best epoch) | training variants | {n_val} | | "
        f"{100 * result.history[result.best_epoch - 1]['val_wer']:.2f} % | |",
        "",
        "Every error on the committed test set (reference -> transcript):",
        "",
        *[f"- `{r}` -> `{h}`" for r, h in zip(test.refs, test.hyps) if r.split() != h.split()],
        "",
        "## Configuration",
        "",
        "```json",
        json.dumps(cfg.as_dict(), indent=None, separators=(", ", ": ")),
        "```",
        "",
        "## Reproduce",
        "",
        "From the project root (`make train-digits`):",
        "",
        "```",
        ".venv/bin/python -m parakeet_nb.digits train",
        "```",
        "",
        "It makes `build/digits/` with `data/digits/make_digits.py` when it is missing (espeak-ng and sox;",
        "about 4 min on 2 cores, not included in the time above), trains, writes",
        "`data/digits_tdt.nemo` and this card. Check a checkpoint with `python -m parakeet_nb.digits",
        "evaluate`. The run is seeded and uses deterministic algorithms; the weights are the same for",
        "the same versions, thread count and machine type (floating-point reductions may differ elsewhere).",
        "",
    ]
    path.write_text("\n".join(lines))
