"""The static auditor (``parakeet_nb.ane.audit``) and ``parakeet-nb audit`` on small ML Programs.

Programs are built with coremltools' MIL builder (or converted from a two-op torch module
for flexible inputs) and saved as real ``.mlpackage`` folders, so the auditor reads them
exactly as it reads an exported model.
"""

from __future__ import annotations

import json
import re
import shutil
import zipfile
from pathlib import Path

import pytest

from parakeet_nb import _quiet

_quiet.import_heavy()

import coremltools as ct  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from coremltools.converters.mil import Builder as mb  # noqa: E402

from parakeet_nb import cli  # noqa: E402
from parakeet_nb.ane.audit import AuditReport, audit  # noqa: E402
from parakeet_nb.ane.layout import device_error_text  # noqa: E402
from parakeet_nb.mlprogram.load import ModelReadError, load_program  # noqa: E402

W240000_TEXT = (
    "Invalid layer: Tensor dimensions N1D1C1H1W240000 are not within supported range, "
    "N[1-65536] D[1-16384] C[1-65536] H[1-16384] W[1-16384]."
)
REPORT_KEYS = {
    "path", "clean", "ops", "tensors_checked", "widest_axis", "widest_tensor",
    "flexible_inputs", "first_error_text", "findings",
}
FINDING_KEYS = {
    "index", "op_type", "op_name", "role", "param", "tensor", "shape", "ndchw",
    "violations", "ambiguous", "error_text",
}


# --------------------------------------------------------------------------- programs


def _relu_program(shape):
    @mb.program(input_specs=[mb.TensorSpec(shape=shape)])
    def prog(x):
        return mb.relu(x=x)

    return prog


@mb.program(input_specs=[mb.TensorSpec(shape=(1, 128))])
def _tile_program(x):
    wide = mb.tile(x=x, reps=(1, 200))  # [1, 25600] from a [1, 128] input
    return mb.reduce_sum(x=wide, axes=[1], keep_dims=True)


@mb.program(input_specs=[mb.TensorSpec(shape=(1, 10000)), mb.TensorSpec(shape=(1, 10000))])
def _concat_program(a, b):
    wide = mb.concat(values=[a, b], axis=1)  # [1, 20000]
    return mb.reduce_mean(x=wide, axes=[1], keep_dims=True)


@mb.program(input_specs=[mb.TensorSpec(shape=(128, 200))])
def _reshape_program(x):
    flat = mb.reshape(x=x, shape=(1, 25600))
    return mb.reduce_max(x=flat, axes=[1], keep_dims=True)


@mb.program(input_specs=[mb.TensorSpec(shape=(1, 128)), mb.TensorSpec(shape=(1,))])
def _cond_program(x, p):
    pred = mb.greater(x=mb.reduce_sum(x=p, axes=[0]), y=0.0)

    def wide_branch():
        return mb.reduce_sum(x=mb.tile(x=x, reps=(1, 200)), axes=[1], keep_dims=True)

    def narrow_branch():
        return mb.reduce_sum(x=x, axes=[1], keep_dims=True)

    return mb.cond(pred=pred, _true_fn=wide_branch, _false_fn=narrow_branch)


class _TwoOps(torch.nn.Module):
    def forward(self, x):
        return torch.relu(x) * 2.0


class _Positions(torch.nn.Module):
    """Positions ``[3, len(x) // 2]`` made from the input's shape: the ``tile`` that builds
    them has sizes coremltools names with fresh symbols, unrelated to the input's."""

    def forward(self, x):
        n = x.shape[-1] // 2
        return torch.arange(n, dtype=x.dtype).unsqueeze(0).expand(3, n) * 2.0


def _convert_flexible(path: Path, upper_bound: int, module: type[torch.nn.Module] = _TwoOps) -> Path:
    traced = torch.jit.trace(module().eval(), torch.randn(1, 100))
    shape = (1, ct.RangeDim(lower_bound=1, upper_bound=upper_bound, default=100))
    model = ct.convert(
        traced,
        inputs=[ct.TensorType(name="x", shape=shape, dtype=np.float32)],
        outputs=[ct.TensorType(name="y")],
        convert_to="mlprogram",
        compute_precision=ct.precision.FLOAT32,
        minimum_deployment_target=ct.target.iOS17,
        skip_model_load=True,
    )
    model.save(str(path))
    return path


@pytest.fixture(scope="module")
def packages(save_mlprogram, tmp_path_factory) -> dict[str, Path]:
    """Every small package the tests read (built once for this module)."""
    folder = tmp_path_factory.mktemp("audit_packages")
    found = {
        "clean": save_mlprogram(_relu_program((1, 16384)), "clean"),
        "over": save_mlprogram(_relu_program((1, 16385)), "over"),
        "tile": save_mlprogram(_tile_program, "tile"),
        "concat": save_mlprogram(_concat_program, "concat"),
        "reshape": save_mlprogram(_reshape_program, "reshape"),
        "cond": save_mlprogram(_cond_program, "cond"),
        "ambiguous": save_mlprogram(_relu_program((20000, 1, 1, 1)), "ambiguous"),
        "n_and_d_over": save_mlprogram(_relu_program((70000, 1, 1, 1)), "n_and_d_over"),
        "flex_ok": _convert_flexible(folder / "flex_ok.mlpackage", 16384),
        "flex_over": _convert_flexible(folder / "flex_over.mlpackage", 20000),
        "derived_ok": _convert_flexible(folder / "derived_ok.mlpackage", 16384, _Positions),
        "derived_over": _convert_flexible(folder / "derived_over.mlpackage", 40000, _Positions),
    }
    # coremltools refuses an unbounded RangeDim for ML Programs, but a spec can declare one
    # (upperBound -1): make it from the bounded package.
    bounded = ct.models.MLModel(str(found["flex_ok"]), skip_model_load=True)
    spec = bounded.get_spec()
    spec.description.input[0].type.multiArrayType.shapeRange.sizeRanges[1].upperBound = -1
    unbounded = folder / "flex_unbounded.mlpackage"
    ct.models.MLModel(spec, weights_dir=bounded.weights_dir, skip_model_load=True).save(str(unbounded))
    found["flex_unbounded"] = unbounded
    return found


def _unsymbol(text: str) -> str:
    return re.sub(r"\bis\d+\b", "is#", text)


def _summary(report: AuditReport) -> list[tuple[int, str, str, str]]:
    return [(f.index, f.op_type, f.role, f.tensor) for f in report.findings]


# --------------------------------------------------------------------------- the auditor


def test_clean_at_16384(packages):
    report = audit(packages["clean"])
    assert report.clean and report.exit_code == 0
    assert report.findings == []
    assert report.first_error_text is None
    assert report.widest_axis == 16384 and report.widest_tensor == "x"
    assert report.ops == 1
    assert report.tensors_checked == 3  # function input, relu's input, relu's output
    assert "clean" in report.format_text()


def test_broken_at_16385_on_the_input_and_the_op_in_program_order(packages):
    report = audit(packages["over"])
    assert not report.clean and report.exit_code == 1
    relu_out = report.findings[-1].tensor
    assert _summary(report) == [(-1, "input", "function input", "x"), (0, "relu", "input", "x"), (0, "relu", "output", relu_out)]
    assert relu_out != "x"
    assert report.findings[1].param == "x"
    text = device_error_text("N1D1C1H1W16385")
    assert all(f.error_text == text and f.ndchw == "N1D1C1H1W16385" for f in report.findings)
    assert all([(v.axis, v.size) for v in f.violations] == [("W", 16385)] for f in report.findings)
    assert report.first_error_text == text
    assert report.offending_tensors() == ["x", relu_out]
    assert report.widest_axis == 16385
    lines = report.format_text().splitlines()
    assert lines[-1] == text and lines[-2] == "device error for the first:"
    assert "3 tensor uses over the ANE limits (2 distinct tensors)" in lines[1]


@pytest.mark.parametrize("name, op_type, size", [("tile", "tile", 25600), ("concat", "concat", 20000), ("reshape", "reshape", 25600)])
def test_an_op_output_alone_too_wide(packages, name, op_type, size):
    """Small inputs, one op makes a too-wide tensor: found at the op that makes it, then its consumer."""
    report = audit(packages[name])
    assert not report.clean
    first, second = report.findings  # nothing else: the inputs are within range
    assert (first.op_type, first.role) == (op_type, "output")
    assert second.role == "input" and second.tensor == first.tensor
    assert second.op_type.startswith("reduce_") and second.index > first.index
    assert first.ndchw == f"N1D1C1H1W{size}"
    assert report.first_error_text == device_error_text(f"N1D1C1H1W{size}")
    assert report.widest_axis == size and report.widest_tensor == first.tensor


def test_ops_inside_nested_blocks_are_audited(packages):
    report = audit(packages["cond"])
    assert [(f.op_type, f.role) for f in report.findings] == [("tile", "output"), ("reduce_sum", "input")]
    assert report.findings[0].ndchw == "N1D1C1H1W25600"


def test_rank4_ambiguous_finding_is_flagged(packages):
    report = audit(packages["ambiguous"])
    assert report.findings and all(f.ambiguous for f in report.findings)
    assert report.findings[0].ndchw == "N1D20000C1H1W1"
    assert "(ambiguous N/D)" in report.format_text()
    over = audit(packages["n_and_d_over"])
    assert over.findings and not any(f.ambiguous for f in over.findings)
    assert "(ambiguous N/D)" not in over.format_text()


def test_flexible_input_bounded_at_the_limit_is_clean(packages):
    report = audit(packages["flex_ok"])
    assert report.clean
    ((name, described),) = report.flexible_inputs.items()
    assert name == "x" and len(described) == 1 and described[0].endswith("<= 16384")
    assert report.widest_axis == 16384


def test_flexible_input_bounded_over_the_limit(packages):
    report = audit(packages["flex_over"])
    assert not report.clean
    assert report.flexible_inputs["x"][0].endswith("<= 20000")
    first = report.findings[0]
    assert (first.role, first.tensor) == ("function input", "x")
    assert [(v.axis, v.size, v.flexible) for v in first.violations] == [("W", 20000, True)]
    assert report.first_error_text == device_error_text("N1D1C1H1W20000")
    # the intermediate tensors follow the input's bound
    assert {f.ndchw for f in report.findings} == {"N1D1C1H1W20000"}
    assert {f.role for f in report.findings} == {"function input", "input", "output"}


def test_sizes_derived_through_shape_ops_are_bounded(packages):
    """``shape -> range_1d`` gives a size coremltools names with a fresh symbol; the
    auditor bounds it by re-loading the program at the input's upper bound."""
    from parakeet_nb.mlprogram.load import load_program

    lp = load_program(packages["derived_ok"])
    (tiled,) = [v for op in lp.main.operations if op.op_type == "tile" for v in op.outputs]
    assert not set(map(str, tiled.shape)) & set(map(str, lp.main.inputs["x"].shape))  # fresh symbols
    report = audit(packages["derived_ok"])
    assert report.clean and report.widest_axis == 16384  # x <= 16384, positions <= [3, 8192]
    over = audit(packages["derived_over"])  # x <= 40000, positions <= [3, 20000]
    assert {f.ndchw for f in over.findings} == {"N1D1C1H1W40000", "N1D1C1H1W20000", "N1D1C1H3W20000"}
    tile = [f for f in over.findings if f.op_type == "tile" and f.role == "output"]
    assert tile and [(v.axis, v.size) for v in tile[0].violations] == [("W", 20000)]


def test_flexible_input_without_upper_bound(packages):
    report = audit(packages["flex_unbounded"])
    assert not report.clean
    assert report.flexible_inputs["x"][0].endswith("unbounded")
    first = report.findings[0]
    assert first.tensor == "x" and first.ndchw == "N1D1C1H1W?"
    assert [(v.axis, v.size, v.flexible) for v in first.violations] == [("W", None, True)]
    assert "unbounded" in first.violations[0].describe()
    assert "unbounded" in report.format_text()


def test_recommendation_for_an_unbounded_input_says_unbounded(packages):
    """compute_units.recommend must not claim 'widest axis 0 > 16384' for an unbounded size."""
    from parakeet_nb.ane.compute_units import recommend

    report = audit(packages["flex_unbounded"])
    rec = recommend(report, {"relu", "mul"}, "fp16")
    assert rec.units == "CPU_AND_GPU"
    assert "axis 0 " not in rec.reason
    assert "unbounded" in rec.reason


def test_report_json_document(packages):
    report = audit(packages["over"])
    doc = json.loads(report.to_json())
    assert set(doc) == REPORT_KEYS
    assert doc["clean"] is False
    assert doc["first_error_text"] == device_error_text("N1D1C1H1W16385")
    assert len(doc["findings"]) == 3
    assert all(set(f) == FINDING_KEYS for f in doc["findings"])
    assert doc["findings"][0]["shape"] == [1, 16385]
    assert doc["findings"][0]["violations"][0]["text"] == "W=16385 exceeds 16384"


def test_load_program_reads_the_main_function(packages):
    loaded = load_program(packages["tile"])
    assert list(loaded.main.inputs) == ["x"]
    assert [op.op_type for op in loaded.main.operations if op.op_type != "const"] == ["tile", "reduce_sum"]


# --------------------------------------------------------------------------- the command line


def test_cli_exit_0_when_clean(packages, capsys):
    assert cli.main(["audit", str(packages["clean"])]) == 0
    out, err = capsys.readouterr()
    assert "clean: no tensor has an axis outside the ANE limits" in out
    assert err == ""


def test_cli_exit_1_and_the_device_text_when_over(packages, capsys):
    assert cli.main(["audit", str(packages["over"])]) == 1
    out, _ = capsys.readouterr()
    assert out.splitlines()[-1] == device_error_text("N1D1C1H1W16385")


def test_cli_limit_caps_the_lines(packages, capsys):
    assert cli.main(["audit", str(packages["over"]), "--limit", "1"]) == 1
    out, _ = capsys.readouterr()
    assert "... and 2 more" in out
    assert sum(1 for line in out.splitlines() if "N1D1C1H1W16385:" in line) == 1


@pytest.mark.parametrize("name, code", [("clean", 0), ("over", 1), ("flex_over", 1)])
def test_cli_json_parses(packages, capsys, name, code):
    assert cli.main(["audit", str(packages[name]), "--json"]) == code
    out, _ = capsys.readouterr()
    doc = json.loads(out)  # the whole of stdout is one JSON document
    assert set(doc) == REPORT_KEYS
    assert doc["clean"] is (code == 0)
    # symbolic sizes get fresh names (is12, is15...) each time a program is loaded
    assert _unsymbol(out.strip()) == _unsymbol(audit(packages[name]).to_json())
    if code:
        assert doc["first_error_text"] == doc["findings"][0]["error_text"]
    else:
        assert doc["first_error_text"] is None and doc["findings"] == []


# --------------------------------------------------------------------------- unreadable input: exit 2


@pytest.fixture(scope="module")
def neuralnetwork_model(tmp_path_factory) -> Path:
    """An old NeuralNetwork ``.mlmodel`` (coremltools 9 still writes them on Linux)."""
    path = tmp_path_factory.mktemp("nn") / "old.mlmodel"
    traced = torch.jit.trace(_TwoOps().eval(), torch.randn(1, 100))
    model = ct.convert(
        traced,
        inputs=[ct.TensorType(name="x", shape=(1, 100))],
        outputs=[ct.TensorType(name="y")],
        convert_to="neuralnetwork",
        minimum_deployment_target=ct.target.iOS14,
    )
    model.save(str(path))
    assert model.get_spec().WhichOneof("Type") == "neuralNetwork"
    return path


def _corrupt_copy(src: Path, dst: Path, how: str) -> Path:
    shutil.copytree(src, dst)
    model = dst / "Data" / "com.apple.CoreML" / "model.mlmodel"
    data = model.read_bytes()
    if how == "truncated":
        model.write_bytes(data[: len(data) // 2])
    elif how == "garbled":
        model.write_bytes(bytes(b ^ 0x5A for b in data))
    elif how == "empty":
        model.write_bytes(b"")
    elif how == "missing_model":
        model.unlink()
    elif how == "bad_manifest":
        (dst / "Manifest.json").write_text("{not json")
    return dst


def _assert_exit_2(capsys, argv, *words):
    assert cli.main(argv) == 2
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("parakeet-nb audit: error: ")
    for word in words:
        assert word in lines[0]
    return lines[0]


def test_exit_2_missing_path(tmp_path, capsys):
    _assert_exit_2(capsys, ["audit", str(tmp_path / "nope.mlpackage")], "no such file")


def test_exit_2_plain_file(tmp_path, capsys):
    plain = tmp_path / "notes.txt"
    plain.write_text("not a model\n")
    _assert_exit_2(capsys, ["audit", str(plain)], "not a readable Core ML model")


def test_exit_2_folder_that_is_not_a_package(tmp_path, capsys):
    (tmp_path / "something.txt").write_text("x")
    _assert_exit_2(capsys, ["audit", str(tmp_path)], "not a Core ML package")


def test_exit_2_zip_archive(packages, tmp_path, capsys):
    archive = tmp_path / "model.mlpackage.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for p in packages["clean"].rglob("*"):
            zf.write(p, p.relative_to(packages["clean"].parent))
    _assert_exit_2(capsys, ["audit", str(archive)], "zip")


def test_exit_2_old_neuralnetwork_model(neuralnetwork_model, capsys):
    _assert_exit_2(capsys, ["audit", str(neuralnetwork_model)], "NeuralNetwork", "mlprogram")


@pytest.mark.parametrize("how", ["truncated", "garbled", "empty", "missing_model", "bad_manifest"])
def test_exit_2_corrupt_package(packages, tmp_path, capsys, how):
    broken = _corrupt_copy(packages["over"], tmp_path / f"{how}.mlpackage", how)
    _assert_exit_2(capsys, ["audit", str(broken)], str(broken))
    with pytest.raises(ModelReadError):
        load_program(broken)


def test_model_read_error_is_a_value_error():
    assert issubclass(ModelReadError, ValueError)


# --------------------------------------------------------------------------- the real tiny exports


def test_fused_mel_encoder_exits_1_with_the_w240000_text(tiny_export, capsys):
    assert cli.main(["audit", str(tiny_export / "parakeet_mel_encoder.mlpackage")]) == 1
    out, _ = capsys.readouterr()
    lines = out.splitlines()
    assert W240000_TEXT in lines
    assert lines[-1] == W240000_TEXT  # the first offending tensor is the waveform input
    report = audit(tiny_export / "parakeet_mel_encoder.mlpackage")
    first = report.findings[0]
    assert (first.role, first.tensor, first.shape) == ("function input", "audio_signal", (1, 240000))


def test_split_encoder_exits_0(tiny_export, capsys):
    assert cli.main(["audit", str(tiny_export / "parakeet_encoder.mlpackage")]) == 0
    out, _ = capsys.readouterr()
    assert "clean" in out
    assert "widest axis 1501" in out


def test_preprocessor_exits_1(tiny_export, capsys):
    assert cli.main(["audit", str(tiny_export / "parakeet_preprocessor.mlpackage"), "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["first_error_text"] == W240000_TEXT
    assert doc["widest_axis"] > 16384
