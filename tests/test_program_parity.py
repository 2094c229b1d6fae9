"""parakeet_nb.study.program_parity: the exported programs vs their PyTorch modules, and its CLI."""

from __future__ import annotations

import json
import math
import shutil

import pytest

from parakeet_nb import _quiet

_quiet.import_heavy()

from parakeet_nb import cli  # noqa: E402
from parakeet_nb.study import program_parity  # noqa: E402
from parakeet_nb.study.program_parity import ProgramParityReport, ProgramRow  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_blas_thread")

META = {"model": "preset:tiny", "clips": {"speech": 100}}


def _row(component="preprocessor", output="mel", max_abs=0.0, *, package="fp32", numerics="typed",
         source="speech", integer=False, ref_std=1.0) -> ProgramRow:
    bound = program_parity.row_bound(component, package, source, output, ref_std)
    return ProgramRow(component, package, numerics, source, output, max_abs, max_abs / 10, 3.0, ref_std,
                      integer, bound)


def _goal(report: ProgramParityReport, start: str) -> dict:
    (goal,) = [g for g in report.goals() if g["goal"].startswith(start)]
    return goal


# ---------------------------------------------------------------- bounds and goals, on made-up rows
def test_bounds_follow_precision_source_and_output():
    bound = program_parity.row_bound
    assert bound("preprocessor", "fp32", "speech_15s", "mel", 1.0) == 1e-3
    assert bound("preprocessor", "fp32", "sine_440_fs", "mel", 1.0) == bound("preprocessor", "fp32", "noise_white_fs",
                                                                              "mel", 1.0) == 1e-2
    assert bound("encoder", "fp32", "random", "encoder", 1.0) == program_parity.ENCODER_ATOL
    assert bound("preprocessor_chunked", "fp16", "speech_15s", "mel", 1.0) == 0.05
    assert bound("preprocessor_chunked", "fp16", "sine_100_fs", "mel", 1.0) == 0.5
    assert bound("preprocessor_chunked", "fp16", "speech_in_digital_silence", "mel", 1.0) == 0.5
    assert bound("decoder", "fp16", "random", "c_out", 0.76) == 0.08  # a tenth of the spread, 1 digit
    assert bound("joint_decision", "fp16", "random", "token_id", 0.0) is None


def test_float32_mel_goal_by_source_group():
    rows = [_row(max_abs=5e-5), _row(source="sine_440_fs", max_abs=3e-3)]
    assert _goal(ProgramParityReport(rows, META), "float32 programs: mel")["met"]
    rows.append(_row(source="speech_short", max_abs=3e-3))
    goal = _goal(ProgramParityReport(rows, META), "float32 programs: mel")
    assert not goal["met"] and goal["detail"] == "preprocessor mel on speech_short: >0.001"


def test_encoder_and_integer_goals():
    rows = [_row("encoder", "encoder", 9e-4), _row("encoder", "encoder_length", 0.0, integer=True)]
    report = ProgramParityReport(rows, META)
    assert _goal(report, "float32 programs: encoder")["met"]
    assert _goal(report, "integer outputs")["met"]
    rows += [_row("encoder", "encoder", 2e-3, source="random"),
             _row("joint_decision", "token_id", 1.0, package="fp16", integer=True)]
    report = ProgramParityReport(rows, META)
    assert not _goal(report, "float32 programs: encoder")["met"]
    goal = _goal(report, "integer outputs")
    assert not goal["met"] and goal["detail"] == "joint_decision token_id on speech: differs"


def test_float16_goals_judge_typed_runs_on_speech_and_hard_signals():
    rows = [_row("preprocessor_chunked", max_abs=0.02, package="fp16"),
            _row("preprocessor_chunked", max_abs=0.3, package="fp16", source="sine_440_fs"),
            _row("preprocessor_chunked", max_abs=0.3, package="fp16", source="noise_white_fs"),  # shown, not judged
            _row(max_abs=math.inf, numerics="fp16")]  # a float32 package in fp16 emulation: shown, not judged
    report = ProgramParityReport(rows, META)
    assert _goal(report, "float16 chunked mel within")["met"] and _goal(report, "float16 chunked mel finite")["met"]
    rows.append(_row("preprocessor_chunked", max_abs=math.inf, package="fp16", source="speech_in_digital_silence"))
    goal = _goal(ProgramParityReport(rows, META), "float16 chunked mel finite")
    assert not goal["met"] and "speech_in_digital_silence: inf" in goal["detail"]


def test_goals_without_rows_are_left_out():
    goals = ProgramParityReport([_row("joint", "logits", 1e-5)], META).goals()
    assert [g["goal"].split(":")[0] for g in goals] == ["float32 programs"] and goals[0]["met"]


def test_table_prints_relations_by_default_and_digits_on_request():
    rows = [_row(max_abs=math.inf), _row("joint", "logits", 2e-5, ref_std=0.35),
            _row("joint_decision", "token_id", 0.0, integer=True)]
    report = ProgramParityReport(rows, META)
    text = report.table()
    assert "inf" in text and "NOT met" in text and "<0.0001" in text and "equal" in text and "0.35" in text
    assert "2.00e-05" not in text and "2.00e-05" in report.table(digits=True)
    doc = json.loads(json.dumps(report.to_json()))
    assert doc["rows"][0]["max_abs"] == "inf" and doc["rows"][1]["bound"] == 1e-4
    assert report.select(component="joint") == [rows[1]]
    assert "logits" in text and "logits" not in report.table(outputs=["mel"]).split("\n\n")[0]


def test_end_to_end_goal_and_summary():
    same = program_parity.EndToEnd(["one two"], ["one two"], ["one two"], 0.0, 0.0, "chunked")
    assert same.goal()["met"] and "PyTorch 0.00 %, exported 0.00 %" in same.summary()
    other = program_parity.EndToEnd(["one two", "three"], ["one two", "three"], ["one two", "tree"], 0.0, 1 / 3,
                                    "chunked")
    assert not other.goal()["met"] and other.goal()["detail"] == "clips [1] differ"
    assert json.loads(json.dumps(other.to_json()))["clips"][1]["program"] == "tree"


# ---------------------------------------------------------------- the real thing
@pytest.fixture(scope="module")
def small_report(tiny_modules, tiny_export):
    """The default (auto) export's preprocessor (float32), chunked preprocessor (float16) and joint decision."""
    from parakeet_nb.frontend.audio import data_clip

    packages = {k: v for k, v in program_parity.packages_in(tiny_export, tiny_modules).items()
                if k[0] in ("preprocessor", "preprocessor_chunked", "joint_decision")}
    return program_parity.run_program_parity(
        tiny_modules, packages=packages, clips={"speech_short": data_clip("speech_short.wav").samples},
        signals=("sine_440_fs", "speech_in_digital_silence"), emulate_fp16=True,
    )


def test_programs_match_their_float64_references(small_report):
    report = small_report
    combos = {(r.component, r.package, r.numerics, r.source, r.output) for r in report.rows}
    for source in ("speech_short", "sine_440_fs", "speech_in_digital_silence"):
        assert ("preprocessor", "fp32", "typed", source, "mel") in combos
        assert ("preprocessor", "fp32", "fp16", source, "mel") in combos  # the emulation, for float32 packages only
        assert ("preprocessor_chunked", "fp16", "typed", source, "mel") in combos
    assert not report.select(component="preprocessor_chunked", numerics="fp16")
    assert ("joint_decision", "fp16", "typed", "random", "token_id") in combos
    assert all(g["met"] for g in report.goals()), report.table()
    # float32 program on speech: far inside its bound; float16 typed: finite, inside 0.05 on speech
    (speech32,) = report.select(component="preprocessor", numerics="typed", source="speech_short", output="mel")
    assert speech32.max_abs < speech32.bound / 10 and speech32.ref_std == pytest.approx(1.0, abs=0.01)
    (speech16,) = report.select(component="preprocessor_chunked", source="speech_short", output="mel")
    assert 1e-4 < speech16.max_abs < 0.05
    # NeMo's float32 recipe in blanket float16 degrades (shown, not judged)
    (half,) = report.select(component="preprocessor", numerics="fp16", source="speech_short", output="mel")
    assert half.max_abs > 10 * speech16.max_abs


def test_unknown_component(tiny_modules):
    with pytest.raises(ValueError, match="unknown component.*nope"):
        program_parity.run_program_parity(tiny_modules, components=["nope"])


def test_packages_in_reads_an_export(tiny_export, tiny_modules):
    """The default export: float32 waveform-in programs, float16 for the rest."""
    from parakeet_nb.coreml.convert import COMPONENTS, component_precision

    found = program_parity.packages_in(tiny_export, tiny_modules)
    assert set(found) == {(name, component_precision("auto", name)) for name, c in COMPONENTS.items() if c.default}
    assert ("preprocessor", "fp32") in found and ("encoder", "fp16") in found


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
                     "--components", "joint_decision", "--json"])
    assert code == 0
    doc = json.loads(capsys.readouterr().out)
    assert set(doc) == {"programs"}
    rows = doc["programs"]["rows"]
    assert {r["component"] for r in rows} == {"joint_decision"} and {r["numerics"] for r in rows} == {"typed"}
    assert {r["package"] for r in rows} == {"fp16"} and all(g["met"] for g in doc["programs"]["goals"])
    assert cli.main(["parity", "--programs-only", "--export-dir", str(tiny_export),
                     "--components", "joint_decision", "--digits"]) == 0
    assert "max abs" in capsys.readouterr().out


def test_cli_end_to_end_needs_programs_and_digits(capsys):
    assert cli.main(["parity", "--end-to-end"]) == 2
    assert "--end-to-end goes with --programs" in capsys.readouterr().err
    assert cli.main(["parity", "--programs-only", "--end-to-end", "--preset", "tiny"]) == 2
    assert "pass --preset digits" in capsys.readouterr().err


def test_cli_programs_bad_export_dir(tmp_path, capsys):
    assert cli.main(["parity", "--programs-only", "--export-dir", str(tmp_path)]) == 2
    assert "no metadata.json" in capsys.readouterr().err


def test_digits_default_export_gives_pytorchs_words_on_a_few_test_clips():
    """End to end on two clips of the committed test set (the whole set: ``make bench``)."""
    from parakeet_nb.digits.corpus import TEST_DIR, load_split
    from parakeet_nb.digits.wer import wer
    from parakeet_nb.model.checkpoint import load_nemo
    from parakeet_nb.paths import ROOT

    modules = load_nemo(ROOT / "data" / "digits_tdt.nemo")
    examples = load_split(TEST_DIR / "manifest.jsonl", limit=2)
    result = program_parity.run_end_to_end(modules, [(e.waveform, e.text) for e in examples], wer)
    assert result.goal()["met"], result.summary()
    assert result.program_hyps == result.torch_hyps and all(h.split() for h in result.program_hyps)
    assert result.program_wer == result.torch_wer == wer(result.refs, result.torch_hyps)
    assert "precision auto, run as typed" in result.summary()
