"""The end-to-end pipeline: waveform -> mel -> encoder -> TDT greedy decoding.

Three front-end variants, all ending in the same encoder and decoding loop:

* ``split``: NeMo's preprocessor on ``audio_signal [1, 240000]``, then the encoder
  (the split Core ML export: preprocessor on CPU/GPU, encoder on the ANE);
* ``fused``: the same two modules as one (``parakeet_mel_encoder``);
* ``chunked``: the chunked preprocessor on ``audio_chunks [1, 15, 16000]``, then the
  encoder (the ANE-safe fused export).

Here the modules run in PyTorch, on any OS. A waveform shorter than the 15 s window is
zero-padded with its true length passed along, as the exported models expect.
:func:`transcribe_exported` runs the exported packages instead (MIL executor),
:func:`transcribe_packages` does so for an export folder alone (model and tokenizer from
its ``metadata.json``; ``parakeet-nb transcribe --packages``), and
:func:`transcribe_all` puts PyTorch and exported transcripts side by side.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch

from parakeet_nb.model import tdt
from parakeet_nb.model.components import Encoder, MelEncoder, Preprocessor
from parakeet_nb.frontend.recipe import WINDOW_SAMPLES
from parakeet_nb.model.presets import ParakeetModules

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
            from parakeet_nb.frontend.chunked import ChunkedPreprocessor, to_chunks

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
        from parakeet_nb.frontend.chunked import to_chunks

        chunks, length = to_chunks(waveform)
        return {"audio_chunks": chunks.numpy(), "audio_length": length.numpy().astype(np.int32)}
    raise ValueError(f"the package takes {', '.join(input_names)}, not a waveform (audio_signal or audio_chunks)")


#: The exported packages each variant runs, in order, before decoding.
EXPORTED_FRONT_ENDS: dict[str, tuple[str, ...]] = {
    "split": ("parakeet_preprocessor.mlpackage", "parakeet_encoder.mlpackage"),
    "fused": ("parakeet_mel_encoder.mlpackage",),
    "chunked": ("parakeet_mel_encoder_chunked.mlpackage",),
}
#: The exported packages every variant decodes with (greedy TDT: prediction network, joint decision).
EXPORTED_BACK_END: tuple[str, ...] = ("parakeet_decoder.mlpackage", "parakeet_joint_decision.mlpackage")


def exported_components(variants: Sequence[str]) -> list[str]:
    """The export components :func:`transcribe_exported` needs for ``variants``, in contract order.

    The names ``export.export(..., only=...)`` takes: each variant's front end plus the
    decoder and joint decision, e.g. ``["mel_encoder", "decoder", "joint_decision"]`` for
    ``["fused"]``. Export only these to keep a notebook cell fast.
    """
    from parakeet_nb.coreml.convert import COMPONENTS

    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise ValueError(f"unknown variant {unknown[0]!r}: expected one of {', '.join(VARIANTS)}")
    files = {f for v in variants for f in EXPORTED_FRONT_ENDS[v]} | set(EXPORTED_BACK_END)
    return [name for name, c in COMPONENTS.items() if c.file in files]


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

    Works on any OS (:mod:`parakeet_nb.mlprogram.milexec` is a numpy reference executor, not Core
    ML). ``numerics="fp32"`` runs each package as typed (fp16-typed ops in float16, the
    rest in float32; label ``as typed``); ``numerics="fp16"`` rounds every tensor to float16
    after each op (label ``all fp16``).
    """
    from pathlib import Path

    from parakeet_nb.mlprogram.milexec import MilExecutor, tdt_backend
    from parakeet_nb.coreml.runtime import read_metadata

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
    step, decide = tdt_backend(*(export_dir / f for f in EXPORTED_BACK_END), numerics=numerics)
    frames = int(values["encoder_length"][0])
    hyp = tdt.greedy_decode(
        values["encoder"][0].astype(np.float32), frames, step, decide,
        blank_id=blank_id, max_symbols_per_step=max_symbols_per_step,
    )
    text = tokenizer.ids_to_text(hyp.tokens) if tokenizer is not None and hyp.tokens else (None if tokenizer is None else "")
    mode = "as typed" if numerics == "fp32" else "all fp16"
    return Transcript(
        variant=f"{variant} (exported packages, {mode})", tokens=hyp.tokens, timestamps=hyp.timestamps(),
        durations=hyp.durations, text=text, encoder_frames=frames,
    )


def missing_packages(export_dir: str | os.PathLike, variant: str) -> list[str]:
    """The package files ``variant`` needs that ``export_dir`` lacks (front end, decoder, joint decision)."""
    from pathlib import Path

    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}: expected one of {', '.join(VARIANTS)}")
    return [f for f in (*EXPORTED_FRONT_ENDS[variant], *EXPORTED_BACK_END) if not (Path(export_dir) / f).is_dir()]


def export_tokenizer(metadata: dict[str, Any], nemo: str | os.PathLike | None = None) -> Any:
    """The tokenizer of the model an export was made from, or ``None`` for a preset.

    ``metadata["model"]["source"]`` is ``preset:NAME`` (seeded weights, no tokenizer) or
    ``checkpoint:FILE``; the checkpoint is read from ``nemo`` when given, else from
    ``data/FILE`` of this repository (the shipped digits model), and must have the
    ``checkpoint_sha256`` the export recorded. Raises ``ValueError`` with the reason.
    """
    from pathlib import Path

    from parakeet_nb.model.checkpoint import CheckpointError, load_nemo, sha256
    from parakeet_nb.paths import ROOT

    model = metadata.get("model", {})
    source = str(model.get("source", ""))
    if source.startswith("preset:"):
        return None
    if not source.startswith("checkpoint:"):
        raise ValueError(f"metadata.json names the model source {source!r}; expected preset:NAME or checkpoint:FILE")
    name = source.split(":", 1)[1]
    path = Path(nemo) if nemo is not None else ROOT / "data" / name
    if not path.is_file():
        raise ValueError(f"the export was made from checkpoint {name}, not found at {path}: give its path with --nemo")
    expected = model.get("checkpoint_sha256")
    if expected is not None and sha256(path) != expected:
        raise ValueError(f"{path}: not the checkpoint this export was made from (sha256 differs from metadata.json)")
    try:
        return load_nemo(path).tokenizer
    except CheckpointError as exc:
        raise ValueError(str(exc)) from None


def transcribe_packages(
    export_dir: str | os.PathLike,
    waveform: np.ndarray | torch.Tensor,
    variant: Variant = "split",
    *,
    nemo: str | os.PathLike | None = None,
) -> Transcript:
    """Transcribe with the packages of an export folder alone, run as typed by the MIL executor.

    The model (blank id, tokenizer through :func:`export_tokenizer`) comes from the folder's
    ``metadata.json``; ``variant`` picks the front end among its packages. Raises
    ``ValueError`` naming the missing packages, or why the metadata or checkpoint is unusable.
    """
    return transcribe_exported(export_dir, waveform, variant, tokenizer=packages_tokenizer(export_dir, variant, nemo))


def packages_tokenizer(export_dir: str | os.PathLike, variant: Variant = "split", nemo: str | os.PathLike | None = None) -> Any:
    """Check that ``export_dir`` holds the packages ``variant`` needs and return the model's
    tokenizer (:func:`export_tokenizer`; ``None`` for a preset). Raises ``ValueError`` as
    :func:`transcribe_packages` does; call it once before transcribing many windows."""
    from parakeet_nb.coreml.runtime import read_metadata

    metadata = read_metadata(export_dir)
    missing = missing_packages(export_dir, variant)
    if missing:
        raise ValueError(
            f"{export_dir}: the {variant} variant needs {', '.join(missing)}, missing here "
            f"(export them with --only {','.join(exported_components([variant]))})"
        )
    return export_tokenizer(metadata, nemo)


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


@dataclass
class Transcripts:
    """Transcripts of one waveform by several pipelines, and the reference text when known.

    ``runs`` holds PyTorch runs (``variant`` is ``"split"``, ``"fused"`` or ``"chunked"``)
    and exported-package runs (``"split (exported packages, as typed)"`` ...), in that order.
    """

    runs: list[Transcript]
    reference: str | None = None

    @property
    def agree(self) -> bool:
        """Every run produced the same tokens at the same times (and so the same text)."""
        return len({(tuple(t.tokens), tuple(t.timestamps)) for t in self.runs}) == 1

    @property
    def correct(self) -> bool | None:
        """Every run's words equal the reference's; ``None`` without a reference."""
        if self.reference is None:
            return None
        return all(t.text is not None and t.text.split() == self.reference.split() for t in self.runs)

    def table(self) -> str:
        """One line per run (``variant (PyTorch)`` or ``variant (exported packages, as typed)``)
        with its text (or token count when the model has no tokenizer), then the verdicts."""
        labels = [t.variant if t.variant not in VARIANTS else f"{t.variant} (PyTorch)" for t in self.runs]
        width = max([len(x) for x in labels] + [len("reference")])
        lines = [f"{'reference':<{width}}  {self.reference}"] if self.reference is not None else []
        for label, t in zip(labels, self.runs):
            lines.append(f"{label:<{width}}  {t.text if t.text is not None else f'{len(t.tokens)} tokens'}")
        lines.append(f"same tokens at the same times from every run: {self.agree}")
        if self.reference is not None:
            lines.append(f"equal to the reference: {self.correct}")
        return "\n".join(lines)


def transcribe_all(
    modules: ParakeetModules,
    waveform: np.ndarray | torch.Tensor,
    pytorch: Sequence[str] = VARIANTS,
    exported: Sequence[str] = (),
    *,
    export_dir: str | os.PathLike | None = None,
    reference: str | None = None,
    numerics: str = "fp32",
) -> Transcripts:
    """Transcribe ``waveform`` with the PyTorch ``pytorch`` variants and the exported
    ``exported`` variants (packages in ``export_dir``, run by the MIL executor; see
    :func:`exported_components` for what to export), for :meth:`Transcripts.table`.

    The exported runs use ``modules.tokenizer`` for their text. Raises ``ValueError`` for an
    unknown variant, no run at all, or exported variants without ``export_dir``.
    """
    for v in [*pytorch, *exported]:
        if v not in VARIANTS:
            raise ValueError(f"unknown variant {v!r}: expected one of {', '.join(VARIANTS)}")
    if not pytorch and not exported:
        raise ValueError("nothing to run: give at least one PyTorch or exported variant")
    if exported and export_dir is None:
        raise ValueError("exported variants need export_dir (the folder with the exported packages)")
    runs = [transcribe(modules, waveform, v) for v in pytorch]
    runs += [
        transcribe_exported(export_dir, waveform, v, numerics=numerics, tokenizer=modules.tokenizer) for v in exported
    ]
    return Transcripts(runs=runs, reference=reference)
