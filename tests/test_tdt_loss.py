"""The CPU TDT loss (``parakeet_nb.model.tdt_loss``) against NeMo and against brute force.

* NeMo's ``TDTLossPytorch`` (its pure-Python reference, which calls ``.cuda()``; patched
  to a no-op here) and NeMo's ``RNNTLossPytorch`` for ``omega``: values and gradients.
* An independent enumeration of every alignment on tiny lattices (``T <= 4``, ``U <= 2``).
* Variable lengths, padding, gradients, float32 precision, a short optimisation.
"""

from __future__ import annotations

import math
from unittest import mock

import pytest
import torch

from parakeet_nb.model.tdt_loss import TDTLoss, reduce_losses, tdt_loss

from nemo.collections.asr.losses.rnnt_pytorch import RNNTLossPytorch, TDTLossPytorch  # noqa: E402

DURATIONS = (0, 1, 2, 3, 4)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Small tensors: one thread is much faster than two on shared cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def random_batch(seed: int, B: int, T: int, U: int, V: int, K: int, scale: float = 1.0, dtype=torch.float64):
    """``acts [B, T, U + 1, V + K]`` (requires grad), ``labels [B, U]`` in ``[0, V - 1)`` (blank = V - 1)."""
    gen = torch.Generator().manual_seed(seed)
    acts = (torch.randn(B, T, U + 1, V + K, generator=gen, dtype=dtype) * scale).requires_grad_(True)
    labels = torch.randint(0, V - 1, (B, U), generator=gen)
    return acts, labels


def nemo_tdt(acts, labels, act_lens, label_lens, *, blank, durations, sigma=0.0, reduction=None):
    loss = TDTLossPytorch(blank=blank, durations=list(durations), reduction=reduction, sigma=sigma)
    with mock.patch.object(torch.Tensor, "cuda", lambda self, *args, **kwargs: self):
        return loss(acts=acts, labels=labels, act_lens=act_lens, label_lens=label_lens)


# --------------------------------------------------------------------------------------
# NeMo


@pytest.mark.parametrize("sigma", [0.0, 0.05])
def test_matches_nemo_tdt_pytorch_values_and_gradients(sigma):
    V = 6
    acts, labels = random_batch(0, B=3, T=6, U=3, V=V, K=len(DURATIONS), scale=2.0)
    act_lens, label_lens = torch.tensor([6, 4, 2]), torch.tensor([3, 1, 2])
    ours = tdt_loss(acts, labels, act_lens, label_lens, blank=V - 1, sigma=sigma, reduction="none")
    ref = nemo_tdt(acts, labels, act_lens, label_lens, blank=V - 1, durations=DURATIONS, sigma=sigma)
    # NeMo keeps its alphas in float32 (torch.zeros default dtype), hence the tolerance
    torch.testing.assert_close(ours, ref, rtol=0, atol=1e-5)
    (g_ours,) = torch.autograd.grad(ours.sum(), acts)
    (g_ref,) = torch.autograd.grad(ref.sum(), acts)
    torch.testing.assert_close(g_ours, g_ref, rtol=0, atol=1e-5)
    assert g_ours.abs().sum() > 1.0  # a real gradient, not zeros on both sides


def test_matches_nemo_other_durations_and_reductions():
    V, durations = 5, (0, 1, 3)
    acts, labels = random_batch(1, B=3, T=7, U=2, V=V, K=len(durations))
    act_lens, label_lens = torch.tensor([7, 5, 3]), torch.tensor([2, 2, 1])
    for reduction in ["mean_batch", "mean", "sum", "mean_volume"]:
        ours = tdt_loss(
            acts, labels, act_lens, label_lens, blank=V - 1, durations=durations, reduction=reduction, sigma=0.1
        )
        ref = nemo_tdt(
            acts, labels, act_lens, label_lens, blank=V - 1, durations=durations, reduction=reduction, sigma=0.1
        )
        torch.testing.assert_close(ours, ref, rtol=0, atol=1e-5, msg=reduction)


def test_omega_one_is_nemo_rnnt_and_omega_is_sampled():
    V = 6
    acts, labels = random_batch(2, B=3, T=5, U=3, V=V, K=len(DURATIONS))
    act_lens, label_lens = torch.tensor([5, 3, 4]), torch.tensor([3, 2, 0])
    rnnt = tdt_loss(acts, labels, act_lens, label_lens, blank=V - 1, omega=1.0, sigma=0.3, reduction="none")
    ref = RNNTLossPytorch(blank=V - 1, reduction=None)(
        acts=acts[..., :V], labels=labels, act_lens=act_lens, label_lens=label_lens
    )
    torch.testing.assert_close(rnnt, ref, rtol=0, atol=1e-5)  # NeMo: float32 alphas
    (g_ours,) = torch.autograd.grad(rnnt.sum(), acts)
    (g_ref,) = torch.autograd.grad(ref.sum(), acts)
    torch.testing.assert_close(g_ours, g_ref, rtol=0, atol=1e-5)
    assert g_ours[..., V:].abs().max() == 0  # the RNN-T loss ignores the duration logits

    tdt = tdt_loss(acts, labels, act_lens, label_lens, blank=V - 1, reduction="none")
    assert (tdt - rnnt).abs().min() > 1e-3
    module = TDTLoss(blank=V - 1, reduction="none", omega=0.5, generator=torch.Generator().manual_seed(3))
    draws = torch.Generator().manual_seed(3)
    picked = []
    for _ in range(12):
        loss = module(acts, labels, act_lens, label_lens)
        expect_rnnt = bool(torch.rand((), generator=draws) < 0.5)
        torch.testing.assert_close(loss, rnnt if expect_rnnt else tdt)
        picked.append(expect_rnnt)
    assert 0 < sum(picked) < len(picked)


# --------------------------------------------------------------------------------------
# Brute force: every alignment of a tiny lattice, written independently of the module


def brute_force_log_likelihood(label_logp, duration_logp, labels, T, U, blank, durations, rnnt=False) -> float:
    """``log sum over alignments of exp(sum of arc weights)``, by explicit enumeration.

    An alignment is a sequence of arcs from ``(0, 0)``: a blank with duration ``d >= 1``
    (``(t, u) -> (t + d, u)``) or label ``labels[u]`` with any duration (``-> (t + d, u + 1)``),
    visiting only ``t < T``, and finishing with a blank that lands exactly on ``(T, U)``.
    ``rnnt=True``: blanks only with duration 1, labels only with 0, no duration terms.
    """
    lp, dlp = label_logp.tolist(), duration_logp.tolist()
    scores: list[float] = []

    def walk(t: int, u: int, score: float) -> None:
        for k, d in enumerate(durations):
            d_term = 0.0 if rnnt else dlp[t][u][k]
            if d >= 1 and (not rnnt or d == 1):
                blank_score = score + lp[t][u][blank] + d_term
                if t + d < T:
                    walk(t + d, u, blank_score)
                elif t + d == T and u == U:
                    scores.append(blank_score)
            if u < U and t + d < T and (not rnnt or d == 0):
                walk(t + d, u + 1, score + lp[t][u][labels[u]] + d_term)

    walk(0, 0, 0.0)
    top = max(scores)
    return top + math.log(sum(math.exp(s - top) for s in scores))


@pytest.mark.parametrize("durations", [DURATIONS, (0, 1, 2), (1, 2)])
def test_brute_force_tiny_lattices(durations):
    V, K = 4, len(durations)
    sigma = 0.2
    cases = 0
    for T in range(1, 5):
        for U in range(0, 3):
            acts, labels = random_batch(10 * T + U, B=1, T=T, U=U, V=V, K=K, scale=1.5)
            ours = tdt_loss(
                acts, labels, torch.tensor([T]), torch.tensor([U]),
                blank=V - 1, durations=durations, sigma=sigma, reduction="none",
            )
            label_logp = torch.log_softmax(acts[0, ..., :V].detach(), -1) - sigma
            duration_logp = torch.log_softmax(acts[0, ..., V:].detach(), -1)
            paths_exist = 0 in durations or U == 0 or T > U  # without duration 0, each label needs a frame
            if not paths_exist:
                assert ours.item() > 1e29  # no alignment at all: about -NEG
                continue
            expected = brute_force_log_likelihood(label_logp, duration_logp, labels[0].tolist(), T, U, V - 1, durations)
            assert ours.item() == pytest.approx(-expected, abs=1e-9), (T, U)
            cases += 1
    assert cases == (12 if 0 in durations else 9)


def test_brute_force_rnnt_mode():
    V = 4
    for T in range(1, 5):
        for U in range(0, 3):
            acts, labels = random_batch(100 + 10 * T + U, B=1, T=T, U=U, V=V, K=len(DURATIONS))
            ours = tdt_loss(
                acts, labels, torch.tensor([T]), torch.tensor([U]), blank=V - 1, omega=1.0, reduction="none"
            )
            label_logp = torch.log_softmax(acts[0, ..., :V].detach(), -1)
            expected = brute_force_log_likelihood(
                label_logp, label_logp, labels[0].tolist(), T, U, V - 1, (0, 1), rnnt=True
            )
            assert ours.item() == pytest.approx(-expected, abs=1e-9), (T, U)


# --------------------------------------------------------------------------------------
# Batches, gradients, precision


def test_variable_lengths_equal_per_item_and_padding_is_ignored():
    V, B, T, U = 8, 5, 12, 6
    acts, labels = random_batch(4, B=B, T=T, U=U, V=V, K=len(DURATIONS), dtype=torch.float32)
    act_lens = torch.tensor([12, 9, 3, 7, 1])
    label_lens = torch.tensor([6, 2, 3, 0, 1])
    padded_labels = labels.clone()
    for b in range(B):
        padded_labels[b, label_lens[b]:] = -1  # padding outside the vocabulary must not matter
    batch = tdt_loss(acts, padded_labels, act_lens, label_lens, blank=V - 1, sigma=0.05, reduction="none")
    (grad,) = torch.autograd.grad(batch.sum(), acts)
    assert torch.isfinite(batch).all() and torch.isfinite(grad).all()
    for b in range(B):
        t, u = int(act_lens[b]), int(label_lens[b])
        item_acts = acts[b : b + 1, :t, : u + 1].detach().clone().requires_grad_(True)
        single = tdt_loss(
            item_acts, labels[b : b + 1, :u], act_lens[b : b + 1], label_lens[b : b + 1],
            blank=V - 1, sigma=0.05, reduction="none",
        )
        torch.testing.assert_close(batch[b], single[0], rtol=1e-6, atol=1e-5)
        (item_grad,) = torch.autograd.grad(single.sum(), item_acts)
        torch.testing.assert_close(grad[b, :t, : u + 1], item_grad[0], rtol=1e-5, atol=1e-6)
        assert not grad[b, t:].any() and not grad[b, :, u + 1 :].any()

    # reductions over the same per-item losses (NeMo's RNNTLoss.reduce)
    n = label_lens.to(batch.dtype)
    reduced = {
        "mean_batch": batch.mean(),
        "sum": batch.sum(),
        "mean_volume": batch.sum() / n.sum(),
    }
    for name, value in reduced.items():
        torch.testing.assert_close(
            tdt_loss(acts, padded_labels, act_lens, label_lens, blank=V - 1, sigma=0.05, reduction=name), value
        )
    assert torch.isinf(reduce_losses(batch, label_lens, "mean"))  # like NeMo: an empty transcript gives inf


def test_gradcheck_float64():
    V = 4
    acts, labels = random_batch(5, B=2, T=3, U=2, V=V, K=len(DURATIONS))
    act_lens, label_lens = torch.tensor([3, 2]), torch.tensor([2, 1])
    assert torch.autograd.gradcheck(
        lambda a: tdt_loss(a, labels, act_lens, label_lens, blank=V - 1, sigma=0.05, reduction="sum"), (acts,)
    )


def test_float32_matches_float64_on_a_realistic_size():
    V = 33
    acts, labels = random_batch(6, B=4, T=40, U=10, V=V, K=len(DURATIONS), scale=3.0)
    act_lens, label_lens = torch.tensor([40, 33, 25, 18]), torch.tensor([10, 9, 4, 7])
    exact = tdt_loss(acts, labels, act_lens, label_lens, blank=V - 1, reduction="none")
    single = tdt_loss(acts.detach().float(), labels, act_lens, label_lens, blank=V - 1, reduction="none")
    torch.testing.assert_close(single.double(), exact.detach(), rtol=1e-6, atol=1e-4)


def test_optimisation_decreases_the_loss():
    V = 9
    acts, labels = random_batch(7, B=4, T=10, U=4, V=V, K=len(DURATIONS), dtype=torch.float32)
    acts = torch.nn.Parameter(acts.detach())
    act_lens, label_lens = torch.tensor([10, 8, 6, 9]), torch.tensor([4, 3, 2, 4])
    loss_fn = TDTLoss(blank=V - 1, sigma=0.05)
    optimiser = torch.optim.Adam([acts], lr=0.1)
    first = None
    for _ in range(40):
        optimiser.zero_grad()
        loss = loss_fn(acts, labels, act_lens, label_lens)
        loss.backward()
        optimiser.step()
        first = loss.item() if first is None else first
    assert loss.item() < 0.2 * first


def test_errors():
    V = 5
    acts, labels = random_batch(8, B=2, T=4, U=2, V=V, K=len(DURATIONS))
    act_lens, label_lens = torch.tensor([4, 4]), torch.tensor([2, 2])
    with pytest.raises(ValueError):
        tdt_loss(acts, labels, torch.tensor([5, 4]), label_lens, blank=V - 1)
    with pytest.raises(ValueError):
        tdt_loss(acts, labels, act_lens, torch.tensor([3, 2]), blank=V - 1)
    with pytest.raises(ValueError):
        tdt_loss(acts, labels, act_lens, label_lens, blank=V - 1, omega=1.5)
    with pytest.raises(ValueError):
        tdt_loss(acts, labels, act_lens, label_lens, blank=V - 1, reduction="average")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        TDTLoss(blank=V - 1, reduction="average")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        tdt_loss(acts, labels, act_lens, label_lens, blank=V + 3)
