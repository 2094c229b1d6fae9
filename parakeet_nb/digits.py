"""A tiny Parakeet-style TDT model that recognises spoken digit strings, trained on a CPU.

The data come from ``data/digits/make_digits.py`` (espeak-ng voices; the committed test
set in ``data/digits/test/`` uses voice variants the training set never saw). The model
is NeMo's own ``EncDecRNNTBPEModel`` built by :func:`parakeet_nb.checkpoint.build_tdt_model`
with :data:`DIGITS_PRESET`: the Parakeet preprocessor (128 mels), a small FastConformer
encoder (``dw_striding`` by 8), a one-layer LSTM prediction network and a TDT joint with
durations ``[0, 1, 2, 3, 4]``; the tokenizer is a SentencePiece unigram model trained on
the digit words (one piece per word). NeMo 3.0's TDT losses need CUDA, so the loss is
:func:`parakeet_nb.tdt_loss.tdt_loss`; validation decodes greedily with
:mod:`parakeet_nb.tdt`, exactly as the exported pipeline does.

Command line (from the project root)::

    python -m parakeet_nb.digits train      # data if missing, train, save, evaluate, model card
    python -m parakeet_nb.digits evaluate   # WER of data/digits_tdt.nemo on the test sets

Shapes: ``B`` batch, ``S`` samples, ``F`` mel frames, ``T`` encoder frames, ``U`` labels,
``V`` vocabulary without the blank, ``K`` durations.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as _dt
import importlib.util
import json
import math
import os
import platform
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# OpenMP threads that spin while waiting waste most of the CPU when other processes share
# the cores (measured: 2 threads were 3-4x slower than 1 thread, with passive waiting 1.4x).
# Only effective if torch is not imported yet (e.g. ``python -m parakeet_nb.digits``).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from parakeet_nb import _quiet  # noqa: E402
from parakeet_nb.models import PRESETS, SAMPLE_RATE, ParakeetModules, Preset
from parakeet_nb.paths import ROOT, show

_quiet.import_heavy()

from nemo.core.classes.common import typecheck  # noqa: E402

#: Where the data script lives and writes.
DATA_SCRIPT = ROOT / "data" / "digits" / "make_digits.py"
#: The committed test set (held-out voice variants).
TEST_DIR = ROOT / "data" / "digits" / "test"
#: Training, validation and the larger held-out set (not committed): ``build/digits`` under the
#: project root, or under ``$PARAKEET_NB_BUILD`` like every other build product.
BUILD_DIR = Path(os.environ.get("PARAKEET_NB_BUILD", ROOT / "build")) / "digits"
#: The shipped checkpoint and its model card.
CHECKPOINT = ROOT / "data" / "digits_tdt.nemo"
MODEL_CARD = ROOT / "data" / "digits_tdt.md"

#: The words a transcript may contain (zero may be spoken "oh").
WORDS: tuple[str, ...] = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "oh")

#: The digits model's shapes: the tiny Parakeet recipe, a little wider and deeper.
#: ``vocab_size`` is the tokenizer's (28 pieces: the 11 words, their 15 letters, ``▁`` and ``<unk>``);
#: :func:`train` checks it.
DIGITS_PRESET: Preset = dataclasses.replace(
    PRESETS["tiny"], name="digits", d_model=96, n_layers=3, n_heads=4, conv_kernel_size=9,
    subsampling_conv_channels=32, pred_hidden=96, pred_rnn_layers=1, joint_hidden=128, vocab_size=28,
)


# --------------------------------------------------------------------------- word error rate


def edit_distance(ref: Sequence[str], hyp: Sequence[str]) -> int:
    """Levenshtein distance between two word sequences (substitutions, deletions and
    insertions each cost 1)."""
    previous = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, start=1):
        current = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, start=1):
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (r != h))
        previous = current
    return previous[-1]


def word_errors(ref: str, hyp: str) -> tuple[int, int]:
    """``(edits, reference words)`` of one utterance; words are split on whitespace."""
    ref_words, hyp_words = ref.split(), hyp.split()
    return edit_distance(ref_words, hyp_words), len(ref_words)


def wer(refs: Sequence[str], hyps: Sequence[str]) -> float:
    """Corpus word error rate: total edit distance over total reference words.

    Raises ``ValueError`` when the lists differ in length or the references hold no words
    (the rate is then undefined).
    """
    if len(refs) != len(hyps):
        raise ValueError(f"{len(refs)} references but {len(hyps)} hypotheses")
    edits = words = 0
    for ref, hyp in zip(refs, hyps):
        e, n = word_errors(ref, hyp)
        edits += e
        words += n
    if words == 0:
        raise ValueError("the references hold no words: the word error rate is undefined")
    return edits / words


# --------------------------------------------------------------------------- data


@dataclass
class Example:
    """One clip: ``samples [S]`` int16 at 16 kHz, its transcript and manifest entry."""

    samples: np.ndarray
    text: str
    entry: dict[str, Any]

    @property
    def seconds(self) -> float:
        return len(self.samples) / SAMPLE_RATE

    @property
    def waveform(self) -> np.ndarray:
        """``samples`` as float32 in [-1, 1) (divided by 32768), what the pipelines take."""
        return self.samples.astype(np.float32) / 32768.0

    @property
    def voice(self) -> str:
        """The espeak-ng voice and variant, e.g. ``en-gb-scotland+linda``."""
        return "+".join(x for x in (self.entry.get("voice"), self.entry.get("variant")) if x)


def read_manifest(manifest: str | os.PathLike) -> list[dict[str, Any]]:
    """The entries of a ``manifest.jsonl``; ``path`` is made absolute (it is relative to
    the manifest's folder)."""
    manifest = Path(manifest)
    entries = []
    with open(manifest) as f:
        for line in f:
            if line.strip():
                entry = json.loads(line)
                entry["path"] = str(manifest.parent / entry["path"])
                entries.append(entry)
    return entries


def read_wav16(path: str | os.PathLike) -> np.ndarray:
    """The samples of a 16 kHz mono 16-bit WAV as int16 ``[S]``; ``ValueError`` otherwise."""
    import wave

    with wave.open(str(path)) as w:
        if (w.getframerate(), w.getnchannels(), w.getsampwidth()) != (SAMPLE_RATE, 1, 2):
            raise ValueError(
                f"{path}: {w.getframerate()} Hz, {w.getnchannels()} channel(s), {8 * w.getsampwidth()}-bit; "
                "expected 16 kHz mono 16-bit"
            )
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").copy()


def load_split(manifest: str | os.PathLike, limit: int | None = None) -> list[Example]:
    """Read a split's manifest and audio into memory (the first ``limit`` clips)."""
    entries = read_manifest(manifest)[:limit]
    return [Example(read_wav16(e["path"]), e["text"], e) for e in entries]


#: The held-out test clip the notebooks transcribe (index in ``data/digits/test/manifest.jsonl``):
#: "five five one eight zero nine", en-gb-scotland+linda, recognised correctly by every variant.
NOTEBOOK_CLIP = 21


def held_out_clip(index: int = NOTEBOOK_CLIP, test_dir: str | os.PathLike = TEST_DIR) -> Example:
    """One clip of the committed held-out test set, by its index in the manifest.

    Reads only that clip's audio. Raises ``IndexError`` for an index outside the manifest.
    """
    entries = read_manifest(Path(test_dir) / "manifest.jsonl")
    if not -len(entries) <= index < len(entries):
        raise IndexError(f"test clip {index}: the manifest has {len(entries)} clips")
    entry = entries[index]
    return Example(read_wav16(entry["path"]), entry["text"], entry)


def data_script() -> Any:
    """``data/digits/make_digits.py`` imported as the module ``make_digits`` (it is a script,
    not part of the package): its voices, variants and ``main``."""
    if "make_digits" in sys.modules:
        return sys.modules["make_digits"]
    spec = importlib.util.spec_from_file_location("make_digits", DATA_SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["make_digits"] = module  # dataclasses look their module up while it executes
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules["make_digits"]
        raise
    return module


def ensure_data(build_dir: Path = BUILD_DIR, seed: int = 0, jobs: int = 2) -> None:
    """Run ``data/digits/make_digits.py`` for the splits whose manifest is missing in
    ``build_dir`` (train, val, heldout; the committed test set is never rewritten)."""
    missing = [s for s in ("train", "val", "heldout") if not (build_dir / s / "manifest.jsonl").is_file()]
    if missing:
        data_script().main(
            ["--splits", ",".join(missing), "--out", str(build_dir), "--seed", str(seed), "--jobs", str(jobs)]
        )


def train_tokenizer(out_dir: str | os.PathLike, seed: int = 0, lines: int = 2000) -> Path:
    """A SentencePiece unigram tokenizer over the digit words, in ``out_dir``.

    Trained on ``lines`` seeded random digit strings; every word becomes one piece
    (``▁three``). Writes ``tokenizer.model`` and the ``vocab.txt`` NeMo's ``bpe``
    tokenizer config wants; returns ``out_dir``.
    """
    import sentencepiece as spm

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    corpus = out_dir / "corpus.txt"
    corpus.write_text(
        "\n".join(" ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 8))) for _ in range(lines)) + "\n"
    )
    spm.SentencePieceTrainer.train(
        input=str(corpus), model_prefix=str(out_dir / "tokenizer"), vocab_size=32, model_type="unigram",
        bos_id=-1, eos_id=-1, character_coverage=1.0, hard_vocab_limit=False, minloglevel=2,
        num_threads=1, seed_sentencepiece_size=1000,
    )
    processor = spm.SentencePieceProcessor(model_file=str(out_dir / "tokenizer.model"))
    for word in WORDS:
        if len(processor.encode(word)) != 1:
            raise RuntimeError(f"the tokenizer splits {word!r} into {processor.encode(word, out_type=str)}")
    pieces = [processor.id_to_piece(i) for i in range(processor.get_piece_size())]
    (out_dir / "vocab.txt").write_text("\n".join(pieces) + "\n")
    return out_dir


@dataclass
class AudioBatch:
    """``audio [B, S]`` float32 in [-1, 1] (zero-padded), ``audio_len [B]``, and the transcripts."""

    audio: torch.Tensor
    audio_len: torch.Tensor
    texts: list[str]


def collate(examples: Sequence[Example]) -> AudioBatch:
    """Pad the clips of ``examples`` with zeros into an :class:`AudioBatch`."""
    lengths = [len(e.samples) for e in examples]
    audio = torch.zeros(len(examples), max(lengths))
    for i, e in enumerate(examples):
        audio[i, : len(e.samples)] = torch.from_numpy(e.samples.astype(np.float32) / 32768.0)
    return AudioBatch(audio=audio, audio_len=torch.tensor(lengths, dtype=torch.long), texts=[e.text for e in examples])


@dataclass
class MelBatch:
    """``mel [B, 128, F]`` (zero-padded), ``mel_len [B]``, ``labels [B, U]`` (padded with
    ``pad_id``), ``label_len [B]``."""

    mel: torch.Tensor
    mel_len: torch.Tensor
    labels: torch.Tensor
    label_len: torch.Tensor


def compute_mels(
    preprocessor: torch.nn.Module, examples: Sequence[Example], batch_size: int = 64
) -> list[torch.Tensor]:
    """The mel spectrogram ``[128, F_i]`` of each example (``F_i = S_i // 160`` valid frames),
    computed once in batches by NeMo's preprocessor in ``eval`` mode (no dither).

    A clip's valid frames do not depend on the batch it was padded in: the preprocessor
    zeroes the samples past each length and normalises over valid frames only.
    """
    preprocessor.eval()
    mels: list[torch.Tensor] = [torch.empty(0)] * len(examples)
    order = sorted(range(len(examples)), key=lambda i: len(examples[i].samples))
    for start in range(0, len(order), batch_size):
        idx = order[start: start + batch_size]
        batch = collate([examples[i] for i in idx])
        with torch.inference_mode(), typecheck.disable_checks():
            mel, mel_len = preprocessor(input_signal=batch.audio, length=batch.audio_len)
        for j, i in enumerate(idx):
            mels[i] = mel[j, :, : int(mel_len[j])].clone()
    return mels


def collate_mels(mels: Sequence[torch.Tensor], token_ids: Sequence[Sequence[int]], pad_id: int) -> MelBatch:
    """Pad cached mels ``[128, F_i]`` (zeros, the preprocessor's pad value) and token ids."""
    frames = [m.shape[1] for m in mels]
    mel = torch.zeros(len(mels), mels[0].shape[0], max(frames))
    for i, m in enumerate(mels):
        mel[i, :, : m.shape[1]] = m
    labels = torch.full((len(mels), max(1, max(len(x) for x in token_ids))), pad_id, dtype=torch.long)
    for i, x in enumerate(token_ids):
        labels[i, : len(x)] = torch.tensor(list(x), dtype=torch.long)
    return MelBatch(
        mel=mel, mel_len=torch.tensor(frames, dtype=torch.long), labels=labels,
        label_len=torch.tensor([len(x) for x in token_ids], dtype=torch.long),
    )


def length_batches(
    lengths: Sequence[int], batch_size: int, rng: np.random.Generator, pool: int = 16
) -> list[list[int]]:
    """Shuffled batches of indices of similar length (less padding, shorter TDT lattices).

    The indices are shuffled, cut into pools of ``pool * batch_size``, each pool sorted by
    length and cut into batches; then the batch order is shuffled.
    """
    order = rng.permutation(len(lengths))
    batches: list[list[int]] = []
    step = pool * batch_size
    for start in range(0, len(order), step):
        chunk = sorted(order[start: start + step].tolist(), key=lambda i: lengths[i])
        batches.extend(chunk[i: i + batch_size] for i in range(0, len(chunk), batch_size))
    return [batches[i] for i in rng.permutation(len(batches))]


def spec_augment(
    mel: torch.Tensor,
    mel_len: torch.Tensor,
    generator: torch.Generator,
    *,
    freq_masks: int = 2,
    freq_width: int = 16,
    time_masks: int = 2,
    time_width: float = 0.05,
) -> torch.Tensor:
    """SpecAugment (zero-filled masks) on ``mel [B, 128, F]`` drawn from ``generator``.

    Per item: ``freq_masks`` bands of up to ``freq_width`` mel bins and ``time_masks``
    spans of up to ``time_width`` of its valid frames (at least one frame). Returns a new
    tensor; the input is unchanged.
    """
    mel = mel.clone()
    B, n_mels, _ = mel.shape
    for b in range(B):
        for _ in range(freq_masks):
            width = int(torch.randint(0, freq_width + 1, (), generator=generator))
            start = int(torch.randint(0, n_mels - width + 1, (), generator=generator))
            mel[b, start: start + width, :] = 0.0
        valid = int(mel_len[b])
        max_width = max(1, int(valid * time_width))
        for _ in range(time_masks):
            width = int(torch.randint(0, max_width + 1, (), generator=generator))
            start = int(torch.randint(0, max(1, valid - width + 1), (), generator=generator))
            mel[b, :, start: start + width] = 0.0
    return mel


# --------------------------------------------------------------------------- model


def modules_of(model: Any) -> ParakeetModules:
    """The four modules of a NeMo TDT model (shared, not copied) as :class:`ParakeetModules`."""
    from parakeet_nb.checkpoint import _durations

    return ParakeetModules(
        preprocessor=model.preprocessor, encoder=model.encoder, decoder=model.decoder, joint=model.joint,
        durations=_durations(model.cfg) or DIGITS_PRESET.durations, source="training",
        tokenizer=getattr(model, "tokenizer", None),
    )


def count_parameters(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def encode_batch(
    modules: ParakeetModules, audio: torch.Tensor, audio_len: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Preprocessor (in ``eval`` mode, so no dither) then encoder: ``encoder [B, D, T]``, ``lengths [B]``."""
    with typecheck.disable_checks():
        with torch.no_grad():
            modules.preprocessor.eval()
            mel, mel_len = modules.preprocessor(input_signal=audio, length=audio_len)
        return modules.encoder(audio_signal=mel, length=mel_len)


def transcribe_examples(modules: ParakeetModules, examples: Sequence[Example], batch_size: int = 32) -> list[str]:
    """Greedy TDT transcripts of ``examples`` (batched encoder, :func:`parakeet_nb.tdt.decode_torch`).

    The encoder runs in ``eval`` mode; the caller's train/eval mode is restored.
    """
    from parakeet_nb import tdt

    if modules.tokenizer is None:
        raise ValueError("the model has no tokenizer: cannot turn tokens into text")
    was_training = modules.encoder.training
    for m in (modules.encoder, modules.decoder, modules.joint):
        m.eval()
    order = sorted(range(len(examples)), key=lambda i: len(examples[i].samples))
    texts: list[str] = [""] * len(examples)
    try:
        for start in range(0, len(order), batch_size):
            idx = order[start: start + batch_size]
            batch = collate([examples[i] for i in idx])
            with torch.inference_mode():
                encoded, encoded_len = encode_batch(modules, batch.audio, batch.audio_len)
            hyps = tdt.decode_torch(modules, encoded, encoded_len)
            for i, hyp in zip(idx, hyps):
                texts[i] = modules.tokenizer.ids_to_text(hyp.tokens) if hyp.tokens else ""
    finally:
        for m in (modules.encoder, modules.decoder, modules.joint):
            m.train(was_training)
    return texts


@dataclass
class Evaluation:
    """WER of one set, with every transcript and the error count."""

    name: str
    wer: float
    errors: int
    words: int
    clips: int
    sentence_errors: int
    refs: list[str]
    hyps: list[str]

    def summary(self) -> str:
        return (f"{self.name}: WER {100 * self.wer:.2f} % ({self.errors}/{self.words} words), "
                f"{self.sentence_errors}/{self.clips} clips wrong")


def evaluate_examples(modules: ParakeetModules, examples: Sequence[Example], name: str = "set") -> Evaluation:
    """Transcribe ``examples`` and score them (:func:`wer`)."""
    hyps = transcribe_examples(modules, examples)
    refs = [e.text for e in examples]
    errors = sum(word_errors(r, h)[0] for r, h in zip(refs, hyps))
    words = sum(len(r.split()) for r in refs)
    return Evaluation(
        name=name, wer=wer(refs, hyps), errors=errors, words=words, clips=len(refs),
        sentence_errors=sum(r.split() != h.split() for r, h in zip(refs, hyps)), refs=refs, hyps=hyps,
    )


# --------------------------------------------------------------------------- training


@dataclass
class TrainConfig:
    """Everything that decides a training run (the defaults are the shipped model's)."""

    epochs: int = 8
    batch_size: int = 32
    lr: float = 3e-3
    weight_decay: float = 1e-3
    warmup_steps: int = 300
    min_lr_ratio: float = 0.02
    grad_clip: float = 1.0
    sigma: float = 0.02
    omega: float = 0.1
    spec_augment: bool = True
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
    """The TDT loss (:func:`parakeet_nb.tdt_loss.tdt_loss`, per-token ``mean_volume``) of a batch.

    Optional SpecAugment on the cached mels, encoder, prediction network on the labels
    (NeMo prepends the start symbol), joint over every (frame, step). Returns the loss and
    the number of encoder frames of the lattice.
    """
    from parakeet_nb.tdt_loss import tdt_loss

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

    from parakeet_nb.checkpoint import _nemo_quiet, build_tdt_model

    start, cpu_start = time.perf_counter(), time.process_time()
    load_start = os.getloadavg()
    seed_everything(cfg.seed, cfg.threads)
    data_dir = Path(cfg.data_dir)
    ensure_data(data_dir, seed=cfg.seed, jobs=cfg.threads)
    train_set = load_split(data_dir / "train" / "manifest.jsonl", cfg.train_limit)
    val_set = load_split(data_dir / "val" / "manifest.jsonl", cfg.val_limit)

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
        Path(cfg.card), cfg, result, len(train_set), train_minutes, len(val_set), (load_start, load_end)
    )
    return result


# --------------------------------------------------------------------------- evaluation and the card


def evaluate_checkpoint(
    path: str | os.PathLike = CHECKPOINT,
    data_dir: str | os.PathLike = BUILD_DIR,
    test_dir: str | os.PathLike = TEST_DIR,
) -> dict[str, Evaluation]:
    """WER of a ``.nemo`` on the committed test set (``test_dir``) and, when it exists, the
    larger held-out set (``data_dir/heldout``)."""
    from parakeet_nb.checkpoint import load_nemo

    modules = load_nemo(path)
    sets = {"test": Path(test_dir) / "manifest.jsonl", "heldout": Path(data_dir) / "heldout" / "manifest.jsonl"}
    return {name: evaluate_examples(modules, load_split(m), name) for name, m in sets.items() if m.is_file()}


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
        "it knows no other words. Made by `parakeet_nb/digits.py`; **restoring a .nemo unpickles:",
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
        f"- Training: {n_train} clips ({train_minutes:.0f} min of audio), validation: {n_val} clips; "
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
        f"- Test: `data/digits/test/` (committed), {test_info.get('size', '?')} clips, each length 1-8 and each "
        "held-out variant equally often; `heldout`: a larger set with the same held-out variants in `build/digits/`.",
        "",
        "## Training",
        "",
        f"- Loss: `parakeet_nb.tdt_loss.tdt_loss` (pure PyTorch, CPU; sigma {cfg.sigma}, omega {cfg.omega}, per-token mean).",
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
        "## Word error rate (greedy TDT decoding, `parakeet_nb.tdt`)",
        "",
        "| set | voices | clips | words | WER | clips wrong |",
        "|---|---|---:|---:|---:|---:|",
    ]
    test = result.evaluations.get("test", Evaluation("test", 0.0, 0, 0, 0, 0, [], []))
    for ev in result.evaluations.values():
        voices = "held-out variants"
        lines.append(f"| {ev.name} | {voices} | {ev.clips} | {ev.words} | {100 * ev.wer:.2f} % | {ev.sentence_errors} |")
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


# --------------------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m parakeet_nb.digits", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train the digits model and save data/digits_tdt.nemo")
    defaults = TrainConfig()
    t.add_argument("--epochs", type=int, default=defaults.epochs)
    t.add_argument("--batch-size", type=int, default=defaults.batch_size)
    t.add_argument("--lr", type=float, default=defaults.lr)
    t.add_argument("--seed", type=int, default=defaults.seed)
    t.add_argument("--threads", type=int, default=defaults.threads)
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
            epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed, threads=args.threads,
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
    sys.exit(main())
