"""Parakeet TDT built from NeMo's own modules: the presets, with seeded weights.

Three sources of weights, none downloaded:

* ``tiny``: the Parakeet recipe at toy width (seeded random weights); converts in seconds.
* ``v2``: Parakeet TDT 0.6B v2 shapes (seeded random weights); minutes to convert.
  ``full`` is an alias: the same shapes and seed (so the same weights) under its older name.
* ``v3``: Parakeet TDT 0.6B v3 shapes: the same encoder, decoder and joint widths with a
  vocabulary of 8192 pieces (seeded random weights).
* a local ``.nemo`` checkpoint (see :func:`parakeet_nb.model.checkpoint.load_nemo`).

Where the 0.6B shapes come from (all public):

* Encoder and prediction network: the "XLarge (616M)" row of the recipe table in NeMo's
  ``examples/asr/conf/fastconformer/fast-conformer_transducer_bpe.yaml``
  (https://github.com/NVIDIA/NeMo): ``d_model`` 1024, ``n_heads`` 8, ``n_layers`` 24,
  ``conv_kernel_size`` 9, ``pred_hidden``/``joint_hidden`` 640, ``pred_rnn_layers`` 2;
  the same file's ``subsampling: dw_striding``, ``subsampling_factor`` 8,
  ``subsampling_conv_channels`` 256, ``ff_expansion_factor`` 4, ``self_attention_model: rel_pos``.
* Vocabulary: 1024 SentencePiece pieces for v2 (https://huggingface.co/nvidia/parakeet-tdt-0.6b-v2)
  and 8192 for v3 (https://huggingface.co/nvidia/parakeet-tdt-0.6b-v3), blank id = vocabulary
  size: the blank ids FluidAudio's loader hard-codes for the two checkpoints
  (https://github.com/FluidInference/FluidAudio at commit 8a2bf2c,
  ``Sources/FluidAudio/ASR/Parakeet/SlidingWindow/TDT/AsrModels.swift`` lines 40-46), which
  also fixes the widths 1024 and 640 (``Sources/FluidAudio/Shared/ASRConstants.swift`` lines
  24 and 27) and two LSTM layers (``AsrModels.swift`` lines 49-54).
* TDT durations ``[0, 1, 2, 3, 4]`` (FluidAudio's ``TdtConfig.swift`` line 15, the
  durations it maps the joint's duration bins through).

Every module is a real ``nemo.collections.asr.modules`` object in ``eval()`` mode, so
parity is always measured against NeMo's code, not against a copy of it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch

from parakeet_nb import _quiet
from parakeet_nb.frontend.recipe import MEL_FRAMES, N_MELS, build_preprocessor

_quiet.import_heavy()

from nemo.collections.asr.modules import (  # noqa: E402
    AudioToMelSpectrogramPreprocessor,
    ConformerEncoder,
    RNNTDecoder,
    RNNTJoint,
)

#: TDT durations of Parakeet TDT.
TDT_DURATIONS = (0, 1, 2, 3, 4)


@dataclass(frozen=True)
class Preset:
    """Shapes of one Parakeet TDT configuration.

    ``d_model`` is the encoder width ``D``; ``pred_hidden`` the LSTM width ``H``;
    ``vocab_size`` excludes the blank, whose id is ``vocab_size``.
    """

    name: str
    d_model: int
    n_layers: int
    n_heads: int
    conv_kernel_size: int
    subsampling_conv_channels: int
    pred_hidden: int
    pred_rnn_layers: int
    joint_hidden: int
    vocab_size: int
    durations: tuple[int, ...] = TDT_DURATIONS
    subsampling_factor: int = 8
    ff_expansion_factor: int = 4
    seed: int = 0

    @property
    def blank_id(self) -> int:
        return self.vocab_size

    @property
    def encoder_frames(self) -> int:
        """Encoder frames for a full 15 s window (1501 mel frames, three stride-2 convs)."""
        t = MEL_FRAMES
        for _ in range(self.subsampling_factor.bit_length() - 1):
            t = (t + 2 * 1 - 3) // 2 + 1
        return t

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


#: Parakeet TDT 0.6B v2 (module docstring for the sources of every value).
_V2 = Preset(
    name="v2", d_model=1024, n_layers=24, n_heads=8, conv_kernel_size=9,
    subsampling_conv_channels=256, pred_hidden=640, pred_rnn_layers=2,
    joint_hidden=640, vocab_size=1024,
)

PRESETS: dict[str, Preset] = {
    "tiny": Preset(
        name="tiny", d_model=64, n_layers=2, n_heads=4, conv_kernel_size=9,
        subsampling_conv_channels=64, pred_hidden=64, pred_rnn_layers=1,
        joint_hidden=64, vocab_size=32,
    ),
    "v2": _V2,
    # Parakeet TDT 0.6B v3: v2's shapes with an 8192-piece vocabulary.
    "v3": dataclasses.replace(_V2, name="v3", vocab_size=8192),
    # v2 under the name it had before v3 existed: same shapes, same seed, same weights.
    "full": dataclasses.replace(_V2, name="full"),
}


@dataclass
class ParakeetModules:
    """The four NeMo modules of a Parakeet TDT model, in ``eval()`` mode.

    ``source`` names the preset or the checkpoint path; ``sha256`` is the checkpoint's
    hash (``None`` for presets); ``tokenizer`` is the checkpoint's tokenizer, if any.
    """

    preprocessor: AudioToMelSpectrogramPreprocessor
    encoder: ConformerEncoder
    decoder: RNNTDecoder
    joint: RNNTJoint
    durations: tuple[int, ...]
    source: str
    preset: Preset | None = None
    sha256: str | None = None
    tokenizer: Any = None

    @property
    def d_model(self) -> int:
        return int(self.encoder._feat_out)

    @property
    def pred_hidden(self) -> int:
        return int(self.decoder.pred_hidden)

    @property
    def pred_rnn_layers(self) -> int:
        return int(self.decoder.pred_rnn_layers)

    @property
    def vocab_size(self) -> int:
        """Tokens without the blank."""
        return int(self.decoder.vocab_size)

    @property
    def blank_id(self) -> int:
        return self.vocab_size


def build(preset: str | Preset = "tiny") -> ParakeetModules:
    """Build the NeMo modules of a preset with seeded random weights.

    Raises ``ValueError`` for an unknown preset name.
    """
    if isinstance(preset, str):
        if preset not in PRESETS:
            raise ValueError(f"unknown preset {preset!r}: expected one of {', '.join(PRESETS)}")
        preset = PRESETS[preset]
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(preset.seed)
    try:
        encoder = ConformerEncoder(
            feat_in=N_MELS,
            n_layers=preset.n_layers,
            d_model=preset.d_model,
            subsampling="dw_striding",
            subsampling_factor=preset.subsampling_factor,
            subsampling_conv_channels=preset.subsampling_conv_channels,
            ff_expansion_factor=preset.ff_expansion_factor,
            self_attention_model="rel_pos",
            n_heads=preset.n_heads,
            conv_kernel_size=preset.conv_kernel_size,
            xscaling=True,
            pos_emb_max_len=5000,
        )
        decoder = RNNTDecoder(
            prednet={"pred_hidden": preset.pred_hidden, "pred_rnn_layers": preset.pred_rnn_layers},
            vocab_size=preset.vocab_size,
            blank_as_pad=True,
        )
        joint = RNNTJoint(
            jointnet={
                "encoder_hidden": preset.d_model,
                "pred_hidden": preset.pred_hidden,
                "joint_hidden": preset.joint_hidden,
                "activation": "relu",
                "dropout": 0.0,
            },
            num_classes=preset.vocab_size,
            num_extra_outputs=len(preset.durations),
        )
    finally:
        torch.random.set_rng_state(generator_state)
    return ParakeetModules(
        preprocessor=build_preprocessor(),
        encoder=encoder.eval(),
        decoder=decoder.eval(),
        joint=joint.eval(),
        durations=preset.durations,
        source=f"preset:{preset.name}",
        preset=preset,
    )
