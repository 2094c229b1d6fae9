"""The package's layering, as ``parakeet_nb/README.md`` draws it, checked on every import.

Each subpackage may import only from the layers listed before it; ``frontend`` and
``model`` know nothing of Core ML programs (``mlprogram``, ``ane``); nothing imports the
command line but ``python -m parakeet_nb``. Imports inside functions count too: a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "parakeet_nb"

#: Bottom to top. ``base`` is the package's own top-level helpers.
LAYERS: tuple[str, ...] = (
    "base", "mlprogram", "ane", "frontend", "model", "coreml", "transcribe", "study", "device",
    "digits", "teach", "top",
)
BASE = {"__init__", "paths", "_quiet", "progress"}
TOP = {"cli", "mainjob", "benchreport", "__main__"}
#: Pairs a lower-to-higher order alone would allow, but which the design rules out.
FORBIDDEN: dict[str, set[str]] = {"frontend": {"mlprogram", "ane"}, "model": {"mlprogram", "ane"}}


def layer_of(module: str) -> str:
    """``parakeet_nb.ane.audit`` -> ``ane``; ``parakeet_nb.paths`` -> ``base``."""
    parts = module.split(".")
    assert parts[0] == "parakeet_nb", module
    if len(parts) == 1 or parts[1] in BASE:
        return "base"
    if parts[1] in TOP:
        return "top"
    return parts[1]


def imports_of(path: Path) -> list[tuple[int, str]]:
    """``(line, module)`` for every ``parakeet_nb`` module a file imports, at any depth."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("parakeet_nb")]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("parakeet_nb"):
            for alias in node.names:  # ``from parakeet_nb.ane import planner`` names a module
                sub = f"{node.module}.{alias.name}"
                candidate = PACKAGE.parent / (sub.replace(".", "/"))
                is_module = candidate.with_suffix(".py").exists() or candidate.is_dir()
                found.append((node.lineno, sub if is_module else node.module))
        elif isinstance(node, ast.ImportFrom) and node.level > 0:
            found.append((node.lineno, "relative"))
    return found


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    return ".".join(rel.parts)


SOURCES = sorted(PACKAGE.rglob("*.py"))


def test_every_subpackage_has_a_layer():
    subpackages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    assert subpackages <= set(LAYERS), f"subpackages without a layer: {sorted(subpackages - set(LAYERS))}"
    modules = {p.stem for p in PACKAGE.glob("*.py")}
    assert modules <= BASE | TOP, f"top-level modules outside base/top: {sorted(modules - BASE - TOP)}"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE.parent)))
def test_imports_go_down_the_layers(path: Path):
    here = layer_of(module_name(path))
    wrong = []
    for line, target in imports_of(path):
        if target == "relative":
            wrong.append(f"line {line}: relative import (use absolute parakeet_nb imports)")
            continue
        there = layer_of(target)
        if target == "parakeet_nb.cli" and path.name != "__main__.py":
            wrong.append(f"line {line}: imports the command line ({target})")
        elif LAYERS.index(there) > LAYERS.index(here):
            wrong.append(f"line {line}: {here} imports {target} from the higher layer {there}")
        elif there in FORBIDDEN.get(here, set()):
            wrong.append(f"line {line}: {here} must not depend on {there} ({target})")
    assert not wrong, "\n".join(wrong)


def test_the_check_bites(tmp_path: Path):
    """A module of ``ane`` that imports ``teach`` is reported; one that imports ``mlprogram`` is not."""
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from parakeet_nb.teach import plots\n    from parakeet_nb.mlprogram.load import load_program\n")
    targets = [t for _, t in imports_of(bad)]
    assert targets == ["parakeet_nb.teach.plots", "parakeet_nb.mlprogram.load"]
    assert [LAYERS.index(layer_of(t)) > LAYERS.index("ane") for t in targets] == [True, False]
