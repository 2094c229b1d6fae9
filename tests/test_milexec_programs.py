"""Whole programs in the MIL reference executor against PyTorch.

* small MIL-builder programs, converted to ``.mlpackage`` and read back from disk;
* the tiny Parakeet components, converted once per module with
  :func:`parakeet_nb.coreml.convert.convert`, against their torch wrappers;
* the float16 emulation on known overflow and subnormal cases;
* a greedy TDT decode with the executor as backend against the PyTorch backend.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from parakeet_nb import _quiet

_quiet.import_heavy()

import coremltools as ct  # noqa: E402
from coremltools.converters.mil import Builder as mb  # noqa: E402
from coremltools.converters.mil.mil import types  # noqa: E402

from parakeet_nb.model import tdt  # noqa: E402
from parakeet_nb.model.components import wrappers  # noqa: E402
from parakeet_nb.coreml.convert import COMPONENTS, convert, example_inputs  # noqa: E402
from parakeet_nb.mlprogram.milexec import MilExecutor, UnsupportedOpError, run_program  # noqa: E402
from parakeet_nb.mlprogram.milexec.tdt_backend import tdt_backend  # noqa: E402
from parakeet_nb.mlprogram.load import load_program  # noqa: E402

RNG = np.random.default_rng(1)
#: Components also converted with FP16 compute precision.
FP16_COMPONENTS = ("decoder", "joint")


pytestmark = pytest.mark.usefixtures("one_blas_thread")


class _Packages:
    """``packages[name, precision]`` -> LoadedProgram, converted on first use (once per module)."""

    def __init__(self, modules, folder) -> None:
        self.modules, self.folder, self.cache = modules, folder, {}
        self.wrappers = wrappers(modules)

    def __getitem__(self, key: tuple[str, str]):
        if key not in self.cache:
            name, precision = key
            path = self.folder / f"{name}_{precision}.mlpackage"
            convert(name, self.wrappers[name], self.modules, precision).save(str(path))
            self.cache[key] = load_program(path)
        return self.cache[key]


@pytest.fixture(scope="module")
def packages(tiny_modules, tmp_path_factory) -> _Packages:
    """The tiny components converted with :func:`parakeet_nb.coreml.convert.convert` (fp32, and fp16
    for :data:`FP16_COMPONENTS`), each once for this module, when a test first needs it."""
    return _Packages(tiny_modules, tmp_path_factory.mktemp("milexec_tiny"))


def _reference(tiny_modules, name: str, seed: int = 1):
    component = COMPONENTS[name]
    inputs = example_inputs(component, tiny_modules, seed=seed)
    with torch.no_grad():
        ref = wrappers(tiny_modules)[name](*inputs)
    ref = ref if isinstance(ref, tuple) else (ref,)
    feed = {spec.name: t.numpy() for spec, t in zip(component.inputs, inputs)}
    return feed, {o: r.numpy() for o, r in zip(component.outputs, ref)}


def _errors(out: dict, ref: dict) -> dict[str, np.ndarray]:
    return {k: np.abs(out[k].astype(np.float64) - ref[k].astype(np.float64)) for k in ref}


# ------------------------------------------------------------------------------------
# small programs through ct.convert and back from disk
# ------------------------------------------------------------------------------------

def test_conv_norm_attention_block(save_mlprogram):
    w, b = RNG.standard_normal((8, 4, 3)).astype(np.float32), RNG.standard_normal(8).astype(np.float32)
    g, beta = RNG.standard_normal(8).astype(np.float32), RNG.standard_normal(8).astype(np.float32)

    @mb.program(input_specs=[mb.TensorSpec(shape=(2, 4, 16))], opset_version=ct.target.iOS17)
    def prog(x):
        y = mb.conv(x=x, weight=w, bias=b, pad_type="same", strides=[1])  # [2, 8, 16]
        y = mb.transpose(x=y, perm=[0, 2, 1])  # [2, 16, 8]
        y = mb.layer_norm(x=y, axes=[-1], gamma=g, beta=beta, epsilon=1e-5)
        y = mb.gelu(x=y, mode="EXACT")
        scores = mb.matmul(x=y, y=y, transpose_y=True)  # [2, 16, 16]
        attn = mb.softmax(x=mb.mul(x=scores, y=0.25), axis=-1)
        return mb.reduce_mean(x=mb.matmul(x=attn, y=y), axes=[1], keep_dims=False)

    path = save_mlprogram(prog, "block")
    x = RNG.standard_normal((2, 4, 16)).astype(np.float32)
    (out,) = run_program(path, {"x": x}).values()
    tx = torch.from_numpy(x)
    y = F.conv1d(tx, torch.from_numpy(w), torch.from_numpy(b), padding=1).transpose(1, 2)
    y = F.gelu(F.layer_norm(y, (8,), torch.from_numpy(g), torch.from_numpy(beta), eps=1e-5))
    ref = (torch.softmax(y @ y.transpose(1, 2) * 0.25, dim=-1) @ y).mean(dim=1)
    np.testing.assert_allclose(out, ref.numpy(), rtol=1e-5, atol=1e-5)


def test_embedding_lstm_argmax_program(save_mlprogram):
    torch.manual_seed(3)
    emb, lstm, head = torch.nn.Embedding(10, 6), torch.nn.LSTM(6, 5), torch.nn.Linear(5, 7)

    def ifoz(w):
        i, f, g, o = w.detach().chunk(4, 0)
        return torch.cat([i, f, o, g]).numpy()

    table = emb.weight.detach().numpy()

    @mb.program(
        input_specs=[mb.TensorSpec(shape=(4, 1), dtype=types.int32), mb.TensorSpec(shape=(1, 5))],
        opset_version=ct.target.iOS17,
    )
    def prog(tokens, h0):
        x = mb.gather(x=table, indices=tokens, axis=0)  # [4, 1, 6]
        seq, h, c = mb.lstm(
            x=x, initial_h=h0, initial_c=h0, weight_ih=ifoz(lstm.weight_ih_l0), weight_hh=ifoz(lstm.weight_hh_l0),
            bias=ifoz(lstm.bias_ih_l0 + lstm.bias_hh_l0), output_sequence=True,
        )
        logits = mb.linear(x=seq, weight=head.weight.detach().numpy(), bias=head.bias.detach().numpy())
        return mb.reduce_argmax(x=logits, axis=-1), logits

    path = save_mlprogram(prog, "lstm")
    tokens = np.array([[1], [7], [3], [9]], np.int32)
    h0 = RNG.standard_normal((1, 5)).astype(np.float32)
    ids, logits = run_program(path, {"tokens": tokens, "h0": h0}).values()
    with torch.no_grad():
        seq, _ = lstm(emb(torch.from_numpy(tokens).long()), (torch.from_numpy(h0)[None], torch.from_numpy(h0)[None]))
        ref = head(seq)
    np.testing.assert_allclose(logits, ref.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(ids, ref.argmax(-1).numpy())


def test_unsupported_op_in_a_saved_package(save_mlprogram):
    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 3, 4)), mb.TensorSpec(shape=(1, 3, 2))],
                opset_version=ct.target.iOS17)
    def prog(boxes, scores):
        return mb.non_maximum_suppression(boxes=mb.relu(x=boxes), scores=scores, iou_threshold=0.5, max_boxes=2)[0]

    path = save_mlprogram(prog, "unsupported")
    with pytest.raises(UnsupportedOpError) as err:
        run_program(path, {"boxes": np.zeros((1, 3, 4), np.float32), "scores": np.zeros((1, 3, 2), np.float32)})
    message = str(err.value)
    position = [op.op_type for op in load_program(path).main.operations].index("non_maximum_suppression")
    assert "'non_maximum_suppression'" in message and f"#{position} of" in message


# ------------------------------------------------------------------------------------
# the tiny Parakeet components against their torch wrappers
# ------------------------------------------------------------------------------------

def _speech_feed(name: str):
    from parakeet_nb.frontend.audio import data_clip
    from parakeet_nb.transcribe.pipeline import program_inputs

    samples = data_clip("speech_15s.wav").samples
    names = [spec.name for spec in COMPONENTS[name].inputs]
    feed = program_inputs(samples, names)
    return feed, tuple(torch.from_numpy(feed[n]) for n in names)


def test_preprocessor_fp32(packages, tiny_modules):
    # random full-scale input: float32 summation order alone moves a mel value by ~1e-3 here
    feed, ref = _reference(tiny_modules, "preprocessor")
    out = run_program(packages["preprocessor", "fp32"], feed)
    err = _errors(out, ref)["mel"]
    np.testing.assert_array_equal(out["mel_length"], ref["mel_length"])
    assert err.mean() < 2e-6 and err.max() < 2e-3
    # speech: within the 1e-4, thanks to convert.exact_dft_basis
    feed, inputs = _speech_feed("preprocessor")
    with torch.no_grad():
        mel, _ = wrappers(tiny_modules)["preprocessor"](*inputs)
    err = np.abs(run_program(packages["preprocessor", "fp32"], feed)["mel"].astype(np.float64) - mel.numpy())
    assert err.max() < 1e-4


def test_converted_stft_basis_is_exact(packages, tiny_modules):
    """convert.exact_dft_basis: the program's two STFT convolutions carry the windowed DFT
    basis rounded once to float32, not coremltools' float32-angle basis."""
    lp = packages["preprocessor", "fp32"]
    convs = [op for op in lp.main.operations if op.op_type == "conv" and op.inputs["weight"].shape == (257, 1, 512)]
    assert len(convs) == 2
    window = F.pad(tiny_modules.preprocessor.featurizer.window.double(), (56, 56)).numpy()
    angle = 2 * np.pi * ((np.arange(257)[:, None] * np.arange(512)) % 512) / 512
    bases = [np.cos(angle) * window, -np.sin(angle) * window]
    for op in convs:
        given = op.inputs["weight"].val[:, 0, :].astype(np.float64)
        assert min(np.abs(given - basis).max() for basis in bases) < 1e-7, op.name


def test_coremltools_own_stft_basis_is_off(tiny_modules, tmp_path):
    """Without the fix-up, coremltools 9.0 builds the basis from a float32 angle (up to
    ~8e5 rad): coefficients off by >1e-5 and a mel ~1e-3 away on speech. If this fails,
    coremltools has fixed it and convert.exact_dft_basis can go."""
    from parakeet_nb.coreml.convert import example_inputs, trace

    component = COMPONENTS["preprocessor"]
    wrapper = wrappers(tiny_modules)["preprocessor"]
    traced = trace(wrapper, example_inputs(component, tiny_modules))
    model = ct.convert(
        traced, convert_to="mlprogram", minimum_deployment_target=ct.target.iOS17,
        inputs=[ct.TensorType(name="audio_signal", shape=(1, 240000), dtype=np.float32),
                ct.TensorType(name="audio_length", shape=(1,), dtype=np.int32)],
        outputs=[ct.TensorType(name="mel", dtype=np.float32), ct.TensorType(name="mel_length", dtype=np.int32)],
        compute_precision=ct.precision.FLOAT32, skip_model_load=True,
    )
    model.save(str(tmp_path / "stock.mlpackage"))
    feed, inputs = _speech_feed("preprocessor")
    with torch.no_grad():
        mel, _ = wrapper(*inputs)
    err = np.abs(run_program(tmp_path / "stock.mlpackage", feed)["mel"].astype(np.float64) - mel.numpy())
    assert err.max() > 5e-4


def test_chunked_preprocessor_fp32(packages, tiny_modules):
    feed, ref = _reference(tiny_modules, "preprocessor_chunked")
    out = run_program(packages["preprocessor_chunked", "fp32"], feed)
    np.testing.assert_array_equal(out["mel_length"].astype(np.int64), ref["mel_length"].astype(np.int64))
    err = _errors(out, ref)["mel"]
    assert err.mean() < 1e-5 and np.quantile(err, 0.999) < 1e-4 and err.max() < 1e-3


# NeMo's fused ``mel_encoder`` is preprocessor -> encoder, both checked on their own; it is
# left out to keep the module's conversions under a minute (the chunked fusion stays).
@pytest.mark.parametrize("name", ["encoder", "mel_encoder_chunked"])
def test_encoders_fp32_within_1e3(packages, tiny_modules, name):
    feed, ref = _reference(tiny_modules, name)
    out = run_program(packages[name, "fp32"], feed)
    np.testing.assert_array_equal(out["encoder_length"], ref["encoder_length"])
    err = _errors(out, ref)["encoder"]
    assert err.max() < 1e-3 and err.mean() < 1e-5


@pytest.mark.parametrize("name", ["decoder", "joint"])
def test_decoder_and_joint_fp32(packages, tiny_modules, name):
    feed, ref = _reference(tiny_modules, name)
    out = run_program(packages[name, "fp32"], feed)
    for key, err in _errors(out, ref).items():
        assert err.max() < 1e-5, key


def test_joint_decision_fp32(packages, tiny_modules):
    for seed in range(5):
        feed, ref = _reference(tiny_modules, "joint_decision", seed=seed)
        out = run_program(packages["joint_decision", "fp32"], feed)
        assert out["token_id"].dtype == np.int32 and out["duration"].dtype == np.int32
        np.testing.assert_array_equal(out["token_id"], ref["token_id"])
        np.testing.assert_array_equal(out["duration"], ref["duration"])
        np.testing.assert_allclose(out["token_prob"], ref["token_prob"], atol=1e-6)


def test_greedy_decode_through_the_executor_matches_torch(packages, tiny_modules):
    feed, ref = _reference(tiny_modules, "encoder")
    frames = 12
    enc = ref["encoder"][0]
    step, decide = tdt_backend(packages["decoder", "fp32"], packages["joint_decision", "fp32"])
    ours = tdt.greedy_decode(enc, frames, step, decide, blank_id=tiny_modules.blank_id)
    theirs = tdt.greedy_decode(enc, frames, *tdt.torch_backend(tiny_modules), blank_id=tiny_modules.blank_id)
    assert ours.tokens == theirs.tokens and ours.durations == theirs.durations and ours.frames == theirs.frames
    np.testing.assert_allclose(ours.probs, theirs.probs, atol=1e-6)


# ------------------------------------------------------------------------------------
# float16: FP16 packages and the emulation
# ------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", FP16_COMPONENTS)
def test_fp16_package_matches_fp32_package_in_fp16_numerics(packages, tiny_modules, name):
    feed, ref = _reference(tiny_modules, name)
    lp16 = packages[name, "fp16"]
    fp16_ops = [op for op in lp16.main.operations if op.op_type != "const" and op.outputs[0].dtype == types.fp16]
    assert len(fp16_ops) > len(lp16.main.outputs)  # the package really computes in fp16
    half_pkg = run_program(lp16, feed)  # numerics="fp32" honours the program's own fp16 casts
    emulated = run_program(packages[name, "fp32"], feed, numerics="fp16")
    for key in ref:
        assert emulated[key].dtype == np.float32
        err_pkg = np.abs(half_pkg[key].astype(np.float64) - ref[key]).max()
        err_emu = np.abs(emulated[key].astype(np.float64) - ref[key]).max()
        assert 1e-5 < err_pkg < 1e-2 and 1e-5 < err_emu < 1e-2, key
        np.testing.assert_allclose(half_pkg[key].astype(np.float32), emulated[key], atol=2e-3)


def test_encoder_fp16_emulation_error_is_bounded(packages, tiny_modules):
    feed, ref = _reference(tiny_modules, "encoder")
    out = run_program(packages["encoder", "fp32"], feed, numerics="fp16")
    err = _errors(out, ref)["encoder"]
    assert np.all(np.isfinite(out["encoder"])) and 1e-4 < err.max() < 5e-2


def test_fp16_emulation_shows_spectrum_overflow(packages, tiny_modules):
    """A loud waveform (PCM scaled to +-300, a classic slip) overflows the float16 power
    spectrum: the emulation returns non-finite mel where float32 is fine."""
    feed, _ = _reference(tiny_modules, "preprocessor")
    loud = dict(feed, audio_signal=feed["audio_signal"] * 300)
    lp = packages["preprocessor", "fp32"]
    assert np.all(np.isfinite(run_program(lp, loud)["mel"]))
    assert not np.all(np.isfinite(run_program(lp, loud, numerics="fp16")["mel"]))


def test_flushing_subnormals_breaks_the_log_guard(packages, tiny_modules):
    """NeMo's ``log(mel + 2**-24)``: 2**-24 is float16's smallest subnormal. Kept, the mel
    stays finite in float16; flushed to zero, silent bins give log(0) = -inf."""
    feed, _ = _reference(tiny_modules, "preprocessor")
    quiet = dict(feed, audio_signal=np.zeros_like(feed["audio_signal"]))
    lp = packages["preprocessor", "fp32"]
    kept = run_program(lp, quiet, numerics="fp16")["mel"]
    flushed = run_program(lp, quiet, numerics="fp16", flush_subnormals=True)["mel"]
    assert np.all(np.isfinite(kept))
    assert not np.all(np.isfinite(flushed))


def _exp_fp16_program():
    """``y = exp(cast(x, fp16)) + 1`` in float16: exp(20) = 4.9e8 overflows float16 (max 65504)."""

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 4))], opset_version=ct.target.iOS17)
    def prog(x):
        e = mb.exp(x=mb.cast(x=x, dtype="fp16"), name="overflowing_exp")
        return mb.cast(x=mb.add(x=e, y=np.float16(1.0), name="after"), dtype="fp32", name="y")

    return prog


def test_stop_on_nonfinite_names_the_op_that_made_inf_from_finite_inputs():
    from parakeet_nb.mlprogram.milexec.executor import NonFiniteError

    executor = MilExecutor(_exp_fp16_program())
    x = np.array([[0.0, 1.0, 2.0, 20.0]], dtype=np.float32)
    silent = executor.run({"x": x})["y"]  # default: IEEE semantics, inf propagates
    assert np.isinf(silent[0, 3]) and np.isfinite(silent[0, :3]).all()
    with pytest.raises(NonFiniteError) as info:
        executor.run({"x": x}, stop_on_nonfinite=True)
    message = str(info.value)
    assert "'exp' named 'overflowing_exp'" in message and "#" in message
    assert "1 inf and 0 NaN of 4 values" in message and "numerics fp32" in message
    assert "after" not in message
    # finite everywhere: no stop; inf already in the input: propagated, not made, no stop
    assert np.isfinite(executor.run({"x": np.zeros((1, 4), np.float32)}, stop_on_nonfinite=True)["y"]).all()
    assert np.isinf(executor.run({"x": np.full((1, 4), np.inf, np.float32)}, stop_on_nonfinite=True)["y"]).all()
