"""``lstm``: MIL's LSTM with gates in ``[input, forget, output, cell]`` order ("ifoz").

Per step ``t`` (``x: [S, B, I]``, state ``[B, H]``)::

    g = x_t @ W_ih.T + h @ W_hh.T + bias           # [B, 4H], split i, f, o, z
    i, f, o = recurrent_activation(i, f, o)         # default sigmoid
    z = cell_activation(z)                          # default tanh
    c = f * c + i * z
    h = o * activation(c)                           # default tanh

PyTorch orders its gates ``i, f, g(z), o``; the converter permutes them into ``ifoz``.
``direction`` ``forward`` and ``reverse`` run one pass; ``bidirectional`` runs both and
concatenates ``[forward, backward]`` on the last axis, with ``initial_h[:, :H]`` for the
forward pass. ``output_sequence`` gives every step's ``h`` or only the last one. The steps
are in the order they were computed for ``reverse`` (``output[0]`` is the step of the last
input position), as coremltools' op tests expect (``iOS14/test_recurrent.py``,
``TestLSTM::test_builder_to_backend_smoke_unilstm``: PyTorch's LSTM over the flipped input,
not flipped back); the backward half of ``bidirectional`` is aligned with the input
positions (``test_builder_to_backend_smoke_bidirlstm``). Refused: non-zero ``peephole`` weights and ``clip`` (the
docs do not give their equations), and the parameterized activations ``scaled_tanh`` and
``hard_sigmoid`` (their alpha/beta are not given).

Every step is rounded to float16 when the op's type is fp16 or the numerics mode is fp16,
as a float16 recurrent kernel carries its state in float16.
"""

from __future__ import annotations

import numpy as np

from parakeet_nb.mlprogram.milexec.core import OpContext, as_float, register

F32 = np.float32

_ACTIVATIONS = {
    "sigmoid": lambda v: F32(1) / (F32(1) + np.exp(-v)),
    "tanh": np.tanh,
    "relu": lambda v: np.maximum(v, F32(0)),
    "linear": lambda v: v,
}


def _activation(ctx: OpContext, param: str, default: str):
    name = str(ctx.attr(param, default)).lower()
    if name not in _ACTIVATIONS:
        raise ctx.unsupported(f"{param} {name!r} (supported: {', '.join(_ACTIVATIONS)})")
    return _ACTIVATIONS[name]


def _run(x, h, c, w_ih, w_hh, bias, acts, reverse: bool, rnd, acc):
    rec, cell, act = acts
    H = h.shape[-1]
    steps = range(x.shape[0] - 1, -1, -1) if reverse else range(x.shape[0])
    xw = rnd(np.matmul(acc(x), acc(w_ih).T) + bias)  # [S, B, 4H], every step's input projection
    w_hh_t = acc(w_hh).T
    outs = np.empty(x.shape[:2] + (H,), dtype=F32)
    for t in steps:
        g = rnd(xw[t] + rnd(acc(h) @ w_hh_t))
        i, f, o = (rnd(rec(g[:, k * H : (k + 1) * H])) for k in range(3))
        z = rnd(cell(g[:, 3 * H :]))
        c = rnd(rnd(f * c) + rnd(i * z))
        h = rnd(o * rnd(act(c)))
        outs[t] = h
    return outs, h, c


@register(
    "lstm",
    params=(
        "x", "initial_h", "initial_c", "weight_ih", "weight_hh", "bias", "peephole",
        "weight_ih_back", "weight_hh_back", "bias_back", "peephole_back", "direction",
        "output_sequence", "recurrent_activation", "cell_activation", "activation", "clip",
    ),
    family="recurrent",
)
def op_lstm(ctx: OpContext):
    """See the module docstring. Returns ``(output, h_final, c_final)``."""
    x = as_float(ctx.x("x"))
    h0, c0 = as_float(ctx.x("initial_h")), as_float(ctx.x("initial_c"))
    direction = str(ctx.attr("direction", "forward"))
    if direction not in ("forward", "reverse", "bidirectional"):
        raise ctx.unsupported(f"direction {direction!r}")
    if ctx.has("clip"):
        raise ctx.unsupported("clip is not implemented (its placement is not defined by the docs)")
    for p in ("peephole", "peephole_back"):
        if ctx.has(p) and np.any(as_float(ctx.x(p)) != 0):
            raise ctx.unsupported(f"non-zero {p} weights are not implemented")
    acts = (
        _activation(ctx, "recurrent_activation", "sigmoid"),
        _activation(ctx, "cell_activation", "tanh"),
        _activation(ctx, "activation", "tanh"),
    )
    rnd = ctx.rounder(0)

    def weights(suffix: str):
        w_ih = as_float(ctx.x("weight_ih" + suffix))
        w_hh = as_float(ctx.x("weight_hh" + suffix))
        b = ctx.opt("bias" + suffix)
        b = np.zeros(w_ih.shape[0], F32) if b is None else as_float(b)
        return w_ih, w_hh, b

    H = ctx.x("weight_hh").shape[1]
    if direction == "bidirectional":
        if not (ctx.has("weight_ih_back") and ctx.has("weight_hh_back")):
            raise ctx.unsupported("bidirectional lstm without weight_ih_back/weight_hh_back")
        of, hf, cf = _run(x, h0[:, :H], c0[:, :H], *weights(""), acts, False, rnd, ctx.acc)
        ob, hb, cb = _run(x, h0[:, H:], c0[:, H:], *weights("_back"), acts, True, rnd, ctx.acc)
        seq = np.concatenate([of, ob], axis=-1)
        h, c = np.concatenate([hf, hb], axis=-1), np.concatenate([cf, cb], axis=-1)
    else:
        seq, h, c = _run(x, h0, c0, *weights(""), acts, direction == "reverse", rnd, ctx.acc)
        if direction == "reverse":
            seq = seq[::-1]  # in the order of computation
    out = seq if ctx.attr("output_sequence", False) else h[None]
    return out, h, c
