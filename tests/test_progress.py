"""Step progress: one plain line per finished step in a log, a bar on a terminal."""

from __future__ import annotations

import io
import re

import pytest

from parakeet_nb.progress import StepProgress


def test_log_gets_one_plain_line_per_finished_step():
    log = io.StringIO()
    with StepProgress(3, verb="exported", stream=log, tty=False) as progress:
        for name in ("encoder", "decoder", "joint"):
            progress(name)
    lines = log.getvalue().splitlines()
    assert [re.sub(r"in \d+\.\d s", "in T s", line) for line in lines] == [
        "  exported encoder (1/3) in T s", "  exported decoder (2/3) in T s", "  exported joint (3/3) in T s",
    ]
    assert "\r" not in log.getvalue()


def test_a_failed_step_is_not_reported_done():
    log = io.StringIO()
    with pytest.raises(RuntimeError):
        with StepProgress(2, stream=log, tty=False) as progress:
            progress("encoder")
            progress("decoder")
            raise RuntimeError("conversion failed")
    assert log.getvalue().splitlines()[-1].startswith("  done encoder (1/2)")


def test_terminal_gets_a_bar_and_no_step_lines():
    term = io.StringIO()
    with StepProgress(2, stream=term, tty=True) as progress:
        progress("encoder")
        progress("decoder")
    out = term.getvalue()
    assert "\r" in out and "2/2" in out and "done encoder" not in out


def test_disabled_prints_nothing():
    log = io.StringIO()
    with StepProgress(1, stream=log, tty=False, enabled=False) as progress:
        progress("encoder")
    assert log.getvalue() == ""
