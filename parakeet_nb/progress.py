"""Progress of a job made of named steps: a bar on a terminal, one plain line per step in a log.

On a terminal (``stream.isatty()``) a ``tqdm`` bar shows the step under way. In a log (CI,
``make run > log``) carriage-return frames would pile up as one unreadable line, so each
finished step prints one line instead: ``  exported encoder (2/8) in 3.1 s``.

Use it as the ``progress`` callback of :func:`parakeet_nb.coreml.export.export`, which calls it
with each step's name *before* the step starts::

    with StepProgress(len(names), verb="exported") as progress:
        export(modules, out, progress=progress)
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


class StepProgress:
    """Callable with a step's name when it starts; :meth:`close` ends the last one."""

    def __init__(self, total: int, *, verb: str = "done", stream: TextIO | None = None,
                 enabled: bool = True, tty: bool | None = None) -> None:
        self.total = total
        self.verb = verb
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.tty = self.stream.isatty() if tty is None else tty
        self.finished = 0
        self._current: str | None = None
        self._started = 0.0
        self._bar = None
        if enabled and self.tty:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, unit="step", file=self.stream)

    def _finish_current(self) -> None:
        if self._current is None:
            return
        self.finished += 1
        if self._bar is not None:
            self._bar.update(1)
        elif self.enabled:
            seconds = time.perf_counter() - self._started
            print(f"  {self.verb} {self._current} ({self.finished}/{self.total}) in {seconds:.1f} s",
                  file=self.stream, flush=True)
        self._current = None

    def __call__(self, name: str) -> None:
        self._finish_current()
        self._current = name
        self._started = time.perf_counter()
        if self._bar is not None:
            self._bar.set_description(name)

    def close(self) -> None:
        """End the step under way (call once the job succeeded) and close the bar."""
        self._finish_current()
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> StepProgress:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        elif self._bar is not None:  # a failed step is not reported as done
            self._bar.close()
            self._bar = None
