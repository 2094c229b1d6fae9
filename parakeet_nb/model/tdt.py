"""TDT greedy decoding, independent of the backend that runs the decoder and the joint.

The same loop drives the PyTorch pipeline, the Core ML packages and the MIL executor:
a backend only supplies two callables,

* ``step(label, state) -> (decoder_out [H], new_state)``: one step of the prediction
  network (``state=None`` means the zero LSTM state), and
* ``decide(encoder_frame [D], decoder_out [H]) -> (token_id, token_prob, duration)``:
  the joint at one (frame, step) and its greedy decision, with ``duration`` the duration
  *value* (e.g. ``0..4``), not its index,

and :func:`greedy_decode` walks the encoder frames. Shapes use ``D`` for the encoder
width, ``H`` for the prediction-net width, ``L`` for its LSTM layers and ``T`` for
encoder frames.

Two NeMo 3.0 decoders exist and they disagree in a corner case, so both are reproduced
exactly (``variant``):

``"batched"`` (default): ``GreedyBatchedTDTInfer`` (label looping), which is what
    NeMo's default ``greedy_batch`` strategy and ``model.transcribe`` use for Parakeet.
    Only non-blank emissions are counted, and ``t`` is forced forward by one only when
    ``max_symbols_per_step`` tokens were emitted at one frame *and* the last of them had
    duration 0 (so ``t`` did not move).
``"sequential"``: ``GreedyTDTInfer`` (NeMo's ``greedy`` strategy). It counts every joint
    call of one pass over a frame, blanks included, and forces ``t += 1`` whenever the
    count reaches ``max_symbols_per_step``, even if that last call already advanced
    ``t`` by its duration. So e.g. 9 zero-duration tokens followed by a blank of
    duration 2 advance ``t`` by 3 (batched: by 2), and a 10th token with duration 2
    advances ``t`` by 3 (batched: by 2). A blank of duration 0 makes NeMo re-run the
    identical joint call until the count is exhausted (an infinite loop when
    ``max_symbols_per_step is None``); here it is short-cut to the same result,
    ``t += 1``, without the repeated calls.

Both variants agree with the rules of ``parakeet-tdt.md`` whenever no frame reaches
``max_symbols_per_step``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Literal, Sequence

import numpy as np
import torch

if TYPE_CHECKING:  # pragma: no cover - typing only
    from parakeet_nb.model.presets import ParakeetModules

#: Seconds per encoder frame: 8 mel frames of 10 ms.
FRAME_SECONDS = 0.08

#: ``step(label, state) -> (decoder_out [H], new_state)``; ``state=None`` is the zero state.
DecoderStep = Callable[[int, Any], tuple[Any, Any]]
#: ``decide(encoder_frame [D], decoder_out [H]) -> (token_id, token_prob, duration value)``.
JointDecide = Callable[[Any, Any], tuple[int, float, int]]

Variant = Literal["batched", "sequential"]


@dataclass
class Hypothesis:
    """The result of greedy decoding of one utterance.

    All lists have one entry per emitted (non-blank) token:
    ``tokens`` the token ids, ``frames`` the encoder frame index at which each token was
    emitted, ``durations`` the duration value predicted with it (may be 0) and ``probs``
    its softmax probability over tokens and blank. ``state`` is the decoder state after
    the last emitted token (``None`` if nothing was emitted).
    """

    tokens: list[int] = field(default_factory=list)
    frames: list[int] = field(default_factory=list)
    durations: list[int] = field(default_factory=list)
    probs: list[float] = field(default_factory=list)
    state: Any = None

    def __len__(self) -> int:
        return len(self.tokens)

    def timestamps(self, frame_seconds: float = FRAME_SECONDS) -> list[float]:
        """Start time of each token in seconds: ``frame * frame_seconds``.

        ``frame_seconds`` is 0.08 for Parakeet (an encoder frame is 8 mel frames of 10 ms).
        """
        return [frame * frame_seconds for frame in self.frames]

    def spans(self, frame_seconds: float = FRAME_SECONDS) -> list[tuple[float, float]]:
        """``(start, end)`` of each token in seconds, the end being start plus its duration.

        A zero-duration token gets an empty span (``start == end``).
        """
        return [(f * frame_seconds, (f + d) * frame_seconds) for f, d in zip(self.frames, self.durations)]


def _frame(encoder_out: Any, t: int) -> Any:
    """Column ``t`` of ``encoder_out [D, T]`` (a ``[D]`` view, same array type)."""
    return encoder_out[:, t]


def greedy_decode(
    encoder_out: Any,
    encoder_length: int,
    step: DecoderStep,
    decide: JointDecide,
    *,
    blank_id: int,
    max_symbols_per_step: int | None = 10,
    variant: Variant = "batched",
) -> Hypothesis:
    """Greedy TDT decoding of one utterance.

    ``encoder_out [D, T]`` (numpy array or torch tensor; columns are passed to ``decide``
    as they are), ``encoder_length`` the number of valid frames (``<= T``).

    Rules (NeMo ``GreedyBatchedTDTInfer`` for ``variant="batched"``): start with the blank
    as the previous label and the zero decoder state; at frame ``t`` run ``decide`` on
    ``encoder_out[:, t]`` and the cached decoder output; a non-blank token is emitted and
    advances the decoder, a blank keeps the cached output; then ``t += duration``, with a
    blank of duration 0 counting as 1; after ``max_symbols_per_step`` emissions at one frame
    ``t`` is forced forward by 1. ``max_symbols_per_step=None`` removes the limit (a model
    that keeps emitting zero-duration tokens then never stops). See the module docstring for
    ``variant="sequential"`` (NeMo ``GreedyTDTInfer``).

    Raises ``ValueError`` for a non-positive ``max_symbols_per_step``, an unknown variant or
    an ``encoder_length`` beyond ``T``.
    """
    if max_symbols_per_step is not None and max_symbols_per_step <= 0:
        raise ValueError(f"max_symbols_per_step must be positive or None, got {max_symbols_per_step}")
    if variant not in ("batched", "sequential"):
        raise ValueError(f"unknown variant {variant!r}: expected 'batched' or 'sequential'")
    length = int(encoder_length)
    if length > encoder_out.shape[1]:
        raise ValueError(f"encoder_length {length} exceeds the {encoder_out.shape[1]} frames of encoder_out")

    hyp = Hypothesis()
    decoder_out, state = step(blank_id, None)

    def emit(token: int, prob: float, duration: int, t: int) -> None:
        nonlocal decoder_out, state
        hyp.tokens.append(int(token))
        hyp.frames.append(t)
        hyp.durations.append(int(duration))
        hyp.probs.append(float(prob))
        decoder_out, state = step(int(token), state)
        hyp.state = state

    t = 0
    if variant == "batched":
        last_frame, emitted_at_last_frame = -1, 0
        while t < length:
            token, prob, duration = decide(_frame(encoder_out, t), decoder_out)
            token, duration = int(token), int(duration)
            if token == blank_id:
                t += max(duration, 1)
                continue
            emitted_at_last_frame = emitted_at_last_frame + 1 if last_frame == t else 1
            last_frame = t
            emit(token, prob, duration, t)
            t += duration
            if (
                max_symbols_per_step is not None
                and duration == 0
                and emitted_at_last_frame >= max_symbols_per_step
            ):
                t += 1
        return hyp

    # variant == "sequential": NeMo GreedyTDTInfer._greedy_decode
    while t < length:
        calls = 0
        while max_symbols_per_step is None or calls < max_symbols_per_step:
            token, prob, duration = decide(_frame(encoder_out, t), decoder_out)
            token, duration = int(token), int(duration)
            if token == blank_id and duration == 0:
                # NeMo repeats this identical call until `calls` reaches the limit, then t += 1.
                calls = max_symbols_per_step if max_symbols_per_step is not None else 0
                if max_symbols_per_step is None:
                    t += 1
                break
            if token != blank_id:
                emit(token, prob, duration, t)
            calls += 1
            t += duration
            if duration != 0:
                break
        if max_symbols_per_step is not None and calls == max_symbols_per_step:
            t += 1
    return hyp


def greedy_decode_batch(
    encoder_out: Any,
    encoder_lengths: Sequence[int] | Any,
    step: DecoderStep,
    decide: JointDecide,
    *,
    blank_id: int,
    max_symbols_per_step: int | None = 10,
    variant: Variant = "batched",
) -> list[Hypothesis]:
    """:func:`greedy_decode` for each item of ``encoder_out [B, D, T]`` with ``encoder_lengths [B]``."""
    lengths = [int(x) for x in (encoder_lengths.tolist() if hasattr(encoder_lengths, "tolist") else encoder_lengths)]
    return [
        greedy_decode(
            encoder_out[b], lengths[b], step, decide,
            blank_id=blank_id, max_symbols_per_step=max_symbols_per_step, variant=variant,
        )
        for b in range(len(lengths))
    ]


def _as_float_tensor(x: Any) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x.to(torch.float32)
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))


def torch_backend(modules: "ParakeetModules") -> tuple[DecoderStep, JointDecide]:
    """``(step, decide)`` running the export wrappers :class:`parakeet_nb.model.components.Decoder`
    and :class:`parakeet_nb.model.components.JointDecision` in PyTorch.

    ``step(label, state)``: ``state`` is ``None`` (zero state) or ``(h, c)`` with
    ``h, c [L, 1, H]``; returns ``decoder_out [H]`` float32 and the new ``(h, c)``.
    ``decide(frame [D], decoder_out [H])`` accepts tensors or numpy arrays and returns
    ``(token_id, token_prob, duration value)`` as Python scalars.
    """
    from parakeet_nb.model.components import Decoder, JointDecision

    decoder = Decoder(modules.decoder).eval()
    joint = JointDecision(modules.joint, modules.durations).eval()
    layers, hidden = modules.pred_rnn_layers, modules.pred_hidden
    target_length = torch.ones(1, dtype=torch.int32)

    def step(label: int, state: tuple[torch.Tensor, torch.Tensor] | None):
        if state is None:
            state = (torch.zeros(layers, 1, hidden), torch.zeros(layers, 1, hidden))
        targets = torch.tensor([[int(label)]], dtype=torch.int32)
        with torch.inference_mode():
            out, h, c = decoder(targets, target_length, state[0], state[1])
        return out[0, :, 0], (h, c)

    def decide(frame: Any, decoder_out: Any) -> tuple[int, float, int]:
        enc = _as_float_tensor(frame).reshape(1, -1, 1)
        dec = _as_float_tensor(decoder_out).reshape(1, -1, 1)
        with torch.inference_mode():
            token_id, token_prob, duration = joint(enc, dec)
        return int(token_id.item()), float(token_prob.item()), int(duration.item())

    return step, decide


def decode_torch(
    modules: "ParakeetModules",
    encoder_out: torch.Tensor,
    encoder_lengths: torch.Tensor | Sequence[int],
    *,
    max_symbols_per_step: int | None = 10,
    variant: Variant = "batched",
) -> list[Hypothesis]:
    """Greedy TDT decoding of ``encoder_out [B, D, T]`` with the PyTorch backend."""
    step, decide = torch_backend(modules)
    return greedy_decode_batch(
        encoder_out, encoder_lengths, step, decide,
        blank_id=modules.blank_id, max_symbols_per_step=max_symbols_per_step, variant=variant,
    )
