"""Execute the notebooks top to bottom, in place (to commit them) or into a build folder.

``python -m parakeet_nb.teach.notebooks`` re-executes every notebook in ``notebooks/`` in place
from a fresh kernel (what is committed); :func:`execute_all` writes executed copies and
HTML renderings elsewhere (what ``make run`` does).
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from parakeet_nb.paths import ROOT

NOTEBOOK_DIR = ROOT / "notebooks"

#: Lines a kernel writes to its own stderr that say nothing to a reader: ipykernel warns at
#: every start that it runs over TCP without encryption (``ipykernel/kernelapp.py``,
#: ``init_sockets``); nbclient starts it on loopback, and IPC transport breaks with the
#: per-notebook working folder (relative socket paths). Matched exactly, nothing else.
KERNEL_NOISE: tuple[str, ...] = ("Kernel is running over TCP without encryption.",)


@contextmanager
def _kernel_stderr() -> Iterator[int]:
    """A pipe for the kernel process's stderr that forwards every line but :data:`KERNEL_NOISE`."""
    read_end, write_end = os.pipe()

    def pump() -> None:
        with os.fdopen(read_end, "r", errors="replace") as lines:
            for line in lines:
                if not any(noise in line for noise in KERNEL_NOISE):
                    sys.stderr.write(line)
                    sys.stderr.flush()

    thread = threading.Thread(target=pump, daemon=True)
    thread.start()
    try:
        yield write_end
    finally:
        os.close(write_end)
        thread.join(timeout=10)


def notebook_paths() -> list[Path]:
    """The numbered notebooks, in order."""
    return sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))


def execute(path: Path, out: Path | None = None, timeout: int = 600) -> float:
    """Run ``path`` from a fresh kernel in its own folder; write to ``out`` (default: in place).

    Returns the seconds taken. Raises ``nbclient.exceptions.CellExecutionError`` when a
    cell fails (the partially executed notebook is not written).
    """
    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    with _kernel_stderr() as stderr:
        NotebookClient(
            nb, timeout=timeout, kernel_name="python3", record_timing=False,
            resources={"metadata": {"path": str(path.parent)}},
        ).execute(stderr=stderr)
    seconds = time.perf_counter() - start
    target = out or path
    tmp = target.with_suffix(".ipynb.tmp")
    nbformat.write(nb, tmp)
    tmp.replace(target)
    return seconds


def to_html(path: Path, out: Path) -> None:
    """Render an executed notebook as a standalone HTML page."""
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_filename(str(path))
    out.write_text(body)


def execute_all(out_dir: Path, html: bool = True) -> list[tuple[Path, float]]:
    """Execute every notebook into ``out_dir`` (and HTML beside it); returns (path, seconds)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    done = []
    for path in notebook_paths():
        target = out_dir / path.name
        seconds = execute(path, target)
        if html:
            to_html(target, target.with_suffix(".html"))
        done.append((target, seconds))
    return done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Re-execute notebooks in place from a fresh kernel.")
    parser.add_argument("names", nargs="*", help="notebook files (default: every numbered notebook)")
    args = parser.parse_args(argv)
    paths = [Path(n).resolve() for n in args.names] or notebook_paths()
    for path in paths:
        seconds = execute(path)
        print(f"{path.name}: {seconds:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
