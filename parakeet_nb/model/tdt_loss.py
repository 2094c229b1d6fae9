"""A pure-PyTorch TDT (token-and-duration transducer) loss that runs on the CPU.

NeMo 3.0 has two TDT losses and neither runs on a CPU: ``tdt`` (``TDTLossNumba``) raises
"TDT is not yet implemented for non CUDA computation", and ``tdt_pytorch``
(``TDTLossPytorch``) calls ``.cuda()`` and loops over batch, frames, steps and durations in
Python. This module computes the same quantity with the forward algorithm in log space,
looping over frames only and vectorised over batch, label positions and durations; the
gradient comes from autograd.

Shapes: ``B`` batch, ``T`` encoder frames, ``U`` labels (the lattice has ``U + 1`` label
positions), ``V`` vocabulary *including* the blank, ``K`` number of durations.

The lattice (NeMo's, https://arxiv.org/abs/2304.06795 eq. 7): ``alpha(0, 0) = 0``; from
``(t, u)``

* a blank with duration ``d >= 1`` goes to ``(t + d, u)`` with weight
  ``log P(blank | t, u) - sigma + log P(d | t, u)``;
* the next label ``y[u]`` with any duration ``d`` (including 0) goes to ``(t + d, u + 1)``
  with weight ``log P(y[u] | t, u) - sigma + log P(d | t, u)``;

states exist for ``t < T`` only, and the utterance ends with a blank landing exactly on
``t == T`` at ``u == U``:
``log P(y | x) = logsumexp_{d >= 1} alpha(T - d, U) + log P(blank | T - d, U) - sigma + log P(d | T - d, U)``.
So, as in NeMo, a token may not jump past the last frame and the last symbol is a blank.
Token probabilities are a log-softmax over the ``V`` label logits (blank included),
duration probabilities a separate log-softmax over the ``K`` duration logits. ``sigma``
(logit under-normalisation) is subtracted from every label log-probability, as NeMo does.

``omega`` is NeMo's "sampled RNN-T" regulariser: on each call, with probability ``omega``
the whole batch gets the standard RNN-T loss of the label logits instead (no durations, no
``sigma``), exactly like NeMo's CUDA kernel, which draws ``random.uniform(0, 1) < omega``
once per call. Here the draw uses ``torch.rand`` (seedable, optional ``generator``).
"""

from __future__ import annotations

from typing import Literal, Sequence

import torch

#: Log-weight of an unreachable lattice state (finite, so that gradients stay finite).
NEG = -1.0e30
#: Smallest log-probability used for one transition (guards the prefix-sum scan below).
MIN_STEP_LOGP = -1.0e4

Reduction = Literal["none", "sum", "mean", "mean_batch", "mean_volume"]
REDUCTIONS = ("none", "sum", "mean", "mean_batch", "mean_volume")


def _lattice_log_likelihood(
    blank_w: torch.Tensor,
    token_w: torch.Tensor,
    durations: Sequence[int],
    act_lens: torch.Tensor,
    label_lens: torch.Tensor,
) -> torch.Tensor:
    """Forward algorithm over the ``T x (U + 1)`` lattice with duration jumps.

    ``blank_w [B, T, U + 1, K]``: log-weight of a blank with duration ``durations[k]`` from
    ``(t, u)``; entries with ``durations[k] == 0`` are never read (a blank must advance
    time) and ``NEG`` marks arcs that do not exist. ``token_w [B, T, U, K]``: log-weight of label
    ``u`` with duration ``durations[k]`` from ``(t, u)`` to ``(t + d, u + 1)``.
    ``act_lens [B]``, ``label_lens [B]``: valid ``T`` and ``U`` per item. Returns
    ``log P [B]``.

    The loop runs over ``t``. Jumps with ``d >= 1`` come from frames already computed and
    are combined with one ``logsumexp``; zero-duration tokens chain along ``u`` inside a
    frame, ``alpha(t, u) = logsumexp_j base(t, j) + sum_{i=j}^{u-1} e(t, i)``, which is a
    ``logcumsumexp`` of ``base - S`` shifted back by the prefix sum ``S`` of ``e``.
    """
    B, T, U1, K = blank_w.shape
    device, dtype = blank_w.device, blank_w.dtype
    durations = [int(d) for d in durations]
    neg = torch.tensor(NEG, dtype=dtype, device=device)
    if T < 1:
        raise ValueError("the lattice needs at least one frame")

    # token weight *into* (t + d, u) from (t, u - 1), [B, T, U + 1, K]: shift along u, NEG into u = 0
    token_in = torch.cat([torch.full((B, T, 1, K), NEG, dtype=dtype, device=device), token_w], dim=2)
    jumps = [(k, d) for k, d in enumerate(durations) if d >= 1]
    zero = [k for k, d in enumerate(durations) if d == 0]

    start = torch.full((B, U1), NEG, dtype=dtype, device=device)
    start[:, 0] = 0.0
    alphas: list[torch.Tensor] = []  # alpha(t, :) for t = 0 .. T - 1, each [B, U + 1]
    shifted: list[torch.Tensor] = []  # alpha(t, u - 1), NEG at u = 0
    for t in range(T):
        ks = [k for k, d in jumps if t - d >= 0]
        if ks:
            src = [t - durations[k] for k in ks]
            prev = torch.stack([alphas[s] for s in src])  # [J, B, U + 1]
            prev_shifted = torch.stack([shifted[s] for s in src])
            src_t, ks_t = torch.tensor(src, device=device), torch.tensor(ks, device=device)
            candidates = torch.cat(
                [prev + blank_w[:, src_t, :, ks_t], prev_shifted + token_in[:, src_t, :, ks_t]], dim=0
            )
            base = torch.logsumexp(candidates, dim=0)
        else:
            base = start if t == 0 else torch.full((B, U1), NEG, dtype=dtype, device=device)
        if zero and U1 > 1:
            e = token_w[:, t, :, zero[0]]  # [B, U]
            prefix = torch.cat([torch.zeros_like(e[:, :1]), torch.cumsum(e, dim=1)], dim=1)  # [B, U + 1]
            alpha = prefix + torch.logcumsumexp(base - prefix, dim=1)
        else:
            alpha = base
        alphas.append(alpha)
        shifted.append(torch.cat([torch.full_like(alpha[:, :1], NEG), alpha[:, :-1]], dim=1))

    alpha_all = torch.stack(alphas, dim=1)  # [B, T, U + 1]
    batch = torch.arange(B, device=device)
    finals = []
    for k, d in jumps:
        src = act_lens - d
        valid = src >= 0
        src_c = src.clamp(min=0)
        term = alpha_all[batch, src_c, label_lens] + blank_w[batch, src_c, label_lens, k]
        finals.append(torch.where(valid, term, neg))
    if not finals:
        raise ValueError("durations must contain a positive duration for the final blank")
    return torch.logsumexp(torch.stack(finals), dim=0)


def _check_inputs(acts, labels, act_lens, label_lens, n_durations: int) -> tuple[int, int]:
    if acts.dim() != 4:
        raise ValueError(f"acts must be [B, T, U + 1, V + K], got shape {tuple(acts.shape)}")
    if labels.dim() != 2 or labels.shape[0] != acts.shape[0]:
        raise ValueError(f"labels must be [B, U], got shape {tuple(labels.shape)}")
    if act_lens.shape != (acts.shape[0],) or label_lens.shape != (acts.shape[0],):
        raise ValueError("act_lens and label_lens must be [B]")
    max_t = int(act_lens.max())
    max_u = int(label_lens.max())
    if int(act_lens.min()) < 1 or int(label_lens.min()) < 0:
        raise ValueError("act_lens must be >= 1 and label_lens >= 0")
    if max_t > acts.shape[1] or max_u + 1 > acts.shape[2] or max_u > labels.shape[1]:
        raise ValueError(
            f"lengths exceed the tensors: max act_len {max_t} vs T={acts.shape[1]}, max label_len {max_u} "
            f"vs U+1={acts.shape[2]} and labels width {labels.shape[1]}"
        )
    if acts.shape[-1] <= n_durations + 1:
        raise ValueError("acts must hold at least two label logits plus the duration logits")
    return max_t, max_u


def _label_log_probs(label_logp: torch.Tensor, labels: torch.Tensor, max_u: int) -> torch.Tensor:
    """``log P(y[u] | t, u)`` for ``u < U``: ``[B, T, U]`` gathered from ``label_logp [B, T, U + 1, V]``."""
    B, T = label_logp.shape[:2]
    idx = labels[:, :max_u].long().clamp(0, label_logp.shape[-1] - 1)  # padding may hold anything
    idx = idx[:, None, :, None].expand(B, T, max_u, 1)
    return label_logp[:, :, :max_u].gather(-1, idx).squeeze(-1)


def tdt_log_likelihood(
    label_logp: torch.Tensor,
    duration_logp: torch.Tensor,
    labels: torch.Tensor,
    act_lens: torch.Tensor,
    label_lens: torch.Tensor,
    *,
    blank: int,
    durations: Sequence[int],
) -> torch.Tensor:
    """``log P(labels | x) [B]`` under TDT, from already normalised log-probabilities.

    ``label_logp [B, T, U + 1, V]`` (blank included, ``sigma`` already subtracted if wanted),
    ``duration_logp [B, T, U + 1, K]``, ``labels [B, U]`` (padding arbitrary),
    ``act_lens [B]`` (``1 <= act_len <= T``), ``label_lens [B]`` (``<= U``).
    """
    max_t = int(act_lens.max())
    max_u = int(label_lens.max())
    label_logp = label_logp[:, :max_t, : max_u + 1]
    duration_logp = duration_logp[:, :max_t, : max_u + 1]
    durations_t = torch.tensor([int(d) for d in durations], device=label_logp.device)
    if durations_t.numel() != duration_logp.shape[-1]:
        raise ValueError(f"{durations_t.numel()} durations but {duration_logp.shape[-1]} duration log-probs")
    if (durations_t < 0).any():
        raise ValueError("durations must be non-negative")

    blank_lp = label_logp[..., blank].clamp(min=MIN_STEP_LOGP)  # [B, T, U + 1]
    # a blank must advance time: the lattice never reads blank_w at duration 0
    blank_w = blank_lp.unsqueeze(-1) + duration_logp.clamp(min=MIN_STEP_LOGP)
    token_lp = _label_log_probs(label_logp, labels, max_u).clamp(min=MIN_STEP_LOGP)  # [B, T, U]
    token_w = token_lp.unsqueeze(-1) + duration_logp[:, :, :max_u].clamp(min=MIN_STEP_LOGP)
    return _lattice_log_likelihood(blank_w, token_w, durations_t.tolist(), act_lens.long(), label_lens.long())


def rnnt_log_likelihood(
    label_logp: torch.Tensor,
    labels: torch.Tensor,
    act_lens: torch.Tensor,
    label_lens: torch.Tensor,
    *,
    blank: int,
) -> torch.Tensor:
    """``log P(labels | x) [B]`` under the standard RNN-T lattice (blank: ``t + 1``, label:
    ``u + 1`` at the same ``t``, end with a blank from ``(T - 1, U)``).

    ``label_logp [B, T, U + 1, V]`` normalised log-probabilities; other arguments as in
    :func:`tdt_log_likelihood`. This is the loss NeMo's ``omega`` switches to.
    """
    max_t = int(act_lens.max())
    max_u = int(label_lens.max())
    label_logp = label_logp[:, :max_t, : max_u + 1]
    blank_lp = label_logp[..., blank].clamp(min=MIN_STEP_LOGP)
    token_lp = _label_log_probs(label_logp, labels, max_u).clamp(min=MIN_STEP_LOGP)
    # durations (0, 1): labels only with 0, blanks only with 1
    blank_w = torch.stack([torch.full_like(blank_lp, NEG), blank_lp], dim=-1)
    token_w = torch.stack([token_lp, torch.full_like(token_lp, NEG)], dim=-1)
    return _lattice_log_likelihood(blank_w, token_w, [0, 1], act_lens.long(), label_lens.long())


def reduce_losses(losses: torch.Tensor, label_lens: torch.Tensor, reduction: Reduction | None) -> torch.Tensor:
    """NeMo's ``RNNTLoss.reduce``: ``losses [B]`` -> scalar (or ``[B]`` for ``"none"``/``None``).

    ``"mean_batch"``: mean over the batch; ``"mean"``: mean of per-token losses
    (``loss / label_len``; like NeMo, an empty transcript gives ``inf``); ``"sum"``; and
    ``"mean_volume"``: sum over the batch divided by the total number of labels.
    """
    if reduction is None or reduction == "none":
        return losses
    if reduction == "mean_batch":
        return losses.mean()
    if reduction == "mean":
        return torch.div(losses, label_lens.to(losses.dtype)).mean()
    if reduction == "sum":
        return losses.sum()
    if reduction == "mean_volume":
        return losses.sum() / label_lens.sum().to(losses.dtype)
    raise ValueError(f"unknown reduction {reduction!r}: expected one of {', '.join(REDUCTIONS)}")


def tdt_loss(
    acts: torch.Tensor,
    labels: torch.Tensor,
    act_lens: torch.Tensor,
    label_lens: torch.Tensor,
    *,
    blank: int,
    durations: Sequence[int] = (0, 1, 2, 3, 4),
    sigma: float = 0.0,
    omega: float = 0.0,
    reduction: Reduction | None = "mean_batch",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """The TDT loss (negative log-likelihood) of raw joint outputs, as NeMo computes it.

    ``acts [B, T, U + 1, V + K]``: unnormalised joint logits, ``V`` label logits (blank
    included, at index ``blank``) followed by ``K = len(durations)`` duration logits, the
    layout of :class:`parakeet_nb.model.components.Joint`. ``labels [B, U]`` integer targets
    (padding arbitrary), ``act_lens [B]`` encoder lengths, ``label_lens [B]`` target
    lengths. Returns the reduced loss (see :func:`reduce_losses`); ``[B]`` for ``"none"``.
    An item without any alignment (only possible without duration 0, when ``U >= T``) gets
    a loss of about ``-NEG = 1e30``.

    ``sigma``: logit under-normalisation (NeMo recommends 0.05 for training).
    ``omega``: probability of using the standard RNN-T loss for this call (sampled once
    per call from ``generator`` or torch's global RNG).
    """
    n_durations = len(durations)
    _check_inputs(acts, labels, act_lens, label_lens, n_durations)
    if not 0.0 <= omega <= 1.0:
        raise ValueError(f"omega must be a probability, got {omega}")
    label_acts = acts[..., :-n_durations]
    if not 0 <= blank < label_acts.shape[-1]:
        raise ValueError(f"blank {blank} outside the {label_acts.shape[-1]} label logits")

    use_rnnt = omega > 0.0 and bool(torch.rand((), generator=generator) < omega)
    if use_rnnt:
        log_likelihood = rnnt_log_likelihood(
            torch.log_softmax(label_acts, dim=-1), labels, act_lens, label_lens, blank=blank
        )
    else:
        label_logp = torch.log_softmax(label_acts, dim=-1) - sigma
        duration_logp = torch.log_softmax(acts[..., -n_durations:], dim=-1)
        log_likelihood = tdt_log_likelihood(
            label_logp, duration_logp, labels, act_lens, label_lens, blank=blank, durations=durations
        )
    return reduce_losses(-log_likelihood, label_lens, reduction)


class TDTLoss(torch.nn.Module):
    """:func:`tdt_loss` as a module, with NeMo's loss arguments.

    ``forward(acts [B, T, U + 1, V + K], labels [B, U], act_lens [B], label_lens [B])``.
    ``reduction`` defaults to ``"mean_batch"``, the default of NeMo's ``RNNTLoss``.
    """

    def __init__(
        self,
        blank: int,
        durations: Sequence[int] = (0, 1, 2, 3, 4),
        reduction: Reduction | None = "mean_batch",
        sigma: float = 0.0,
        omega: float = 0.0,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        if reduction is not None and reduction not in REDUCTIONS:
            raise ValueError(f"unknown reduction {reduction!r}: expected one of {', '.join(REDUCTIONS)}")
        self.blank = int(blank)
        self.durations = tuple(int(d) for d in durations)
        self.reduction = reduction
        self.sigma = float(sigma)
        self.omega = float(omega)
        self.generator = generator

    def forward(
        self, acts: torch.Tensor, labels: torch.Tensor, act_lens: torch.Tensor, label_lens: torch.Tensor
    ) -> torch.Tensor:
        return tdt_loss(
            acts, labels, act_lens, label_lens,
            blank=self.blank, durations=self.durations, sigma=self.sigma, omega=self.omega,
            reduction=self.reduction, generator=self.generator,
        )

    def extra_repr(self) -> str:
        return (
            f"blank={self.blank}, durations={self.durations}, reduction={self.reduction!r}, "
            f"sigma={self.sigma}, omega={self.omega}"
        )
