"""Each stored notebook stays small enough to read and review: under 300 KB on disk.

Figures are the bulk of a notebook (``parakeet_nb.teach.plots`` sets their resolution and
colour depth); the test prints every notebook's size so growth is visible before it fails.
"""

from __future__ import annotations

import pytest

from parakeet_nb.teach.notebooks import notebook_paths

#: Upper bound on a stored notebook's size in bytes (issue 19).
MAX_BYTES = 300 * 1024

NOTEBOOKS = notebook_paths()


def test_there_are_notebooks_to_measure():
    assert len(NOTEBOOKS) >= 6, [p.name for p in NOTEBOOKS]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_is_under_300_kb(path):
    size = path.stat().st_size
    print(f"{path.name}: {size / 1024:.1f} KB (limit {MAX_BYTES // 1024} KB)")
    assert size <= MAX_BYTES, f"{path.name} is {size / 1024:.1f} KB, over {MAX_BYTES // 1024} KB"
