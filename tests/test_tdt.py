"""TDT greedy decoding (``parakeet_nb.model.tdt``) against NeMo 3.0's own greedy TDT decoders.

NeMo has two greedy TDT decoders that differ when a frame reaches ``max_symbols_per_step``:
``GreedyBatchedTDTInfer`` (``variant="batched"``) and ``GreedyTDTInfer``
(``variant="sequential"``). Both are compared here:

* on the tiny preset's real decoder and joint (seeded random weights, biased towards
  tokens, blanks or zero durations), and
* on a *scripted* joint: the real decoder, but a joint whose decision is read from a
  seeded random table indexed by (frame, number of tokens emitted so far). The table makes
  the corner cases (many zero-duration tokens, blank with duration 0, a blank or a token with
  a long duration right at the symbol limit) frequent, so the two NeMo variants really
  diverge and each must be matched.
"""

from __future__ import annotations

import copy
import types
from collections import Counter
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from parakeet_nb.model import tdt
from parakeet_nb.model.presets import ParakeetModules, build

from nemo.collections.asr.parts.submodules.rnnt_greedy_decoding import (  # noqa: E402  (after models: quiet import)
    GreedyBatchedTDTInfer,
    GreedyTDTInfer,
)

DURATIONS = [0, 1, 2, 3, 4]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Run the many tiny decoder/joint calls on one thread: on two shared cores, torch's
    intra-op threads make each call tens of times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny() -> ParakeetModules:
    return build("tiny")


def nemo_decode(
    modules: ParakeetModules,
    encoder: torch.Tensor,
    lengths: torch.Tensor,
    variant: str,
    max_symbols: int | None = 10,
) -> list[tuple[list[int], list[int], list[int]]]:
    """NeMo's decoding of ``encoder [B, D, T]``: ``(tokens, frames, durations)`` per item."""
    if variant == "sequential":
        infer = GreedyTDTInfer(
            modules.decoder, modules.joint, blank_index=modules.blank_id, durations=DURATIONS,
            max_symbols_per_step=max_symbols, include_duration=True,
        )
    else:
        infer = GreedyBatchedTDTInfer(
            modules.decoder, modules.joint, blank_index=modules.blank_id, durations=DURATIONS,
            max_symbols_per_step=max_symbols, include_duration=True, use_cuda_graph_decoder=False,
        )
    (hyps,) = infer(encoder_output=encoder, encoded_lengths=lengths)
    return [
        ([int(x) for x in h.y_sequence], [int(x) for x in h.timestamp], [int(x) for x in h.token_duration])
        for h in hyps
    ]


def ours(modules, encoder, lengths, variant, max_symbols=10) -> list[tuple[list[int], list[int], list[int]]]:
    hyps = tdt.decode_torch(modules, encoder, lengths, max_symbols_per_step=max_symbols, variant=variant)
    return [(h.tokens, h.frames, h.durations) for h in hyps]


def biased(modules: ParakeetModules, blank_bias: float, duration0_bias: float) -> ParakeetModules:
    """A copy of ``modules`` whose joint favours the blank and/or duration 0 by the given logit biases."""
    out = copy.copy(modules)
    out.joint = copy.deepcopy(modules.joint)
    with torch.no_grad():
        bias = out.joint.joint_net[-1].bias
        bias[modules.blank_id] += blank_bias
        bias[modules.blank_id + 1] += duration0_bias  # first duration logit: duration 0
    return out


# --------------------------------------------------------------------------------------
# Pure rules, scripted backend, no NeMo


def scripted_backend(decisions: dict[tuple[int, int], tuple[int, int]], blank: int, default=(None, 1)):
    """``step``/``decide`` where the decoder state is the number of emitted tokens ``n`` and the
    decision at (frame ``t``, ``n``) is ``decisions[(t, n)] = (token, duration)``; unknown pairs
    give ``default`` (``None`` token = blank). Frames are ``encoder[:, t] == [t]``."""
    calls: list[tuple[int, int]] = []

    def step(label, state):
        n = 0 if state is None else state + 1
        if state is None:
            assert label == blank
        return np.array([n]), n

    def decide(frame, decoder_out):
        t, n = int(frame[0]), int(decoder_out[0])
        calls.append((t, n))
        token, duration = decisions.get((t, n), default)
        return (blank if token is None else token), 0.5, duration

    return step, decide, calls


def frames_encoder(T: int) -> np.ndarray:
    return np.arange(T, dtype=np.float32)[None, :]


@pytest.mark.parametrize("variant", ["batched", "sequential"])
def test_rules_blank_duration_and_timestamps(variant):
    blank = 5
    decisions = {
        (0, 0): (1, 0),      # token at frame 0, stays
        (0, 1): (2, 2),      # token at frame 0, jump to 2
        (2, 2): (None, 0),   # blank with duration 0 counts as 1 -> frame 3
        (3, 2): (None, 3),   # blank, jump to 6
        (6, 2): (3, 4),      # token at frame 6, jump to 10 >= T
    }
    step, decide, calls = scripted_backend(decisions, blank)
    hyp = tdt.greedy_decode(frames_encoder(8), 8, step, decide, blank_id=blank, variant=variant)
    assert hyp.tokens == [1, 2, 3]
    assert hyp.frames == [0, 0, 6]
    assert hyp.durations == [0, 2, 4]
    assert hyp.timestamps() == pytest.approx([0.0, 0.0, 0.48])
    assert [x for span in hyp.spans(0.1) for x in span] == pytest.approx([0.0, 0.0, 0.0, 0.2, 0.6, 1.0])
    assert calls == [(0, 0), (0, 1), (2, 2), (3, 2), (6, 2)]
    assert hyp.state == 3


def test_rules_max_symbols_batched_vs_sequential():
    blank, T = 7, 12
    # frame 0: three zero-duration tokens then the third gets cut by max_symbols=3
    # frame 1: two zero-duration tokens, then a blank of duration 2 (3rd call at that frame)
    always_token0 = {(0, n): (n % 5, 0) for n in range(10)}
    decisions = dict(always_token0)
    decisions.update({(1, 3): (0, 0), (1, 4): (1, 0), (1, 5): (None, 2)})
    decisions.update({(3, 5): (2, 1), (4, 6): (3, 1), (5, 7): (4, 1)})
    decisions.update({(6, 5): (5, 1)})  # only reached by the sequential rule
    step, decide, _ = scripted_backend(decisions, blank)
    batched = tdt.greedy_decode(frames_encoder(T), T, step, decide, blank_id=blank, max_symbols_per_step=3)
    step, decide, _ = scripted_backend(decisions, blank)
    seq = tdt.greedy_decode(
        frames_encoder(T), T, step, decide, blank_id=blank, max_symbols_per_step=3, variant="sequential"
    )
    # batched: only tokens count; 3 tokens at frame 0 -> forced to 1; blank at 1 -> 3.
    assert batched.frames == [0, 0, 0, 1, 1, 3, 4, 5]
    # sequential: 3 calls at frame 1 (2 tokens + blank of duration 2) -> forced +1 on top -> 4.
    # the sequential rule then reaches frame 6 with 5 tokens emitted, where the batched one never is
    assert seq.frames == [0, 0, 0, 1, 1, 6]
    assert seq.tokens == [0, 1, 2, 0, 1, 5]
    assert batched.tokens == [0, 1, 2, 0, 1, 2, 3, 4]


def test_rules_no_limit_and_errors():
    blank = 3
    decisions = {(0, n): (1, 0) for n in range(25)}
    step, decide, _ = scripted_backend(decisions, blank)
    hyp = tdt.greedy_decode(frames_encoder(2), 2, step, decide, blank_id=blank, max_symbols_per_step=None)
    assert hyp.frames == [0] * 25  # unlimited: the table runs out at n=25 and the default blank ends it
    step, decide, _ = scripted_backend({(0, 0): (None, 0)}, blank)
    seq = tdt.greedy_decode(frames_encoder(2), 2, step, decide, blank_id=blank, max_symbols_per_step=None,
                            variant="sequential")
    assert seq.tokens == []
    with pytest.raises(ValueError):
        tdt.greedy_decode(frames_encoder(2), 2, step, decide, blank_id=blank, max_symbols_per_step=0)
    with pytest.raises(ValueError):
        tdt.greedy_decode(frames_encoder(2), 3, step, decide, blank_id=blank)
    with pytest.raises(ValueError):
        tdt.greedy_decode(frames_encoder(2), 2, step, decide, blank_id=blank, variant="beam")  # type: ignore


# --------------------------------------------------------------------------------------
# The tiny model's real decoder and joint against NeMo


SCENARIOS = {
    # name: (blank_bias, duration0_bias, encoder_scale)
    "tokens": (0.0, 0.0, 1.0),
    "tokens_scaled": (0.0, 0.0, 4.0),
    "zero_durations": (0.0, 2.0, 1.0),
    "mixed": (1.0, 1.0, 3.0),
    "blanks": (1.5, 0.5, 3.0),
    "blank_duration0": (1.5, 3.0, 3.0),
}


def recording(decide: tdt.JointDecide, seen: list[tuple[int, int]]) -> tdt.JointDecide:
    """``decide`` that also appends each ``(token, duration)`` decision to ``seen``."""

    def wrapped(frame, decoder_out):
        token, prob, duration = decide(frame, decoder_out)
        seen.append((token, duration))
        return token, prob, duration

    return wrapped


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_real_modules_match_nemo(tiny, name):
    blank_bias, duration0_bias, scale = SCENARIOS[name]
    modules = biased(tiny, blank_bias, duration0_bias)
    encoder = torch.randn(3, tiny.d_model, 30, generator=torch.Generator().manual_seed(1234)) * scale
    lengths = torch.tensor([30, 21, 8])
    blank = tiny.blank_id

    step, decide = tdt.torch_backend(modules)
    seen: list[tuple[int, int]] = []
    hyps = tdt.greedy_decode_batch(encoder, lengths, step, recording(decide, seen), blank_id=blank)
    ours_b = [(h.tokens, h.frames, h.durations) for h in hyps]
    ours_s = ours(modules, encoder, lengths, "sequential")

    assert ours_s == nemo_decode(modules, encoder, lengths, "sequential")  # tokens, frames, durations
    nemo_b = nemo_decode(modules, encoder, lengths, "batched")
    assert [o[:2] for o in ours_b] == [n[:2] for n in nemo_b]  # tokens and frames, batch of 3
    for i in range(len(lengths)):  # durations too: NeMo's batched durations are only right for batch size 1
        single = nemo_decode(modules, encoder[i : i + 1, :, : lengths[i]], lengths[i : i + 1], "batched")
        assert ours_b[i] == single[0]

    # the scenario is what its name says
    n_blank = sum(token == blank for token, _ in seen)
    n_token = len(seen) - n_blank
    assert n_token == sum(len(h) for h in hyps)
    most_at_one_frame = max(max(Counter(h.frames).values(), default=0) for h in hyps)
    if name.startswith("tokens"):
        assert n_token > 2 * n_blank
    elif name == "zero_durations":
        assert most_at_one_frame == 10  # the symbol limit is hit
    elif name == "mixed":
        assert n_token > 10 and n_blank > 10
    elif name == "blanks":
        assert 0 < n_token < n_blank
    elif name == "blank_duration0":
        assert (blank, 0) in seen

    # the reported probability is the max of a softmax over the vocabulary and the blank
    assert all(1.0 / (tiny.vocab_size + 1) <= p <= 1.0 for h in hyps for p in h.probs)


def test_numpy_encoder_and_backend_state(tiny):
    encoder = torch.randn(tiny.d_model, 20, generator=torch.Generator().manual_seed(7)) * 2.0
    step, decide = tdt.torch_backend(tiny)
    from_tensor = tdt.greedy_decode(encoder, 20, step, decide, blank_id=tiny.blank_id)
    from_numpy = tdt.greedy_decode(encoder.numpy(), 20, step, decide, blank_id=tiny.blank_id)
    assert from_tensor.tokens == from_numpy.tokens and from_tensor.frames == from_numpy.frames
    assert len(from_tensor) > 0
    h, c = from_tensor.state
    assert h.shape == c.shape == (tiny.pred_rnn_layers, 1, tiny.pred_hidden)
    out, (h0, c0) = step(tiny.blank_id, None)
    assert out.shape == (tiny.pred_hidden,)
    assert h0.shape == c0.shape == (tiny.pred_rnn_layers, 1, tiny.pred_hidden)


# --------------------------------------------------------------------------------------
# A scripted joint: NeMo's control flow on corner cases it rarely meets with real weights


@dataclass
class Script:
    """``label[t, n]`` / ``duration_index[t, n]``: the joint's decision at frame ``t`` after ``n``
    emitted tokens; ``g_table[n]`` the real decoder output after those ``n`` tokens."""

    label: torch.Tensor
    duration_index: torch.Tensor
    g_table: torch.Tensor


def make_script(modules: ParakeetModules, T: int, n_max: int, p_blank: float, p_durations, seed: int) -> Script:
    rng = np.random.default_rng(seed)
    tokens = rng.integers(0, modules.vocab_size, size=n_max)
    is_blank = rng.random((T, n_max)) < p_blank
    label = np.where(is_blank, modules.blank_id, tokens[None, :])
    duration_index = rng.choice(len(DURATIONS), size=(T, n_max), p=p_durations)
    step, _ = tdt.torch_backend(modules)
    g, state = step(modules.blank_id, None)
    rows = [g]
    for token in tokens[:-1]:
        g, state = step(int(token), state)
        rows.append(g)
    g_table = torch.stack(rows)
    distances = torch.cdist(g_table, g_table) + torch.eye(n_max) * 1e9
    assert distances.min() > 1e-3, "decoder outputs must identify the number of emitted tokens"
    return Script(torch.from_numpy(label), torch.from_numpy(duration_index), g_table)


def scripted(modules: ParakeetModules, script: Script) -> ParakeetModules:
    """A copy of ``modules`` whose joint ignores its weights and follows ``script``.

    Encoder frames carry their index in channel 0. The projections become identities and
    ``joint_after_projection(f [B, T, D], g [B, U, H]) -> [B, T, U, V + 1 + 5]`` puts a
    large logit on the scripted label and duration; NeMo's decoders and ``JointDecision``
    all go through these three methods.
    """
    out = copy.copy(modules)
    joint = copy.deepcopy(modules.joint)
    n_classes = modules.vocab_size + 1

    def joint_after_projection(self, f: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        t = f[..., 0].round().long()  # [B, T]
        n = torch.cdist(g.float(), script.g_table.unsqueeze(0).expand(g.shape[0], -1, -1)).argmin(-1)  # [B, U]
        tt, nn = t[:, :, None].expand(-1, -1, n.shape[1]), n[:, None, :].expand(-1, t.shape[1], -1)
        logits = torch.zeros(*tt.shape, n_classes + len(DURATIONS))
        logits.scatter_(-1, script.label[tt, nn].unsqueeze(-1), 10.0)
        logits.scatter_(-1, (n_classes + script.duration_index[tt, nn]).unsqueeze(-1), 10.0)
        return logits

    joint.project_encoder = lambda x: x
    joint.project_prednet = lambda x: x
    joint.joint_after_projection = types.MethodType(joint_after_projection, joint)
    out.joint = joint
    return out


SCRIPTS = {
    # name: (p_blank, p_durations, max_symbols)
    "dense_zero_durations": (0.1, [0.85, 0.05, 0.05, 0.03, 0.02], 10),
    "small_limit": (0.25, [0.6, 0.1, 0.1, 0.1, 0.1], 2),
    "blank_heavy": (0.6, [0.5, 0.2, 0.1, 0.1, 0.1], 2),
    "uniform": (0.3, [0.2] * 5, 3),
}


def test_scripted_joint_matches_nemo_and_variants_differ(tiny):
    T = 32
    lengths = torch.tensor([32, 23, 11])
    encoder = torch.zeros(3, tiny.d_model, T)
    encoder[:, 0, :] = torch.arange(T, dtype=torch.float32)
    differing = 0
    for i, (name, (p_blank, p_durations, max_symbols)) in enumerate(SCRIPTS.items()):
        n_max = T * max_symbols + 1
        modules = scripted(tiny, make_script(tiny, T, n_max, p_blank, p_durations, seed=100 + i))
        nemo_s = nemo_decode(modules, encoder, lengths, "sequential", max_symbols)
        assert ours(modules, encoder, lengths, "sequential", max_symbols) == nemo_s, name
        ours_b = ours(modules, encoder, lengths, "batched", max_symbols)
        # one utterance at a time: NeMo's batched durations are only right for batch size 1
        nemo_b = [
            nemo_decode(modules, encoder[b : b + 1], lengths[b : b + 1], "batched", max_symbols)[0]
            for b in range(len(lengths))
        ]
        assert ours_b == nemo_b, name
        differing += sum(s[:2] != o[:2] for s, o in zip(nemo_s, nemo_b))
    # the two NeMo decoders really disagree on these scripts, so matching each one is not vacuous
    assert differing >= 3


def test_scripted_unlimited_symbols_batched(tiny):
    """``max_symbols_per_step=None`` (no limit) against NeMo's batched decoder."""
    T, n_max = 12, 400
    modules = scripted(tiny, make_script(tiny, T, n_max, 0.3, [0.5, 0.2, 0.1, 0.1, 0.1], seed=7))
    encoder = torch.zeros(1, tiny.d_model, T)
    encoder[:, 0, :] = torch.arange(T, dtype=torch.float32)
    lengths = torch.tensor([T])
    nemo_b = nemo_decode(modules, encoder, lengths, "batched", None)
    assert ours(modules, encoder, lengths, "batched", None) == nemo_b
    assert max(Counter(nemo_b[0][1]).values()) > 1
