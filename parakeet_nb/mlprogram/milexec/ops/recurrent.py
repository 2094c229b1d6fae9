"""Recurrent ops: ``lstm``, ``gru`` and ``rnn`` (definitions: coremltools
``converters/mil/mil/ops/defs/iOS15/recurrent.py`` and its iOS17/iOS18 revisions).

``lstm``: MIL's LSTM with gates in ``[input, forget, output, cell]`` order ("ifoz").

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
positions (``test_builder_to_backend_smoke_bidirlstm``).

The docs give no equations for ``peephole`` and ``clip``, nor alpha/beta for the
activations ``scaled_tanh`` and ``hard_sigmoid``; they follow the op tests' reference
(``iOS14/test_recurrent.py``, ``TestLSTM::test_numpy_numerical``): ``i`` and ``f`` add
``c_prev * p_i`` / ``c_prev * p_f`` (``peephole = [p_i | p_f | p_o]``), the new ``c`` is
clipped to ``[-clip, clip]``, then ``o`` adds ``c * p_o``; ``scaled_tanh`` is ``tanh``
(alpha 1, beta 1) and ``hard_sigmoid`` is ``clip(0.2 v + 0.5, 0, 1)``, the defaults of the
standalone ``scaled_tanh`` and ``sigmoid_hard`` ops.

``gru``: weights in ``[reset, output (new), update]`` order ("roz"), per step::

    r = recurrent_activation(W_ir x + W_hr h + b_r)      # default sigmoid
    z = recurrent_activation(W_iz x + W_hz h + b_z)
    o = activation(W_io x + W_ho (r * h) + b_o)          # default tanh
    h = (1 - z) * o + z * h

The reset gate multiplies ``h`` before its matrix product, as coremltools' op tests compute
the expected output (``iOS14/test_recurrent.py``, ``TestGRU``; the iOS15 docstring's formula
writes ``r * (W_ho h)``, which is iOS18's ``reset_after=True``). iOS18 adds
``reset_after=True`` (PyTorch's GRU: ``o = activation(W_io x + b_io + r * (W_ho h + b_ho))``,
with ``bias`` the hidden biases ``b_h*`` and ``input_bias`` the input biases ``b_i*``, as in
``iOS18/test_recurrent.py``, ``test_pytorch_parity``) and ``input_bias`` (added to the input
projection). ``rnn``: ``h = activation(W_ih x + W_hh h + bias)``. Both run ``forward`` or
``reverse`` (steps in the order of computation, as ``lstm``), and return
``(output, h_final)``.

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
    # the defaults of the standalone ops (alpha 1, beta 1; alpha 0.2, beta 0.5), as the op
    # tests compute them (iOS14/test_recurrent.py, TestLSTM::test_numpy_numerical)
    "scaled_tanh": np.tanh,
    "hard_sigmoid": lambda v: np.clip(F32(0.2) * v + F32(0.5), F32(0), F32(1)),
}


def _activation(ctx: OpContext, param: str, default: str):
    name = str(ctx.attr(param, default)).lower()
    if name not in _ACTIVATIONS:
        raise ctx.unsupported(f"{param} {name!r} (supported: {', '.join(_ACTIVATIONS)})")
    return _ACTIVATIONS[name]


def _run(x, h, c, w_ih, w_hh, bias, peephole, clip, acts, reverse: bool, rnd, acc):
    rec, cell, act = acts
    H = h.shape[-1]
    steps = range(x.shape[0] - 1, -1, -1) if reverse else range(x.shape[0])
    xw = rnd(np.matmul(acc(x), acc(w_ih).T) + bias)  # [S, B, 4H], every step's input projection
    w_hh_t = acc(w_hh).T
    p_i, p_f, p_o = np.split(peephole, 3)
    outs = np.empty(x.shape[:2] + (H,), dtype=F32)
    for t in steps:
        g = rnd(xw[t] + rnd(acc(h) @ w_hh_t))
        i = rnd(rec(rnd(g[:, :H] + rnd(c * p_i))))
        f = rnd(rec(rnd(g[:, H : 2 * H] + rnd(c * p_f))))
        z = rnd(cell(g[:, 3 * H :]))
        c = rnd(rnd(f * c) + rnd(i * z))
        if clip is not None:
            c = np.clip(c, -clip, clip)
        o = rnd(rec(rnd(g[:, 2 * H : 3 * H] + rnd(c * p_o))))
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
    clip = F32(ctx.attr("clip")) if ctx.has("clip") else None
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
        p = ctx.opt("peephole" + suffix)
        p = np.zeros(3 * w_hh.shape[1], F32) if p is None else as_float(p)
        return w_ih, w_hh, b, p, clip

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


def _direction(ctx: OpContext) -> bool:
    """``True`` for ``reverse``; ``gru``/``rnn`` run one direction."""
    direction = str(ctx.attr("direction", "forward"))
    if direction not in ("forward", "reverse"):
        raise ctx.unsupported(f"direction {direction!r}")
    return direction == "reverse"


def _sequence_out(ctx: OpContext, outs: np.ndarray, h: np.ndarray, reverse: bool):
    seq = outs[::-1] if reverse else outs  # in the order of computation
    return (seq if ctx.attr("output_sequence", False) else h[None]), h


@register(
    "gru",
    params=(
        "x", "initial_h", "weight_ih", "weight_hh", "bias", "input_bias", "reset_after",
        "direction", "output_sequence", "recurrent_activation", "activation",
    ),
    family="recurrent",
)
def op_gru(ctx: OpContext):
    """See the module docstring. Returns ``(output, h_final)``."""
    x, h = as_float(ctx.x("x")), as_float(ctx.x("initial_h"))
    reverse = _direction(ctx)
    rec = _activation(ctx, "recurrent_activation", "sigmoid")
    act = _activation(ctx, "activation", "tanh")
    reset_after = bool(ctx.attr("reset_after", False))
    rnd, acc = ctx.rounder(0), ctx.acc
    w_ih, w_hh = as_float(ctx.x("weight_ih")), as_float(ctx.x("weight_hh"))
    H = w_hh.shape[1]
    zeros = np.zeros(3 * H, F32)
    bias = zeros if ctx.opt("bias") is None else as_float(ctx.x("bias"))
    input_bias = zeros if ctx.opt("input_bias") is None else as_float(ctx.x("input_bias"))
    xw = rnd(np.matmul(acc(x), acc(w_ih).T) + input_bias + (0 if reset_after else bias))
    w_hh_t = acc(w_hh).T
    outs = np.empty(x.shape[:2] + (H,), dtype=F32)
    for t in range(x.shape[0] - 1, -1, -1) if reverse else range(x.shape[0]):
        xr, xo, xz = xw[t][:, :H], xw[t][:, H : 2 * H], xw[t][:, 2 * H :]
        if reset_after:
            hw = rnd(acc(h) @ w_hh_t + bias)
            r = rnd(rec(rnd(xr + hw[:, :H])))
            z = rnd(rec(rnd(xz + hw[:, 2 * H :])))
            o = rnd(act(rnd(xo + rnd(r * hw[:, H : 2 * H]))))
        else:
            r = rnd(rec(rnd(xr + rnd(acc(h) @ w_hh_t[:, :H]))))
            z = rnd(rec(rnd(xz + rnd(acc(h) @ w_hh_t[:, 2 * H :]))))
            o = rnd(act(rnd(xo + rnd(acc(rnd(r * h)) @ w_hh_t[:, H : 2 * H]))))
        h = rnd(rnd((F32(1) - z) * o) + rnd(z * h))
        outs[t] = h
    return _sequence_out(ctx, outs, h, reverse)


@register(
    "rnn",
    params=("x", "initial_h", "weight_ih", "weight_hh", "bias", "direction", "output_sequence", "activation"),
    family="recurrent",
)
def op_rnn(ctx: OpContext):
    """``h = activation(W_ih x + W_hh h + bias)``; returns ``(output, h_final)``."""
    x, h = as_float(ctx.x("x")), as_float(ctx.x("initial_h"))
    reverse = _direction(ctx)
    act = _activation(ctx, "activation", "tanh")
    rnd, acc = ctx.rounder(0), ctx.acc
    w_ih, w_hh = as_float(ctx.x("weight_ih")), as_float(ctx.x("weight_hh"))
    bias = ctx.opt("bias")
    xw = rnd(np.matmul(acc(x), acc(w_ih).T) + (0 if bias is None else as_float(bias)))
    w_hh_t = acc(w_hh).T
    outs = np.empty(x.shape[:2] + (w_hh.shape[0],), dtype=F32)
    for t in range(x.shape[0] - 1, -1, -1) if reverse else range(x.shape[0]):
        h = rnd(act(rnd(xw[t] + rnd(acc(h) @ w_hh_t))))
        outs[t] = h
    return _sequence_out(ctx, outs, h, reverse)
