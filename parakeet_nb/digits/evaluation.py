"""Transcribing and scoring the digits model: batched TDT greedy decoding and WER per test set.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch  # noqa: E402

from parakeet_nb import _quiet  # noqa: E402
from parakeet_nb.model.presets import TDT_DURATIONS, ParakeetModules
from parakeet_nb.paths import ROOT
from parakeet_nb.digits.corpus import BUILD_DIR, Example, TEST_DIR, collate, compose_windows, load_split
from parakeet_nb.digits.wer import wer, word_errors

_quiet.import_heavy()

from nemo.core.classes.common import typecheck  # noqa: E402


#: The shipped checkpoint and its model card.
CHECKPOINT = ROOT / "data" / "digits_tdt.nemo"


def modules_of(model: Any) -> ParakeetModules:
    """The four modules of a NeMo TDT model (shared, not copied) as :class:`ParakeetModules`."""
    from parakeet_nb.model.checkpoint import _durations

    return ParakeetModules(
        preprocessor=model.preprocessor, encoder=model.encoder, decoder=model.decoder, joint=model.joint,
        durations=_durations(model.cfg) or TDT_DURATIONS, source="training",
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
    """Greedy TDT transcripts of ``examples`` (batched encoder, :func:`parakeet_nb.model.tdt.decode_torch`).

    The encoder runs in ``eval`` mode; the caller's train/eval mode is restored.
    """
    from parakeet_nb.model import tdt

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


#: How many multi-utterance windows each test set's clips are composed into.
EVALUATION_WINDOWS = {"test": 48, "heldout": 200}


def evaluate_checkpoint(
    path: str | os.PathLike = CHECKPOINT,
    data_dir: str | os.PathLike = BUILD_DIR,
    test_dir: str | os.PathLike = TEST_DIR,
) -> dict[str, Evaluation]:
    """WER of a ``.nemo`` on the committed test set (``test_dir``) and, when it exists, the
    larger held-out set (``data_dir/heldout``); then on each set's clips composed into
    multi-utterance 3-15 s windows (:func:`compose_windows`, seed 2, :data:`EVALUATION_WINDOWS`)."""
    from parakeet_nb.model.checkpoint import load_nemo

    modules = load_nemo(path)
    sets = {"test": Path(test_dir) / "manifest.jsonl", "heldout": Path(data_dir) / "heldout" / "manifest.jsonl"}
    out: dict[str, Evaluation] = {}
    for name, manifest in sets.items():
        if manifest.is_file():
            clips = load_split(manifest)
            out[name] = evaluate_examples(modules, clips, name)
            windows = compose_windows(clips, EVALUATION_WINDOWS[name], seed=2)
            out[f"{name} windows"] = evaluate_examples(modules, windows, f"{name} windows")
    return out
