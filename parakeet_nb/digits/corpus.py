"""The spoken-digits data: the data script, manifests, clips, the tokenizer, batches of mels, SpecAugment.

Shapes: ``B`` batch, ``S`` samples, ``F`` mel frames, ``U`` labels.
"""

from __future__ import annotations

import importlib.util
import json
import os
import random
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np  # noqa: E402
import torch  # noqa: E402

from parakeet_nb import _quiet  # noqa: E402
from parakeet_nb.frontend.recipe import SAMPLE_RATE
from parakeet_nb.paths import ROOT

_quiet.import_heavy()

from nemo.core.classes.common import typecheck  # noqa: E402


#: Where the data script lives and writes.
DATA_SCRIPT = ROOT / "data" / "digits" / "make_digits.py"


#: The committed test set (held-out voice variants).
TEST_DIR = ROOT / "data" / "digits" / "test"


#: Training, validation and the larger held-out set (not committed): ``build/digits`` under the
#: project root, or under ``$PARAKEET_NB_BUILD`` like every other build product.
BUILD_DIR = Path(os.environ.get("PARAKEET_NB_BUILD", ROOT / "build")) / "digits"


#: The words a transcript may contain (zero may be spoken "oh").
WORDS: tuple[str, ...] = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "oh")


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


def concatenate(examples, seed: int, seconds: float, straddle: tuple[int, ...] = ()):
    """A long recording made of clips: ``examples`` in a seeded order with 0.2-0.6 s of silence
    between them, until ``seconds``; for each sample position in ``straddle`` the next clip is
    placed so that its centre sits exactly there (a word on a window seam).

    Returns ``(waveform [S] float32, [(start, end, example)])``, sample positions at 16 kHz.
    """
    rng = np.random.default_rng(seed)
    pieces, spans, pos, targets = [], [], 0, list(straddle)
    for i in rng.permutation(len(examples)):
        x = examples[i].waveform
        gap = int(rng.uniform(0.2, 0.6) * SAMPLE_RATE)
        if targets and pos + gap + len(x) // 2 >= targets[0]:
            gap = max(0, targets.pop(0) - len(x) // 2 - pos)
        pieces += [np.zeros(gap, np.float32), x]
        spans.append((pos + gap, pos + gap + len(x), examples[i]))
        pos += gap + len(x)
        if pos >= seconds * SAMPLE_RATE:
            break
    return np.concatenate(pieces), spans


#: Multi-utterance training windows (:func:`compose_windows`): their length, the silence before
#: the first clip and between clips, in seconds. Up to 15 s: the window the exports run on.
WINDOW_SECONDS = (3.0, 15.0)
WINDOW_LEAD = (0.0, 6.0)
WINDOW_GAP = (0.1, 1.2)


def compose_windows(examples: Sequence[Example], count: int, seed: int) -> list[Example]:
    """``count`` recordings of 3-15 s, each made of several ``examples`` with silence around them.

    The single clips of the data set start within 0.3 s of their first sample and last at
    most ~5 s. A model trained only on them hears nothing seconds into its window, yet the
    exported models run on 15 s windows, and a long recording puts speech anywhere in them
    (:mod:`parakeet_nb.transcribe.long_audio`). Each window here has a seeded length in
    :data:`WINDOW_SECONDS`, a leading silence in :data:`WINDOW_LEAD` and clips drawn at random
    with :data:`WINDOW_GAP` of silence between them while they fit; the rest is trailing silence.
    Its transcript is the clips' transcripts in order; ``entry["parts"]`` lists the clips'
    ``path``, ``entry["starts"]`` their first samples, ``entry["lead"]`` the leading silence in seconds.

    Windows depend only on ``(seed, count, examples)``. Raises ``ValueError`` without examples.
    """
    if not examples:
        raise ValueError("compose_windows needs at least one example")
    rng = np.random.default_rng([seed, 15])
    cap = int(WINDOW_SECONDS[1] * SAMPLE_RATE)
    windows = []
    for _ in range(count):
        total = int(rng.uniform(*WINDOW_SECONDS) * SAMPLE_RATE)
        pos = int(rng.uniform(*WINDOW_LEAD) * SAMPLE_RATE)
        pieces, parts, starts = [np.zeros(0, np.int16)], [], []
        while True:
            clip = examples[int(rng.integers(len(examples)))]
            if pos + len(clip.samples) > total:
                if parts:
                    break
                total = min(cap, max(total, len(clip.samples)))  # the first clip always fits
                pos = min(pos, total - len(clip.samples))
            pieces += [np.zeros(pos - sum(map(len, pieces)), np.int16), clip.samples]
            parts.append(clip)
            starts.append(pos)
            pos += len(clip.samples) + int(rng.uniform(*WINDOW_GAP) * SAMPLE_RATE)
        samples = np.concatenate(pieces)
        samples = np.concatenate([samples, np.zeros(total - len(samples), np.int16)])
        windows.append(Example(samples, " ".join(e.text for e in parts), {
            "parts": [e.entry.get("path") for e in parts], "starts": starts, "lead": round(starts[0] / SAMPLE_RATE, 3),
            "samples": len(samples), "voice": "mixed", "variant": "",
        }))
    return windows
