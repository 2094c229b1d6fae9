"""The ``parakeet-nb`` command line (``parakeet_nb.cli``): parsing, export, one-line errors, exit codes.

Audit exit codes on real programs are in ``test_audit.py``; the export's files and
metadata in ``test_export.py``. Here: what the user types and what they get back.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
from pathlib import Path

import pytest

from parakeet_nb import cli
from parakeet_nb.model import checkpoint as checkpoint_module


def _run_error(capsys, argv) -> str:
    """Run ``argv``; it must exit 2 with nothing on stdout and exactly one line on stderr."""
    assert cli.main(argv) == 2
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"parakeet-nb {argv[0]}: error: ")
    return lines[0]


# --------------------------------------------------------------------------- parsing


def test_parser_defaults():
    args = cli.build_parser().parse_args(["export"])
    # --preset has no parser default (so that --preset tiny --nemo X is refused); unset means tiny
    assert (args.preset, args.nemo, args.out, args.only, args.precision, args.compile, args.quiet) == (
        None, None, "build/parakeet_coreml", None, "auto", False, False,
    )
    plan = cli.build_parser().parse_args(["plan", "x.mlpackage"])
    assert plan.assume_fp16 is False  # the typed reading unless the hypothetical one is asked for
    assert cli.build_parser().parse_args(["run", "x.mlpackage"]).allow_nonfinite is False
    args = cli.build_parser().parse_args(["audit", "x.mlpackage"])
    assert (args.path, args.json, args.limit) == ("x.mlpackage", False, 40)


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["nonsense"],
        ["audit"],
        ["export", "--preset", "huge"],
        ["export", "--precision", "fp8"],
        ["export", "--preset", "full", "--nemo", "x.nemo"],
        ["export", "--preset", "tiny", "--nemo", "x.nemo"],
    ],
    ids=[
        "no-command", "unknown-command", "audit-no-path", "unknown-preset", "unknown-precision",
        "preset-full-and-nemo", "preset-tiny-and-nemo",
    ],
)
def test_usage_errors_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as caught:
        cli.main(argv)
    assert caught.value.code == 2
    assert "usage: parakeet-nb" in capsys.readouterr().err


def test_help_exits_0(capsys):
    with pytest.raises(SystemExit) as caught:
        cli.main(["--help"])
    assert caught.value.code == 0
    out = capsys.readouterr().out
    assert "audit" in out and "export" in out


def test_interrupt_exits_130(monkeypatch, capsys, tmp_path):
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_cmd_audit", interrupted)
    assert cli.main(["audit", str(tmp_path)]) == 130
    assert capsys.readouterr().err.strip() == "parakeet-nb: interrupted"


# --------------------------------------------------------------------------- export


def test_export_only_writes_the_named_components(tmp_path, capsys):
    out = tmp_path / "out"
    assert cli.main(["export", "--only", " joint , joint_decision ", "--out", str(out), "--quiet"]) == 0
    stdout = capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == [
        "compile.sh", "metadata.json", "parakeet_joint.mlpackage", "parakeet_joint_decision.mlpackage",
    ]
    meta = json.loads((out / "metadata.json").read_text())
    assert list(meta["components"]) == ["joint", "joint_decision"]
    assert meta["model"]["source"] == "preset:tiny"
    lines = stdout.strip().splitlines()
    assert lines[0].split()[0] == "component"
    assert [line.split()[0] for line in lines[1:3]] == ["joint", "joint_decision"]
    assert lines[-1] == f"wrote 2 packages and metadata.json to {out}; compile.sh there compiles them to .mlmodelc on a Mac"


def test_export_progress_goes_to_stderr(tmp_path, capsys):
    out = tmp_path / "out"
    assert cli.main(["export", "--only", "joint", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "exported joint (1/1)" in captured.err
    assert "exported joint" not in captured.out


def test_unknown_component_names(tmp_path, capsys):
    line = _run_error(capsys, ["export", "--only", "joint,bogus,nope", "--out", str(tmp_path / "out")])
    assert "unknown components bogus, nope" in line
    assert "preprocessor" in line and "joint_decision" in line  # says what is expected
    assert not (tmp_path / "out").exists()


def test_out_path_is_a_file(tmp_path, capsys):
    target = tmp_path / "taken"
    target.write_text("keep me")
    line = _run_error(capsys, ["export", "--only", "joint", "--out", str(target)])
    assert "exists and is a file" in line
    assert target.read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]


def test_missing_checkpoint(tmp_path, capsys):
    line = _run_error(capsys, ["export", "--nemo", str(tmp_path / "missing.nemo"), "--out", str(tmp_path / "out")])
    assert "missing.nemo: no such file" in line
    assert not (tmp_path / "out").exists()


def test_unreadable_checkpoint(tmp_path, capsys, monkeypatch):
    path = tmp_path / "locked.nemo"
    with tarfile.open(path, "w"):
        pass
    path.chmod(0)
    if os.access(path, os.R_OK):  # root reads anything: emulate a user without permission
        real_access = os.access
        monkeypatch.setattr(
            checkpoint_module.os, "access",
            lambda p, mode, *a, **k: False if Path(p) == path and mode == os.R_OK else real_access(p, mode, *a, **k),
        )
    try:
        line = _run_error(capsys, ["export", "--nemo", str(path), "--out", str(tmp_path / "out")])
    finally:
        path.chmod(0o600)
    assert "not readable (permission denied)" in line


def test_non_tar_checkpoint(tmp_path, capsys):
    path = tmp_path / "model.nemo"
    path.write_text("not an archive\n" * 100)
    line = _run_error(capsys, ["export", "--nemo", str(path), "--out", str(tmp_path / "out")])
    assert "not a .nemo checkpoint" in line


def test_wrong_type_checkpoint(tmp_path, capsys):
    path = tmp_path / "other.nemo"
    with tarfile.open(path, "w:gz") as tf:
        data = b"name: not a model\n"
        info = tarfile.TarInfo("config.yaml")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    line = _run_error(capsys, ["export", "--nemo", str(path), "--out", str(tmp_path / "out")])
    assert "could not restore the checkpoint" in line
    assert not (tmp_path / "out").exists()


def test_audit_missing_path_exits_2(tmp_path, capsys):
    line = _run_error(capsys, ["audit", str(tmp_path / "nothing.mlpackage")])
    assert line.endswith("nothing.mlpackage: no such file or directory")


# --------------------------------------------------------------------------- run: no silent NaN


@pytest.fixture(scope="module")
def exp_program(save_mlprogram):
    """An fp32 ``y = exp(x) * 2``: exp(20) = 4.9e8 is finite in float32, inf in float16."""
    from parakeet_nb import _quiet

    _quiet.import_heavy()
    import coremltools as ct
    from coremltools.converters.mil import Builder as mb

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 3))], opset_version=ct.target.iOS17)
    def prog(x):
        return mb.mul(x=mb.exp(x=x, name="big_exp"), y=2.0, name="y")

    return save_mlprogram(prog, "exp")


def test_run_stops_at_the_op_that_made_inf_and_writes_nothing(exp_program, tmp_path, capsys):
    import numpy as np

    np.save(tmp_path / "x.npy", np.array([[0.0, 1.0, 20.0]], np.float32))
    argv = ["run", str(exp_program), "--input", f"x={tmp_path / 'x.npy'}", "--out", str(tmp_path / "out")]
    assert cli.main([*argv, "--fp16"]) == 1
    out, err = capsys.readouterr()
    assert out == "" and len(err.strip().splitlines()) == 1
    assert "'exp' named 'big_exp'" in err and "numerics fp16" in err and "--allow-nonfinite" in err
    assert not (tmp_path / "out").exists()
    assert cli.main(argv) == 0  # float32: exp(20) is finite
    assert np.isfinite(np.load(tmp_path / "out" / "y.npy")).all()
    assert cli.main([*argv, "--fp16", "--allow-nonfinite"]) == 0
    assert np.isinf(np.load(tmp_path / "out" / "y.npy")[0, 2])
    assert "y holds inf/NaN (written because of --allow-nonfinite)" in capsys.readouterr().err


def test_run_refuses_to_write_nonfinite_carried_from_the_inputs(exp_program, tmp_path, capsys):
    import numpy as np

    np.save(tmp_path / "x.npy", np.array([[0.0, np.nan, 1.0]], np.float32))
    assert cli.main(["run", str(exp_program), "--input", f"x={tmp_path / 'x.npy'}", "--out", str(tmp_path / "o")]) == 1
    assert "output(s) y hold inf/NaN carried from non-finite inputs" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_audit_and_plan_of_an_fp32_chunked_package_say_it_is_float32_only(tmp_path, capsys):
    out = tmp_path / "fp32"
    assert cli.main(["export", "--only", "preprocessor_chunked,joint", "--precision", "fp32", "--out", str(out),
                     "--quiet"]) == 0
    capsys.readouterr()
    chunked, joint = out / "parakeet_preprocessor_chunked.mlpackage", out / "parakeet_joint.mlpackage"
    for argv in (["audit", str(chunked)], ["plan", str(chunked)]):
        cli.main(argv)
        notes = [line for line in capsys.readouterr().out.splitlines() if line.startswith("note: fp32 chunked")]
        assert len(notes) == 1 and "float32-only" in notes[0] and "fp16-safe" in notes[0], argv
    assert cli.main(["audit", str(joint)]) == 0 and "float32-only" not in capsys.readouterr().out
    meta = json.loads((out / "metadata.json").read_text())["components"]
    assert {e["compute_units"]["compute_units"] for e in meta.values()} == {"CPU_AND_GPU"}
