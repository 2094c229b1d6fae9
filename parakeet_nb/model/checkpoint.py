"""NeMo ``.nemo`` checkpoints: build a small TDT model offline, and load one safely.

A ``.nemo`` file is a tar archive holding the model config, weights and tokenizer.
**Loading one unpickles Python objects (``torch.load``): load only files you trust.**
Nothing here downloads anything; the tokenizer must be inside the archive.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import tarfile
from pathlib import Path
from typing import Any

from parakeet_nb import _quiet
from parakeet_nb.frontend.recipe import HOP, N_MELS, PREPROCESSOR_KWARGS, SAMPLE_RATE
from parakeet_nb.model.presets import ParakeetModules, Preset

_quiet.import_heavy()


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message says what was wrong and what is expected."""


def sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@contextlib.contextmanager
def _nemo_quiet():
    """Turn NeMo's INFO chatter during save/restore down to errors."""
    from nemo.utils import logging as nemo_logging

    level = nemo_logging.getEffectiveLevel()
    nemo_logging.setLevel(logging.ERROR)
    try:
        yield
    finally:
        nemo_logging.setLevel(level)


def tdt_config(preset: Preset, tokenizer_dir: str) -> dict[str, Any]:
    """The config of an ``EncDecRNNTBPEModel`` TDT model with ``preset``'s shapes.

    ``tokenizer_dir`` holds a SentencePiece ``tokenizer.model`` and ``vocab.txt``; the
    vocabulary size comes from the tokenizer. Datasets and optimiser are left unset.
    """
    durations = list(preset.durations)
    return {
        "sample_rate": SAMPLE_RATE,
        "tokenizer": {"dir": tokenizer_dir, "type": "bpe"},
        "preprocessor": {"_target_": "nemo.collections.asr.modules.AudioToMelSpectrogramPreprocessor", **PREPROCESSOR_KWARGS},
        "encoder": {
            "_target_": "nemo.collections.asr.modules.ConformerEncoder",
            "feat_in": N_MELS, "n_layers": preset.n_layers, "d_model": preset.d_model,
            "subsampling": "dw_striding", "subsampling_factor": preset.subsampling_factor,
            "subsampling_conv_channels": preset.subsampling_conv_channels,
            "ff_expansion_factor": preset.ff_expansion_factor, "self_attention_model": "rel_pos",
            "n_heads": preset.n_heads, "conv_kernel_size": preset.conv_kernel_size, "xscaling": True,
            "dropout": 0.1, "dropout_pre_encoder": 0.1, "dropout_emb": 0.0, "dropout_att": 0.1,
        },
        "decoder": {
            "_target_": "nemo.collections.asr.modules.RNNTDecoder", "blank_as_pad": True,
            "prednet": {"pred_hidden": preset.pred_hidden, "pred_rnn_layers": preset.pred_rnn_layers,
                        "dropout": 0.1 if preset.pred_rnn_layers > 1 else 0.0},
        },
        "joint": {
            "_target_": "nemo.collections.asr.modules.RNNTJoint", "num_extra_outputs": len(durations),
            "jointnet": {"joint_hidden": preset.joint_hidden, "activation": "relu", "dropout": 0.1},
        },
        "model_defaults": {
            "enc_hidden": preset.d_model, "pred_hidden": preset.pred_hidden,
            "joint_hidden": preset.joint_hidden, "tdt_durations": durations,
            "num_tdt_durations": len(durations),
        },
        "loss": {"loss_name": "tdt", "tdt_kwargs": {"durations": durations, "sigma": 0.02, "omega": 0.1}},
        "decoding": {"strategy": "greedy", "model_type": "tdt", "durations": durations,
                     "greedy": {"max_symbols": 10}},
        "train_ds": None, "validation_ds": None, "test_ds": None, "optim": None,
    }


def build_tdt_model(preset: Preset, tokenizer_dir: str | os.PathLike):
    """A NeMo ``EncDecRNNTBPEModel`` (TDT) with ``preset``'s shapes, seeded, on CPU."""
    import torch
    from nemo.collections.asr.models import EncDecRNNTBPEModel
    from omegaconf import OmegaConf

    torch.manual_seed(preset.seed)
    with _nemo_quiet():
        return EncDecRNNTBPEModel(cfg=OmegaConf.create(tdt_config(preset, str(tokenizer_dir))))


def _durations(cfg) -> tuple[int, ...] | None:
    for section, key in (("model_defaults", "tdt_durations"), ("decoding", "durations")):
        value = cfg.get(section, {}).get(key) if cfg.get(section) is not None else None
        if value:
            return tuple(int(d) for d in value)
    return None


def _check_preprocessor(pre, path: Path) -> None:
    fb = pre.featurizer
    found = {"features": int(fb.nfilt), "n_fft": int(fb.n_fft), "hop": int(fb.hop_length), "sample_rate": int(pre._sample_rate)}
    expected = {"features": N_MELS, "n_fft": 512, "hop": HOP, "sample_rate": SAMPLE_RATE}
    if found != expected:
        wrong = ", ".join(f"{k} {found[k]} (expected {expected[k]})" for k in expected if found[k] != expected[k])
        raise CheckpointError(f"{path}: the checkpoint's preprocessor is not Parakeet's: {wrong}")


def load_nemo(path: str | os.PathLike) -> ParakeetModules:
    """Restore a local ``.nemo`` TDT checkpoint on CPU (offline) as :class:`ParakeetModules`.

    Only trusted files: restoring unpickles. Raises :class:`CheckpointError` for a missing
    or unreadable file, a file that is not a ``.nemo`` archive, a model that is not a TDT
    transducer, or a preprocessor that is not Parakeet's (128 mels, n_fft 512, hop 160).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    if not os.access(path, os.R_OK):
        raise CheckpointError(f"{path}: not readable (permission denied)")
    if not tarfile.is_tarfile(path):
        raise CheckpointError(f"{path}: not a .nemo checkpoint (a .nemo file is a tar archive)")
    from nemo.collections.asr.models import ASRModel

    try:
        with _nemo_quiet():
            model = ASRModel.restore_from(str(path), map_location="cpu")
    except Exception as exc:  # NeMo raises many types for a bad archive
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path}: could not restore the checkpoint ({reason})") from None
    missing = [name for name in ("preprocessor", "encoder", "decoder", "joint") if not hasattr(model, name)]
    if missing:
        raise CheckpointError(f"{path}: a {type(model).__name__}, not a transducer (no {', '.join(missing)})")
    durations = _durations(model.cfg)
    if not durations:
        raise CheckpointError(f"{path}: not a TDT model (no tdt_durations in its config)")
    _check_preprocessor(model.preprocessor, path)
    model.eval()
    return ParakeetModules(
        preprocessor=model.preprocessor,
        encoder=model.encoder,
        decoder=model.decoder,
        joint=model.joint,
        durations=durations,
        source=f"checkpoint:{path.name}",
        sha256=sha256(path),
        tokenizer=getattr(model, "tokenizer", None),
    )


def save_tiny_checkpoint(path: str | os.PathLike, preset: Preset, words: list[str], workdir: str | os.PathLike) -> Path:
    """Train a SentencePiece tokenizer on ``words`` and save a seeded TDT model to ``path``.

    For tests and demos of the ``--nemo`` route; the weights are random.
    """
    import sentencepiece as spm

    workdir = Path(workdir)
    tok = workdir / "tokenizer"
    tok.mkdir(parents=True, exist_ok=True)
    corpus = workdir / "corpus.txt"
    corpus.write_text("\n".join(" ".join(words[i:] + words[:i]) for i in range(len(words))) + "\n")
    spm.SentencePieceTrainer.train(
        input=str(corpus), model_prefix=str(tok / "tokenizer"), vocab_size=preset.vocab_size,
        model_type="unigram", bos_id=-1, eos_id=-1, character_coverage=1.0,
        hard_vocab_limit=False, minloglevel=2,
    )
    processor = spm.SentencePieceProcessor(model_file=str(tok / "tokenizer.model"))
    (tok / "vocab.txt").write_text("\n".join(processor.id_to_piece(i) for i in range(processor.get_piece_size())) + "\n")
    model = build_tdt_model(preset, tok)
    path = Path(path)
    with _nemo_quiet():
        model.save_to(str(path))
    return path
