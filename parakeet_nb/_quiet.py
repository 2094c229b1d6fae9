"""Silence the known-harmless lines that NeMo 3.0 and coremltools 9.0 print on import.

Importing ``coremltools`` on Linux logs that ``libcoremlpython`` (the macOS-only
runtime bridge) is missing, that torch 2.13 and scikit-learn 1.9 are untested, and
NeMo's telemetry package logs that it is disabled. These lines are stable and
harmless, but they would appear in every stored notebook. This module drops exactly
those records (matched by message text) and lets every other warning through.
"""

from __future__ import annotations

import logging
import re
import warnings

#: Regular expressions for the log records that are dropped, with why each is harmless.
KNOWN_NOISE: tuple[tuple[str, str], ...] = (
    (r"^Failed to load _ML\w+: No module named 'coremltools\.libcoremlpython'",
     "the Core ML runtime bridge exists only on macOS; conversion does not need it"),
    (r"^Torch version [\w.+]+ has not been tested with coremltools",
     "torch 2.13 converts every model in this project; checked by the tests"),
    (r"^scikit-learn version [\w.]+ is not supported",
     "coremltools' scikit-learn converter is not used"),
    (r"^OneLogger: Setting error_handling_strategy",
     "NeMo's telemetry is disabled; nothing is sent anywhere"),
    (r"^No exporters were provided\. This means that no telemetry data",
     "NeMo's telemetry is disabled; nothing is sent anywhere"),
)

_PATTERNS = tuple(re.compile(p) for p, _ in KNOWN_NOISE)


class KnownNoiseFilter(logging.Filter):
    """A logging filter that drops the records listed in :data:`KNOWN_NOISE`."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(p.search(message) for p in _PATTERNS)


_FILTER = KnownNoiseFilter()


def install_filter() -> None:
    """Attach the filter to the last-resort handler and every handler that exists now.

    Called before and after the heavy imports, because NeMo adds its own handlers while
    it is imported. Idempotent.
    """
    handlers = [logging.lastResort] if logging.lastResort is not None else []
    loggers = [logging.getLogger()] + [
        lg for lg in logging.Logger.manager.loggerDict.values() if isinstance(lg, logging.Logger)
    ]
    for lg in loggers:
        handlers.extend(lg.handlers)
    for handler in handlers:
        if _FILTER not in handler.filters:
            handler.addFilter(_FILTER)


def import_heavy() -> None:
    """Import coremltools and NeMo's ASR modules once, with the known noise filtered."""
    install_filter()
    with warnings.catch_warnings():
        # NeMo imports modules that emit FutureWarnings about their own deprecations.
        warnings.simplefilter("ignore", FutureWarning)
        import coremltools  # noqa: F401
        install_filter()
        import nemo.collections.asr.modules  # noqa: F401
    install_filter()
