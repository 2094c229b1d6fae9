"""Shared bits of the benchmark scripts: what machine and which versions ran them."""

from __future__ import annotations

import os
import platform


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_summary() -> str:
    """One line: CPU model, cores, OS, and the versions of the packages that matter."""
    from parakeet_nb import _quiet

    _quiet.import_heavy()  # NeMo's and coremltools' known-harmless import lines, silenced
    import coremltools
    import nemo
    import numpy
    import torch

    return (
        f"machine: {cpu_model()}, {os.cpu_count()} cores, {platform.system()} {platform.machine()}; "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads), numpy {numpy.__version__}, "
        f"coremltools {coremltools.__version__}, nemo_toolkit {nemo.__version__}, "
        f"python {platform.python_version()}"
    )
