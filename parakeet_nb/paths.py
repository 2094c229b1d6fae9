"""Where things live: the project root and the build folder, independent of the cwd.

Notebooks run with their own folder as the working directory; code that writes files
asks here instead of using relative paths, and shows paths relative to the project root
(no absolute path of any machine ends up in a stored notebook).
"""

from __future__ import annotations

import os
from pathlib import Path

#: The project root (the folder holding ``parakeet_nb/``, ``notebooks/`` and ``data/``).
ROOT = Path(__file__).resolve().parent.parent


def build_dir(*parts: str) -> Path:
    """``build/<parts>`` under the project root (or ``$PARAKEET_NB_BUILD``), created."""
    base = Path(os.environ.get("PARAKEET_NB_BUILD", ROOT / "build"))
    path = base.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def show(path: str | os.PathLike) -> str:
    """``path`` relative to the project root when it is inside it, else just its name."""
    path = Path(path).resolve()
    try:
        return path.relative_to(ROOT).as_posix()
    except ValueError:
        return path.name
