"""What this environment has and what it can do, for notebook 00 and bug reports."""

from __future__ import annotations

import platform
from dataclasses import dataclass

#: Versions this project pins (``constraints.txt``) for the packages that matter most.
PINNED: dict[str, str] = {
    "torch": "2.13.0",
    "numpy": "2.3.5",
    "coremltools": "9.0",
    "nemo_toolkit": "3.0.0",
}


@dataclass(frozen=True)
class Check:
    """One line of the environment check."""

    what: str
    ok: bool
    detail: str


def _version(module: str) -> str:
    import importlib

    mod = importlib.import_module(module)
    return str(getattr(mod, "__version__", "unknown"))


def versions() -> dict[str, str]:
    """Installed versions of the pinned packages (torch's local label like ``+cpu`` kept)."""
    from parakeet_nb import _quiet

    _quiet.import_heavy()
    return {
        "torch": _version("torch"),
        "numpy": _version("numpy"),
        "coremltools": _version("coremltools"),
        "nemo_toolkit": _version("nemo"),
    }


def checks() -> list[Check]:
    """Pins, Python, and what this OS can and cannot do with Core ML."""
    from parakeet_nb.coreml.runtime import can_predict

    found = versions()
    result = [
        Check(f"{name} {PINNED[name]}", found[name].split("+")[0] == PINNED[name], f"installed {found[name]}")
        for name in PINNED
    ]
    result.append(Check("Python 3.11", platform.python_version().startswith("3.11."), platform.python_version()))
    result.append(Check("convert and inspect Core ML (coremltools)", True, "works on every OS"))
    ok, why = can_predict()
    result.append(Check("run Core ML predict", ok, why))
    return result


def table(items: list[Check] | None = None) -> str:
    """The checks as an aligned text table."""
    items = checks() if items is None else items
    width = max(len(c.what) for c in items)
    return "\n".join(f"{'ok ' if c.ok else 'no '} {c.what.ljust(width)}  {c.detail}" for c in items)
