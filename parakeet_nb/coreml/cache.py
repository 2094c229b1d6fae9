"""One export per model, profile and code version: a content-addressed cache of export folders.

Notebooks and tests need the same exported packages again and again; converting them
costs about 25 s for the digits model. :func:`cached_export` exports once and reuses the
folder for as long as nothing that shapes the packages changes. The key hashes

* the model: every tensor of the NeMo modules' ``state_dict`` (names, shapes, dtypes and
  bytes), the TDT durations and the model's source label: a retrained checkpoint or a
  changed preset makes a new entry;
* the export settings: precision profile, the components, the layout;
* the code: the source of every ``parakeet_nb`` module the export runs through
  (``mlprogram``, ``ane``, ``frontend``, ``model``, ``coreml`` and the package's base), and
  the versions of torch, coremltools, NeMo, numpy and Python.

An entry is ``<root>/<key>/export/`` plus ``<root>/<key>/manifest.json``, written last,
which lists every file with its size and SHA-256. An entry is used only when its manifest
matches the files byte for byte; a damaged or half-written entry is deleted and rebuilt,
never trusted. Entries are built in a temporary folder beside the final one and moved into
place in one rename, so a reader never sees a partial export.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import parakeet_nb
from parakeet_nb.coreml import export as exporter
from parakeet_nb.model.presets import ParakeetModules
from parakeet_nb.paths import ROOT

#: Where entries live unless the caller says otherwise (``$PARAKEET_NB_BUILD`` moves it).
DEFAULT_ROOT = Path(os.environ.get("PARAKEET_NB_BUILD", ROOT / "build")) / "cache" / "exports"
#: Subpackages whose code shapes an exported package (the rest only reads packages).
CODE_SUBPACKAGES: tuple[str, ...] = ("mlprogram", "ane", "frontend", "model", "coreml")
MANIFEST = "manifest.json"
#: Version of the manifest layout; a change makes every older entry a miss.
FORMAT = "parakeet-nb export cache 1"


@dataclass(frozen=True)
class CachedExport:
    """An export folder from the cache. ``hit`` says whether it was reused."""

    out_dir: Path
    key: str
    hit: bool
    seconds: float

    @property
    def metadata(self) -> dict[str, Any]:
        return json.loads((self.out_dir / "metadata.json").read_text())

    def table(self) -> str:
        """The export's summary table (:func:`parakeet_nb.coreml.export.metadata_table`)."""
        return exporter.metadata_table(self.metadata)


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def model_fingerprint(modules: ParakeetModules) -> str:
    """SHA-256 over the modules' tensors (name, dtype, shape, bytes), durations and source."""
    digest = hashlib.sha256()
    digest.update(json.dumps({"source": modules.source, "durations": list(modules.durations)}).encode())
    for part in ("preprocessor", "encoder", "decoder", "joint"):
        for name, tensor in sorted(getattr(modules, part).state_dict().items()):
            t = tensor.detach().cpu().contiguous()
            digest.update(f"{part}.{name}:{t.dtype}:{tuple(t.shape)}".encode())
            digest.update(t.numpy().tobytes())
    return digest.hexdigest()


def code_fingerprint() -> str:
    """SHA-256 of the export's code (see :data:`CODE_SUBPACKAGES`) and the tool versions."""
    package = Path(parakeet_nb.__file__).resolve().parent
    files = sorted(package.glob("*.py")) + sorted(
        p for sub in CODE_SUBPACKAGES for p in (package / sub).rglob("*.py") if "__pycache__" not in p.parts
    )
    digest = hashlib.sha256()
    for path in files:
        digest.update(str(path.relative_to(package)).encode())
        digest.update(path.read_bytes())
    digest.update(json.dumps(exporter.versions(), sort_keys=True).encode())
    digest.update(platform.machine().encode())
    return digest.hexdigest()


def cache_key(modules: ParakeetModules, precision: str, only: Sequence[str] | None, options: dict[str, Any]) -> str:
    """The entry's name: 24 hex digits of SHA-256 over model, settings and code."""
    settings = {
        "format": FORMAT,
        "model": model_fingerprint(modules),
        "precision": precision,
        "components": exporter.select(only),
        "options": options,
        "code": code_fingerprint(),
    }
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:24]


def _manifest(folder: Path) -> dict[str, Any]:
    files = {
        str(p.relative_to(folder)): {"bytes": p.stat().st_size, "sha256": _sha256_file(p)}
        for p in sorted(folder.rglob("*")) if p.is_file()
    }
    return {"format": FORMAT, "files": files}


def valid_entry(entry: Path) -> bool:
    """True when ``entry``'s manifest exists and matches its export folder byte for byte."""
    try:
        recorded = json.loads((entry / MANIFEST).read_text())
    except (OSError, ValueError):
        return False
    folder = entry / "export"
    return folder.is_dir() and recorded == _manifest(folder)


def cached_export(
    modules: ParakeetModules,
    *,
    precision: str = "auto",
    only: Sequence[str] | None = None,
    root: str | os.PathLike | None = None,
    progress: Callable[[str], None] | None = None,
    **options: Any,
) -> CachedExport:
    """Export ``modules`` (as :func:`parakeet_nb.coreml.export.export` would), or reuse the entry.

    ``options`` are passed on to the export and are part of the key (e.g. ``layout``).
    Returns the entry's export folder; treat it as read-only (copy it to change it).
    """
    root = Path(root) if root is not None else DEFAULT_ROOT
    key = cache_key(modules, precision, only, options)
    entry = root / key
    start = time.perf_counter()
    if valid_entry(entry):
        return CachedExport(entry / "export", key, True, time.perf_counter() - start)
    shutil.rmtree(entry, ignore_errors=True)  # damaged or half-written: rebuild, never trust
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=root))
    try:
        exporter.export(modules, staging / "export", only=only, precision=precision, progress=progress, **options)
        (staging / MANIFEST).write_text(json.dumps(_manifest(staging / "export"), indent=1) + "\n")
        try:
            staging.rename(entry)
        except OSError:  # another process published the same entry first
            if not valid_entry(entry):
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return CachedExport(entry / "export", key, False, time.perf_counter() - start)
