"""Compute-unit recommendations follow typed execution: never the ANE for an fp32 program.

Small programs are built with coremltools' MIL builder and converted at FLOAT32 or
FLOAT16; each is audited and its precision read by the planner, as ``export`` does.
"""

from pathlib import Path

import numpy as np
import pytest

from parakeet_nb import _quiet
from parakeet_nb.ane import compute_units
from parakeet_nb.ane.audit import audit_program
from parakeet_nb.ane.planner import program_precision
from parakeet_nb.mlprogram.load import load_program

_quiet.import_heavy()
import coremltools as ct  # noqa: E402
from coremltools.converters.mil import Builder as mb  # noqa: E402


def _linear(width: int):
    weight = np.linspace(-1, 1, 8 * 8, dtype=np.float32).reshape(8, 8)

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, width, 8))], opset_version=ct.target.iOS17)
    def prog(x):
        return mb.relu(x=mb.linear(x=x, weight=weight), name="y")

    return prog


def _saved(tmp: Path, width: int, precision) -> Path:
    path = tmp / f"linear_{width}_{'fp16' if precision == ct.precision.FLOAT16 else 'fp32'}.mlpackage"
    if not path.exists():
        ct.convert(
            _linear(width), convert_to="mlprogram", compute_precision=precision,
            minimum_deployment_target=ct.target.iOS17, skip_model_load=True,
        ).save(str(path))
    return path


@pytest.fixture(scope="module")
def programs(tmp_path_factory):
    """``{(within|over, fp32|fp16): loaded program}``; ``over`` has a 20000-wide axis (> 16384)."""
    tmp = tmp_path_factory.mktemp("compute_units")
    return {
        (kind, name): load_program(_saved(tmp, width, precision))
        for kind, width in (("within", 64), ("over", 20000))
        for name, precision in (("fp32", ct.precision.FLOAT32), ("fp16", ct.precision.FLOAT16))
    }


def _recommend(loaded, extra_ops=()):
    ops = {op.op_type for op in loaded.main.operations} | set(extra_ops)
    return compute_units.recommend(audit_program(loaded), ops, program_precision(loaded))


def test_the_programs_are_typed_as_converted(programs):
    assert program_precision(programs["within", "fp32"]) == "fp32"
    assert program_precision(programs["within", "fp16"]) == "fp16"


def test_an_fp32_program_within_the_limits_gets_cpu_and_gpu_with_the_reason(programs):
    rec = _recommend(programs["within", "fp32"])
    assert rec.units == "CPU_AND_GPU" and rec.swift == ".cpuAndGPU"
    assert rec.reason.startswith("fp32-typed: Core ML runs it on CPU/GPU")


def test_an_fp16_program_within_the_limits_gets_cpu_and_ne(programs):
    rec = _recommend(programs["within", "fp16"])
    assert rec.units == "CPU_AND_NE" and rec.swift == ".cpuAndNeuralEngine"
    assert rec.reason.startswith("fp16-typed, every axis within the ANE limits")
    assert "LSTM" in _recommend(programs["within", "fp16"], {"lstm"}).reason


@pytest.mark.parametrize("precision", ["fp16", "fp32"])
def test_a_program_over_the_limits_gets_cpu_and_gpu_whatever_its_type(programs, precision):
    rec = _recommend(programs["over", precision])
    assert rec.units == "CPU_AND_GPU"
    assert "over the ANE limits" in rec.reason and "20000" in rec.reason
    assert ("fp32-typed" in rec.reason) == (precision == "fp32")


@pytest.mark.parametrize("precision", ["fp32", "none"])
@pytest.mark.parametrize("ops", [set(), {"linear"}, {"lstm", "conv"}])
def test_no_float16_op_is_never_recommended_the_ane(programs, precision, ops):
    report = audit_program(programs["within", "fp16"])  # clean: only the precision decides
    rec = compute_units.recommend(report, ops, precision)
    assert rec.units == "CPU_AND_GPU"


def test_mixed_programs_may_use_the_ane_and_say_where_fp32_runs(programs):
    rec = compute_units.recommend(audit_program(programs["within", "fp16"]), {"linear"}, "mixed")
    assert rec.units == "CPU_AND_NE" and "float32-typed ops run on the CPU" in rec.reason
