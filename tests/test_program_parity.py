"""parakeet_nb.study.program_parity: the exported programs vs their PyTorch modules, and its CLI."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest

from parakeet_nb import _quiet

_quiet.import_heavy()

from parakeet_nb import cli  # noqa: E402
from parakeet_nb.study import program_parity  # noqa: E402
from parakeet_nb.study.program_parity import PREPROCESSORS_ROW, ProgramParityReport, ProgramRow  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_blas_thread")

META = {"model": "preset:tiny", "clips": {"speech": 100}}


def _row(component="preprocessor", output="mel", max_abs=0.0, *, package="fp32", numerics="fp32",
         source="speech", integer=False, floor=None) -> ProgramRow:
    return ProgramRow(component, package, numerics, source, output, max_abs, max_abs / 10, 3.0, integer, floor)


def _goal(report: ProgramParityReport, start: str) -> dict:
    (goal,) = [g for g in report.goals() if g["goal"].startswith(start)]
    return goal


# ---------------------------------------------------------------- goals, on made-up rows
def test_mel_goal_uses_the_float64_floor_only_when_it_is_larger():
    rows = [_row(max_abs=5e-5), _row(source="noise", max_abs=3e-4, floor=4e-4)]
    assert _goal(ProgramParityReport(rows, META), "fp32 programs: mel")["met"]
    rows.append(_row(source="other", max_abs=3e-4, floor=1e-5))
    goal = _goal(ProgramParityReport(rows, META), "fp32 programs: mel")
    assert not goal["met"] and "on other: 3.00e-04" in goal["detail"] and "noise" not in goal["detail"]


def test_encoder_and_integer_goals():
    rows = [_row("encoder", "encoder", 9e-4), _row("encoder", "encoder_length", 0.0, integer=True)]
    report = ProgramParityReport(rows, META)
    assert _goal(report, "fp32 programs: encoder")["met"]
    assert _goal(report, "integer outputs")["met"]
    rows += [_row("encoder", "encoder", 2e-3, source="random"),
             _row("joint_decision", "token_id", 1.0, numerics="fp16", integer=True)]
    report = ProgramParityReport(rows, META)
    assert not _goal(report, "fp32 programs: encoder")["met"]
    assert not _goal(report, "integer outputs")["met"]


def test_fp16_goal_judges_fp16_packages_on_speech_only_and_non_finite_fails():
    rows = [_row(max_abs=0.2, numerics="typed", package="fp16"),
            _row(max_abs=3.0, numerics="typed", package="fp16", source="noise"),
            _row(max_abs=math.inf, numerics="fp16")]  # an fp32 package in fp16 emulation: shown, not judged
    assert _goal(ProgramParityReport(rows, META), "float16 mel on speech")["met"]
    rows.append(_row("preprocessor_chunked", max_abs=math.inf, numerics="typed", package="fp16"))
    assert not _goal(ProgramParityReport(rows, META), "float16 mel on speech")["met"]


def test_the_two_preprocessors_goal_and_goals_without_rows_are_left_out():
    report = ProgramParityReport([_row(PREPROCESSORS_ROW, max_abs=2e-4, floor=1e-4)], META)
    goals = report.goals()
    assert [g["goal"].split(" ")[0] for g in goals] == ["chunked"] and not goals[0]["met"]


def test_table_and_json():
    rows = [_row(max_abs=math.inf, floor=1e-4), _row("joint", "logits", 1e-7)]
    report = ProgramParityReport(rows, META)
    text = report.table()
    assert "inf" in text and "NOT met" in text and "f32 floor" in text
    doc = json.loads(json.dumps(report.to_json()))
    assert doc["rows"][0]["max_abs"] == "inf" and doc["rows"][1]["floor"] is None
    assert report.select(component="joint") == [rows[1]]
    assert "logits" in text and "logits" not in report.table(outputs=["mel"]).split("\n\n")[0]


# ---------------------------------------------------------------- the real thing
@pytest.fixture(scope="module")
def small_report(tiny_modules):
    from parakeet_nb.frontend.audio import data_clip

    clips = {"speech_short": data_clip("speech_short.wav").samples}
    return program_parity.run_program_parity(
        tiny_modules, components=["preprocessor", "preprocessor_chunked", "joint_decision"],
        precisions=("fp32", "fp16"), clips=clips,
    )


def test_programs_match_pytorch(small_report):
    report = small_report
    combos = {(r.component, r.numerics, r.source, r.output) for r in report.rows}
    for name in ("preprocessor", "preprocessor_chunked"):
        for numerics in ("fp32", "fp16"):
            for source in ("speech_short", "noise"):
                assert (name, numerics, source, "mel") in combos
    assert (PREPROCESSORS_ROW, "fp32", "speech_short", "mel") in combos
    assert ("joint_decision", "fp32", "random", "token_id") in combos
    by = {g["goal"].split(":")[0]: g for g in report.goals()}
    assert by["integer outputs (lengths, token ids, durations) equal to PyTorch's, every mode"]["met"]
    speech = report.select(numerics="fp32", source="speech_short", output="mel")
    assert len(speech) == 3 and all(r.max_abs < 1e-4 for r in speech)
    # the float32 floor is measured, and it is small on speech
    assert all(0 < r.floor < 1e-4 for r in speech)
    # fp32 packages in fp16 emulation: NeMo's preprocessor degrades, the float32-only chunked design breaks
    half = report.select(package="fp32", numerics="fp16", source="speech_short", output="mel")
    assert [r.component for r in half][:2] == ["preprocessor", "preprocessor_chunked"]
    assert 1e-3 < half[0].max_abs < program_parity.MOBIUS_FP16_MEL_ERROR and half[1].max_abs == math.inf
    # the fp16 export (fp16_safe design, float32 island kept) run as Core ML would type it
    typed = report.select(component="preprocessor_chunked", package="fp16", source="speech_short", output="mel")
    assert [r.numerics for r in typed] == ["typed"] and typed[0].max_abs < 0.05
    assert all(g["met"] for g in report.goals() if g["goal"].startswith("float16 mel on speech"))


def test_unknown_component(tiny_modules):
    with pytest.raises(ValueError, match="unknown component.*nope"):
        program_parity.run_program_parity(tiny_modules, components=["nope"])


def test_packages_in_reads_an_export(tiny_export, tiny_modules):
    found = program_parity.packages_in(tiny_export, tiny_modules)
    assert ("encoder", "fp32") in found and len(found) == 8


def test_packages_in_errors(tmp_path, tiny_export, tiny_modules):
    with pytest.raises(ValueError, match="no metadata.json"):
        program_parity.packages_in(tmp_path)
    (tmp_path / "metadata.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        program_parity.packages_in(tmp_path)
    copy = tmp_path / "copy"
    shutil.copytree(tiny_export, copy)
    meta = json.loads((copy / "metadata.json").read_text())
    meta["model"]["source"] = "nemo:elsewhere.nemo"
    (copy / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="exported from 'nemo:elsewhere.nemo'"):
        program_parity.packages_in(copy, tiny_modules)


def test_cli_programs_only_on_an_export(tiny_export, capsys):
    code = cli.main(["parity", "--programs-only", "--export-dir", str(tiny_export),
                     "--components", "joint_decision", "--no-fp16", "--json"])
    assert code == 0
    doc = json.loads(capsys.readouterr().out)
    assert set(doc) == {"programs"}
    rows = doc["programs"]["rows"]
    assert {r["component"] for r in rows} == {"joint_decision"} and {r["numerics"] for r in rows} == {"fp32", "fp16"}
    assert all(g["met"] for g in doc["programs"]["goals"])


def test_cli_programs_bad_export_dir(tmp_path, capsys):
    assert cli.main(["parity", "--programs-only", "--export-dir", str(tmp_path)]) == 2
    assert "no metadata.json" in capsys.readouterr().err
