"""The end-to-end pipeline: waveform -> mel -> encoder -> TDT greedy decoding.

Three front-end variants, all ending in the same encoder and decoding loop:

* ``split``: NeMo's preprocessor on ``audio_signal [1, 240000]``, then the encoder
  (the split Core ML export: preprocessor on CPU/GPU, encoder on the ANE);
* ``fused``: the same two modules as one (``parakeet_mel_encoder``);
* ``chunked``: the chunked preprocessor on ``audio_chunks [1, 15, 16000]``, then the
  encoder (the ANE-safe fused export).

Here the modules run in PyTorch, on any OS. A waveform shorter than the 15 s window is
zero-padded with its true length passed along, as the exported models expect.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch

from parakeet_nb import tdt
from parakeet_nb.components import Encoder, MelEncoder, Preprocessor
from parakeet_nb.models import WINDOW_SAMPLES, ParakeetModules

Variant = Literal["split", "fused", "chunked"]
VARIANTS: tuple[str, ...] = ("split", "fused", "chunked")


@dataclass
class Transcript:
    """Tokens with their start times (seconds), and text when the model has a tokenizer."""

    variant: str
    tokens: list[int]
    timestamps: list[float]
    durations: list[int]
    text: str | None
    encoder_frames: int
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "variant": self.variant,
            "tokens": self.tokens,
            "timestamps": [round(t, 3) for t in self.timestamps],
            "durations": self.durations,
            "text": self.text,
            "encoder_frames": self.encoder_frames,
            "notes": self.notes,
        }


def window(waveform: np.ndarray | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad a 1-D waveform ``[S]`` (1 <= S <= 240000) to ``audio_signal [1, 240000]`` and ``audio_length [1]``."""
    samples = torch.as_tensor(np.asarray(waveform, dtype=np.float32))
    if samples.ndim != 1:
        raise ValueError(f"expected a 1-D waveform, got shape {tuple(samples.shape)}")
    n = samples.shape[0]
    if not 1 <= n <= WINDOW_SAMPLES:
        raise ValueError(f"waveform has {n} samples; expected 1 to {WINDOW_SAMPLES} (the 15 s window at 16 kHz)")
    if not torch.isfinite(samples).all():
        raise ValueError("waveform contains NaN or infinite samples")
    signal = torch.zeros(1, WINDOW_SAMPLES)
    signal[0, :n] = samples
    return signal, torch.tensor([n], dtype=torch.int32)


def encode(modules: ParakeetModules, waveform: np.ndarray | torch.Tensor, variant: Variant = "split"):
    """Run the front end and encoder of ``variant``: returns ``encoder [1, D, T]``, ``encoder_length [1]``."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}: expected one of {', '.join(VARIANTS)}")
    with torch.inference_mode():
        if variant == "chunked":
            from parakeet_nb.chunked import ChunkedPreprocessor, to_chunks

            chunks, length = to_chunks(waveform)
            return MelEncoder(ChunkedPreprocessor(), modules.encoder).eval()(chunks, length)
        signal, length = window(waveform)
        if variant == "fused":
            return MelEncoder(Preprocessor(modules.preprocessor), modules.encoder).eval()(signal, length)
        mel, mel_length = Preprocessor(modules.preprocessor).eval()(signal, length)
        return Encoder(modules.encoder).eval()(mel, mel_length)


def program_inputs(waveform: np.ndarray | torch.Tensor, input_names: list[str]) -> dict[str, np.ndarray]:
    """The waveform-side inputs of an exported package, by the names it declares.

    ``audio_signal [1, 240000]`` (padded) or ``audio_chunks [1, 15, 16000]``, plus
    ``audio_length [1]`` int32. Raises ``ValueError`` when the package takes no waveform.
    """
    if "audio_signal" in input_names:
        signal, length = window(waveform)
        return {"audio_signal": signal.numpy(), "audio_length": length.numpy()}
    if "audio_chunks" in input_names:
        from parakeet_nb.chunked import to_chunks

        chunks, length = to_chunks(waveform)
        return {"audio_chunks": chunks.numpy(), "audio_length": length.numpy().astype(np.int32)}
    raise ValueError(f"the package takes {', '.join(input_names)}, not a waveform (audio_signal or audio_chunks)")


#: The exported packages each variant runs, in order, before decoding.
EXPORTED_FRONT_ENDS: dict[str, tuple[str, ...]] = {
    "split": ("parakeet_preprocessor.mlpackage", "parakeet_encoder.mlpackage"),
    "fused": ("parakeet_mel_encoder.mlpackage",),
    "chunked": ("parakeet_mel_encoder_chunked.mlpackage",),
}


def transcribe_exported(
    export_dir,
    waveform: np.ndarray | torch.Tensor,
    variant: Variant = "split",
    *,
    numerics: str = "fp32",
    max_symbols_per_step: int = 10,
    tokenizer: Any = None,
) -> Transcript:
    """Transcribe with the exported Core ML packages themselves, run by the MIL executor.

    Works on any OS (:mod:`parakeet_nb.milexec` is a numpy reference executor, not Core
    ML). ``numerics="fp16"`` rounds every tensor to float16 after each op.
    """
    from pathlib import Path

    from parakeet_nb.milexec import MilExecutor, tdt_backend
    from parakeet_nb.runtime import read_metadata

    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}: expected one of {', '.join(VARIANTS)}")
    export_dir = Path(export_dir)
    blank_id = int(read_metadata(export_dir)["model"]["blank_id"])
    values: dict[str, np.ndarray] = {}
    for i, file in enumerate(EXPORTED_FRONT_ENDS[variant]):
        executor = MilExecutor(export_dir / file, numerics=numerics)
        names = list(executor.input_specs())
        feed = program_inputs(waveform, names) if i == 0 else {n: values[n] for n in names}
        values.update(executor.run(feed))
    step, decide = tdt_backend(
        export_dir / "parakeet_decoder.mlpackage", export_dir / "parakeet_joint_decision.mlpackage", numerics=numerics
    )
    frames = int(values["encoder_length"][0])
    hyp = tdt.greedy_decode(
        values["encoder"][0].astype(np.float32), frames, step, decide,
        blank_id=blank_id, max_symbols_per_step=max_symbols_per_step,
    )
    text = tokenizer.ids_to_text(hyp.tokens) if tokenizer is not None and hyp.tokens else (None if tokenizer is None else "")
    return Transcript(
        variant=f"{variant} (exported packages, {numerics})", tokens=hyp.tokens, timestamps=hyp.timestamps(),
        durations=hyp.durations, text=text, encoder_frames=frames,
    )


def transcribe(
    modules: ParakeetModules,
    waveform: np.ndarray | torch.Tensor,
    variant: Variant = "split",
    *,
    max_symbols_per_step: int = 10,
) -> Transcript:
    """Transcribe one waveform ``[S]`` (16 kHz, at most 15 s) with PyTorch modules."""
    encoded, encoded_length = encode(modules, waveform, variant)
    step, decide = tdt.torch_backend(modules)
    hyp = tdt.greedy_decode(
        encoded[0], int(encoded_length[0]), step, decide,
        blank_id=modules.blank_id, max_symbols_per_step=max_symbols_per_step,
    )
    text = None
    if modules.tokenizer is not None:
        text = modules.tokenizer.ids_to_text(hyp.tokens) if hyp.tokens else ""
    return Transcript(
        variant=variant,
        tokens=hyp.tokens,
        timestamps=hyp.timestamps(),
        durations=hyp.durations,
        text=text,
        encoder_frames=int(encoded_length[0]),
    )
