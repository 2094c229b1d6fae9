"""The parity studies print the same tables and goal lines with 1 and with 2 BLAS/torch threads.

Thread count changes the summation order of float32 BLAS and torch kernels, as another
CPU's kernels do (issue 17). The studies print every error against a bound far above that
noise (:func:`parakeet_nb.study.parity.bound_text`), so their text must not change. Each
run is a fresh subprocess with ``OPENBLAS_NUM_THREADS``, ``OMP_NUM_THREADS``,
``MKL_NUM_THREADS`` and ``torch.set_num_threads`` set to 1 or 2 (``OPENBLAS_CORETYPE`` is
never touched).

The same functions and inputs as notebooks 04 and 05, on a subset to stay under a minute on
two cores (the two subprocesses run side by side; most of the time is importing NeMo): the
chunked mel study (:func:`parity.run_parity`, with the float16 emulation) on
``speech_in_digital_silence`` and ``sine_440_fs``; the program study
(:func:`program_parity.run_program_parity`) on the default (``auto``) export of the tiny
preset's ``preprocessor_chunked`` (float16, run as typed, on ``speech_short`` and
``sine_440_fs``) and ``joint_decision`` (seeded random inputs).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys


SCRIPT = r"""
import sys
import torch
torch.set_num_threads(int(sys.argv[1]))
from parakeet_nb import _quiet
_quiet.import_heavy()
from threadpoolctl import threadpool_info
from parakeet_nb.frontend.audio import data_clip
from parakeet_nb.model import presets
from parakeet_nb.study import parity, program_parity

report = parity.run_parity(cases=["speech_in_digital_silence", "sine_440_fs"], fp16=True)
print(report.table())
modules = presets.build("tiny")
packages = {k: v for k, v in program_parity.packages_in(sys.argv[2], modules).items()
            if k[0] in ("preprocessor_chunked", "joint_decision")}
programs = program_parity.run_program_parity(
    modules, packages=packages, clips={"speech_short": data_clip("speech_short.wav").samples},
    signals=("sine_440_fs",))
print(programs.table())
blas = sorted({p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"})
print(f"threads torch={torch.get_num_threads()} blas={blas}", file=sys.stderr)
"""


def _start(threads: int, export_dir) -> subprocess.Popen:
    env = dict(os.environ)
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(threads)
    return subprocess.Popen([sys.executable, "-c", SCRIPT, str(threads), str(export_dir)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _output(threads: int, process: subprocess.Popen) -> str:
    out, err = process.communicate(timeout=600)
    assert process.returncode == 0, err[-3000:]
    assert f"threads torch={threads} blas=[{threads}]" in err, err[-500:]
    return out


def test_printed_parity_figures_do_not_depend_on_the_thread_count(tiny_export):
    runs = {threads: _start(threads, tiny_export) for threads in (1, 2)}
    one, two = (_output(threads, process) for threads, process in runs.items())
    # the studies ran: both tables, the typed float16 program and the goal lines are there
    assert "seam/rest" in one and "max vs bound" in one and "preprocessor_chunked fp16 typed" in one
    assert one.count("[met]") + one.count("[NOT met]") >= 8
    # no raw float32 digits in the text: on this machine they happen not to move with the thread
    # count, but they do move with another CPU's kernels (issue 17)
    assert not re.search(r"\d\.\d+e[-+]\d", one), one
    assert one.splitlines() == two.splitlines()
