"""Runtime configuration from metadata.json, the Swift loader, and the macOS gate."""

import json
import platform

import pytest

from parakeet_nb.teach import envcheck
from parakeet_nb.coreml import runtime


def test_configurations_follow_the_audit(tiny_export):
    meta = runtime.read_metadata(tiny_export)
    configs = {c.name: c for c in runtime.configurations(meta)}
    for name, config in configs.items():
        expected = "CPU_AND_NE" if meta["components"][name]["audit"]["clean"] else "CPU_AND_GPU"
        assert config.compute_units == expected, name
    assert configs["preprocessor"].swift == ".cpuAndGPU"
    assert configs["encoder"].swift == ".cpuAndNeuralEngine"
    assert "240000" in configs["preprocessor"].reason or "240512" in configs["preprocessor"].reason
    assert "LSTM" in configs["decoder"].reason


def test_swift_loader_sets_each_component(tiny_export):
    meta = runtime.read_metadata(tiny_export)
    swift = runtime.swift_loader(meta, ["preprocessor", "encoder", "jointDecision".replace("D", "_d")])
    assert swift.count("MLModelConfiguration()") == 3
    assert "preprocessorConfig.computeUnits = .cpuAndGPU" in swift
    assert "encoderConfig.computeUnits = .cpuAndNeuralEngine" in swift
    assert 'appendingPathComponent("parakeet_joint_decision.mlmodelc")' in swift
    assert swift.count("{") == swift.count("}")
    with pytest.raises(ValueError, match="not in this export: nope"):
        runtime.swift_loader(meta, ["nope"])


def test_read_metadata_errors(tmp_path):
    with pytest.raises(ValueError, match="no metadata.json"):
        runtime.read_metadata(tmp_path)
    (tmp_path / "metadata.json").write_text("{")
    with pytest.raises(ValueError, match="not valid JSON"):
        runtime.read_metadata(tmp_path)


@pytest.mark.skipif(platform.system() == "Darwin", reason="checks the non-macOS path")
def test_predict_is_refused_off_macos_with_the_reason(tiny_export):
    ok, why = runtime.can_predict()
    assert not ok and "macOS" in why
    with pytest.raises(runtime.PredictUnavailable, match="needs macOS"):
        runtime.load_for_prediction(tiny_export, "encoder")


def test_envcheck_reports_the_pins():
    checks = {c.what: c for c in envcheck.checks()}
    for name, version in envcheck.PINNED.items():
        assert checks[f"{name} {version}"].ok, checks[f"{name} {version}"].detail
    assert "run Core ML predict" in checks
    table = envcheck.table()
    assert table.count("\n") == len(checks) - 1
