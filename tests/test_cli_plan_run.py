"""`parakeet-nb plan` and `parakeet-nb run` on the tiny exports."""

import json

import numpy as np
import pytest

from parakeet_nb import cli
from parakeet_nb.ane.layout import device_error_text


def test_plan_greedy_fails_the_fused_model_with_the_device_text(tiny_export, capsys, tmp_path):
    """The default export keeps the fused model float32 (CPU/GPU); read as if fp16-typed it fails."""
    png = tmp_path / "plan.png"
    code = cli.main(["plan", str(tiny_export / "parakeet_mel_encoder.mlpackage"),
                     "--compute-units", "CPU_AND_NE", "--png", str(png), "--json", "--assume-fp16"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 1 and not doc["valid"]
    assert doc["validation_error"] == device_error_text("N1D1C1H1W240000")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plan_typed_default_fails_an_fp16_fused_model(tiny_modules, capsys, tmp_path):
    """What users ship when they convert at coremltools' default (FLOAT16): the typed reading fails it."""
    from parakeet_nb.coreml.export import export

    export(tiny_modules, tmp_path / "fp16", only=["mel_encoder"], precision="fp16")
    fused = str(tmp_path / "fp16" / "parakeet_mel_encoder.mlpackage")
    code = cli.main(["plan", fused, "--compute-units", "CPU_AND_NE", "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 1 and doc["typed_execution"] and doc["validation_error"] == device_error_text("N1D1C1H1W240000")
    assert cli.main(["plan", fused, "--compute-units", "CPU_AND_GPU"]) == 0  # no ANE, no failure


@pytest.mark.parametrize("name", ["parakeet_encoder.mlpackage", "parakeet_mel_encoder_chunked.mlpackage"])
def test_plan_passes_the_encoder_and_the_chunked_model(tiny_export, capsys, name):
    assert cli.main(["plan", str(tiny_export / name)]) == 0
    assert "ANE validation" in capsys.readouterr().out


def test_plan_unreadable_input(capsys, tmp_path):
    assert cli.main(["plan", str(tmp_path)]) == 2
    assert "not a Core ML package" in capsys.readouterr().err


def test_run_audio_then_npy_inputs(tiny_export, capsys, tmp_path):
    assert cli.main(["run", str(tiny_export / "parakeet_preprocessor_chunked.mlpackage"),
                     "--audio", "data/speech_short.wav", "--out", str(tmp_path)]) == 0
    mel = np.load(tmp_path / "mel.npy")
    assert mel.shape == (1, 128, 1501) and int(np.load(tmp_path / "mel_length.npy")[0]) == 35947 // 160
    assert cli.main(["run", str(tiny_export / "parakeet_encoder.mlpackage"), "--input", f"mel={tmp_path / 'mel.npy'}",
                     "--input", f"mel_length={tmp_path / 'mel_length.npy'}", "--out", str(tmp_path)]) == 0
    assert np.load(tmp_path / "encoder.npy").shape[:2] == (1, 64)


@pytest.mark.parametrize("args, match", [
    (["--input", "mel"], "expected NAME=FILE.npy"),
    (["--input", "nope=x.npy"], "has no input 'nope'"),
    (["--input", "mel=/nonexistent.npy"], "cannot read"),
    ([], "missing inputs mel, mel_length"),
])
def test_run_errors(tiny_export, capsys, args, match):
    assert cli.main(["run", str(tiny_export / "parakeet_encoder.mlpackage"), *args]) == 2
    assert match in capsys.readouterr().err


@pytest.fixture(scope="module")
def stateful_package(tmp_path_factory):
    """An iOS18 accumulator package: ``acc += x``, returns ``acc * 2``."""
    import coremltools as ct
    from coremltools.converters.mil import Builder as mb
    from coremltools.converters.mil.mil import types

    @mb.program(input_specs=[mb.StateTensorSpec((3,), dtype=types.fp16), mb.TensorSpec((3,), dtype=types.fp16)],
                opset_version=ct.target.iOS18)
    def prog(acc, x):
        total = mb.coreml_update_state(state=acc, value=mb.add(x=mb.read_state(input=acc), y=x))
        return mb.mul(x=total, y=np.float16(2), name="doubled")

    path = tmp_path_factory.mktemp("stateful") / "acc.mlpackage"
    ct.convert(prog, convert_to="mlprogram", minimum_deployment_target=ct.target.iOS18,
               skip_model_load=True).save(str(path))
    return path


def test_run_a_stateful_package_from_zeros_then_from_a_given_state(stateful_package, capsys, tmp_path):
    np.save(tmp_path / "x.npy", np.array([1, 2, 3], np.float32))
    assert cli.main(["run", str(stateful_package), "--input", f"x={tmp_path / 'x.npy'}", "--out", str(tmp_path / "a")]) == 0
    assert "states/acc: [3] float16" in capsys.readouterr().out
    assert np.load(tmp_path / "a" / "states" / "acc.npy").tolist() == [1, 2, 3]
    assert cli.main(["run", str(stateful_package), "--input", f"x={tmp_path / 'x.npy'}",
                     "--state", f"acc={tmp_path / 'a' / 'states' / 'acc.npy'}", "--out", str(tmp_path / "b")]) == 0
    assert np.load(tmp_path / "b" / "states" / "acc.npy").tolist() == [2, 4, 6]
    assert np.load(tmp_path / "b" / "doubled.npy").tolist() == [4, 8, 12]


@pytest.mark.parametrize("state, match", [
    ("kv=STATE", "--state kv: the program has no state 'kv' (it has acc)"),
    ("acc=WRONG", "--state acc: state 'acc': shape [2] does not match the declared [3]"),
    ("acc=INF", "non-finite: output(s) doubled and state(s) acc hold inf/NaN carried from non-finite inputs, states"),
])
def test_run_state_errors(stateful_package, capsys, tmp_path, state, match):
    np.save(tmp_path / "x.npy", np.zeros(3, np.float32))
    np.save(tmp_path / "WRONG.npy", np.zeros(2, np.float16))
    np.save(tmp_path / "INF.npy", np.array([np.inf, 0, 0], np.float16))
    name, _, file = state.partition("=")
    code = cli.main(["run", str(stateful_package), "--input", f"x={tmp_path / 'x.npy'}",
                     "--state", f"{name}={tmp_path / (file + '.npy')}", "--out", str(tmp_path / "out")])
    assert code == (1 if file == "INF" else 2)
    assert match in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")  # a coremltools pass
def test_audit_and_plan_read_tensor_lists_and_loops(tmp_path, capsys):
    """A list grown in a while loop (data-dependent length): the tools check the tensors, skip
    the list values themselves (not tensors) and report the unbounded gathered axis."""
    import coremltools as ct
    from coremltools.converters.mil import Builder as mb

    @mb.program(input_specs=[mb.TensorSpec((1,)), mb.TensorSpec((2,))], opset_version=ct.target.iOS17)
    def prog(num_iters, update):
        def cond(i, ls):
            return mb.less(x=mb.cast(x=i, dtype="fp32"), y=num_iters)

        def body(i, ls):
            return mb.add(x=i, y=1), mb.list_write(ls=ls, index=i, value=update)

        _, ls = mb.while_loop(_cond=cond, _body=body,
                              loop_vars=(np.int32(0), mb.make_list(init_length=1, elem_shape=(2,))))
        return mb.list_gather(ls=ls, indices=mb.range_1d(start=0, end=mb.list_length(ls=ls), step=1))

    path = tmp_path / "loop.mlpackage"
    ct.convert(prog, convert_to="mlprogram", minimum_deployment_target=ct.target.iOS17,
               skip_model_load=True).save(str(path))
    capsys.readouterr()
    assert cli.main(["audit", str(path)]) == 1
    out = capsys.readouterr().out
    assert "list_gather" in out and "H is unbounded" in out and "make_list" not in out
    assert cli.main(["plan", str(path)]) == 0
    assert "no op is placed on the ANE" in capsys.readouterr().out
