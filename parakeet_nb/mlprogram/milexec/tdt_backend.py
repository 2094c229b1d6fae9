"""The decoder and joint-decision packages as a :mod:`parakeet_nb.model.tdt` backend.

:func:`tdt_backend` wraps two programs (the ``decoder`` and ``joint_decision`` components
of the export contract) in :class:`~parakeet_nb.mlprogram.milexec.executor.MilExecutor` and returns
the ``(step, decide)`` pair that :func:`parakeet_nb.model.tdt.greedy_decode` drives, so a whole
transcription can run through converted packages on Linux.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from parakeet_nb.mlprogram.milexec.core import Accumulate, Numerics
from parakeet_nb.mlprogram.milexec.executor import MilExecutor


def tdt_backend(
    decoder: Any,
    joint_decision: Any,
    *,
    numerics: Numerics = "fp32",
    flush_subnormals: bool = False,
    accumulate: Accumulate = "fp32",
):
    """``(step, decide)`` running ``decoder`` and ``joint_decision`` in the executor.

    ``decoder`` and ``joint_decision`` are anything :class:`MilExecutor` accepts (paths,
    loaded programs). ``step(label, state)``: ``state`` is ``None`` (zero state) or
    ``(h, c)`` with ``h, c [L, 1, H]`` float32; returns ``(decoder_out [H] float32, (h, c))``.
    ``decide(frame [D], decoder_out [H])`` returns ``(token_id, token_prob, duration)`` as
    Python scalars. fp16 outputs (FP16-converted packages) are widened to float32.
    """
    options = dict(numerics=numerics, flush_subnormals=flush_subnormals, accumulate=accumulate)
    dec = MilExecutor(decoder, **options)
    joint = MilExecutor(joint_decision, **options)
    state_shape = tuple(int(d) for d in dec.input_specs()["h_in"][0])
    target_length = np.ones(1, dtype=np.int32)

    def step(label: int, state: tuple[np.ndarray, np.ndarray] | None):
        if state is None:
            state = (np.zeros(state_shape, np.float32), np.zeros(state_shape, np.float32))
        out = dec.run(
            {
                "targets": np.array([[int(label)]], dtype=np.int32),
                "target_length": target_length,
                "h_in": np.asarray(state[0], dtype=np.float32),
                "c_in": np.asarray(state[1], dtype=np.float32),
            }
        )
        h = out["h_out"].astype(np.float32)
        c = out["c_out"].astype(np.float32)
        return out["decoder"].astype(np.float32)[0, :, 0], (h, c)

    def decide(frame: Any, decoder_out: Any) -> tuple[int, float, int]:
        out = joint.run(
            {
                "encoder_step": np.asarray(frame, dtype=np.float32).reshape(1, -1, 1),
                "decoder_step": np.asarray(decoder_out, dtype=np.float32).reshape(1, -1, 1),
            }
        )
        return int(out["token_id"].item()), float(out["token_prob"].item()), int(out["duration"].item())

    return step, decide
