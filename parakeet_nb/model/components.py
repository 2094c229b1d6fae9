"""``torch.nn.Module`` wrappers with the export contract's names and shapes.

Each wrapper takes and returns plain tensors (no NeMo type checks, no lists), so it can be
traced with ``torch.jit.trace`` and converted by coremltools. Shapes use ``D`` for the
encoder width, ``H`` for the prediction-net width, ``L`` for its LSTM layers, ``V`` for the
vocabulary without blank, ``T`` for encoder frames and ``U`` for decoder steps.
"""

from __future__ import annotations

import torch

from parakeet_nb import _quiet
from parakeet_nb.model.presets import ParakeetModules

_quiet.import_heavy()

from nemo.core.classes.common import typecheck  # noqa: E402


class Preprocessor(torch.nn.Module):
    """NeMo's waveform -> mel.

    In: ``audio_signal [B, S]`` float32, ``audio_length [B]`` int32.
    Out: ``mel [B, 128, S // 160 + 1]`` float32, ``mel_length [B]`` int32.
    """

    def __init__(self, preprocessor: torch.nn.Module) -> None:
        super().__init__()
        self.preprocessor = preprocessor

    def forward(self, audio_signal: torch.Tensor, audio_length: torch.Tensor):
        with typecheck.disable_checks():
            mel, mel_length = self.preprocessor(input_signal=audio_signal, length=audio_length)
        return mel, mel_length.to(torch.int32)


class Encoder(torch.nn.Module):
    """FastConformer encoder.

    In: ``mel [B, 128, F]`` float32, ``mel_length [B]`` int32.
    Out: ``encoder [B, D, T]`` float32 (``T = 188`` for ``F = 1501``), ``encoder_length [B]`` int32.
    """

    def __init__(self, encoder: torch.nn.Module) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, mel: torch.Tensor, mel_length: torch.Tensor):
        with typecheck.disable_checks():
            encoded, encoded_length = self.encoder(audio_signal=mel, length=mel_length.to(torch.int64))
        return encoded, encoded_length.to(torch.int32)


class MelEncoder(torch.nn.Module):
    """A waveform-side front end fused with the encoder.

    ``front`` is any module mapping ``(audio, audio_length) -> (mel, mel_length)``:
    :class:`Preprocessor` for ``audio_signal [B, 240000]`` or the chunked preprocessor for
    ``audio_chunks [B, 15, 16000]``. Out: ``encoder [B, D, T]``, ``encoder_length [B]`` int32.
    """

    def __init__(self, front: torch.nn.Module, encoder: torch.nn.Module) -> None:
        super().__init__()
        self.front = front
        self.encoder = Encoder(encoder)

    def forward(self, audio: torch.Tensor, audio_length: torch.Tensor):
        mel, mel_length = self.front(audio, audio_length)
        return self.encoder(mel, mel_length)


class Decoder(torch.nn.Module):
    """One step of the LSTM prediction network, state in and out.

    In: ``targets [1, 1]`` int32 (the previous label; the blank id gives the zero
    embedding), ``target_length [1]`` int32 (carried for NeMo's signature; one step is
    always length 1), ``h_in, c_in [L, 1, H]`` float32.
    Out: ``decoder [1, H, 1]``, ``h_out, c_out [L, 1, H]``.
    """

    def __init__(self, decoder: torch.nn.Module) -> None:
        super().__init__()
        self.decoder = decoder

    def forward(self, targets, target_length, h_in, c_in):
        del target_length  # a single step: the output always covers exactly one label
        g, (h_out, c_out) = self.decoder.predict(targets.to(torch.int64), state=[h_in, c_in], add_sos=False)
        return g.transpose(1, 2), h_out, c_out


class Joint(torch.nn.Module):
    """TDT joint network over every (frame, step) pair.

    In: ``encoder [B, D, T]``, ``decoder [B, H, U]``.
    Out: ``logits [B, T, U, V + 1 + n_durations]`` (tokens, blank, then duration logits).
    """

    def __init__(self, joint: torch.nn.Module) -> None:
        super().__init__()
        self.joint = joint

    def forward(self, encoder: torch.Tensor, decoder: torch.Tensor) -> torch.Tensor:
        return self.joint.joint(encoder.transpose(1, 2), decoder.transpose(1, 2))


class JointDecision(torch.nn.Module):
    """The joint at one (frame, step) plus the greedy TDT decision.

    In: ``encoder_step [1, D, 1]``, ``decoder_step [1, H, 1]``.
    Out: ``token_id [1, 1, 1]`` int32 (argmax over tokens and blank), ``token_prob
    [1, 1, 1]`` float32 (its softmax probability), ``duration [1, 1, 1]`` int32 (the
    duration value, not its index).
    """

    def __init__(self, joint: torch.nn.Module, durations: tuple[int, ...]) -> None:
        super().__init__()
        self.joint = joint
        self.n_durations = len(durations)
        self.register_buffer("durations", torch.tensor(durations, dtype=torch.int32))

    def forward(self, encoder_step: torch.Tensor, decoder_step: torch.Tensor):
        logits = self.joint.joint(encoder_step.transpose(1, 2), decoder_step.transpose(1, 2))
        return self.decide(logits)

    def decide(self, logits: torch.Tensor):
        """``logits [1, 1, 1, V + 1 + n_durations]`` -> ``(token_id, token_prob, duration)``."""
        token_logits = logits[..., : -self.n_durations]
        duration_logits = logits[..., -self.n_durations :]
        probs = torch.softmax(token_logits, dim=-1)
        token_prob, token_id = probs.max(dim=-1)
        duration_index = duration_logits.argmax(dim=-1)
        duration = self.durations[duration_index]
        return token_id.to(torch.int32), token_prob, duration


#: Candidates in :class:`JointDecisionTopK`'s outputs: FluidAudio's published v3 joint has
#: K = 64 (https://github.com/FluidInference/FluidAudio at commit 8a2bf2c,
#: ``Documentation/ASR/TokenLanguageFilter.md`` line 115); its loader reads any K.
TOP_K = 64


class JointDecisionTopK(JointDecision):
    """:class:`JointDecision` plus the ``K`` best token candidates (FluidAudio's ``JointDecisionv3``).

    In: ``encoder_step [1, D, 1]``, ``decoder_step [1, H, 1]``.
    Out: ``token_id``, ``token_prob``, ``duration`` as :class:`JointDecision`, then
    ``top_k_ids [1, 1, 1, K]`` int32 and ``top_k_logits [1, 1, 1, K]`` float32: the ``K``
    largest raw logits over tokens and blank, largest first, ``K = min(top_k, V + 1)``.
    """

    def __init__(self, joint: torch.nn.Module, durations: tuple[int, ...], top_k: int = TOP_K) -> None:
        super().__init__(joint, durations)
        # NeMo's num_classes_with_blank also counts the duration outputs (rnnt.py, RNNTJoint).
        self.k = min(int(top_k), int(joint.num_classes_with_blank) - int(joint.num_extra_outputs))

    def forward(self, encoder_step: torch.Tensor, decoder_step: torch.Tensor):
        logits = self.joint.joint(encoder_step.transpose(1, 2), decoder_step.transpose(1, 2))
        token_id, token_prob, duration = self.decide(logits)
        top_logits, top_ids = torch.topk(logits[..., : -self.n_durations], self.k, dim=-1)
        return token_id, token_prob, duration, top_ids.to(torch.int32), top_logits


def wrappers(modules: ParakeetModules, precision: str = "fp32") -> dict[str, torch.nn.Module]:
    """The traceable wrappers of the components, keyed by component name.

    ``precision="fp16"`` builds the chunked components from
    ``ChunkedPreprocessor(fp16_safe=True)``, the design meant for float16 programs (convert
    them with ``convert.to_coreml(..., "fp16")``, which keeps its float32 island); every
    other wrapper is the same for both precisions.
    """
    from parakeet_nb.frontend.chunked import ChunkedPreprocessor

    if precision not in ("fp32", "fp16"):
        raise ValueError(f"unknown precision {precision!r}: expected 'fp32' or 'fp16'")
    fp16_safe = precision == "fp16"
    return {
        "preprocessor": Preprocessor(modules.preprocessor).eval(),
        "encoder": Encoder(modules.encoder).eval(),
        "mel_encoder": MelEncoder(Preprocessor(modules.preprocessor), modules.encoder).eval(),
        "preprocessor_chunked": ChunkedPreprocessor(fp16_safe=fp16_safe).eval(),
        "mel_encoder_chunked": MelEncoder(ChunkedPreprocessor(fp16_safe=fp16_safe), modules.encoder).eval(),
        "decoder": Decoder(modules.decoder).eval(),
        "joint": Joint(modules.joint).eval(),
        "joint_decision": JointDecision(modules.joint, modules.durations).eval(),
        "joint_decision_topk": JointDecisionTopK(modules.joint, modules.durations).eval(),
    }
