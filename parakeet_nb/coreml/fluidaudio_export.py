"""``export --layout fluidaudio``: write the folder FluidAudio's Swift loader reads.

FluidAudio (https://github.com/FluidInference/FluidAudio) loads Parakeet TDT 0.6B from a
folder named ``parakeet-tdt-0.6b-v2`` or ``parakeet-tdt-0.6b-v3`` holding
``Preprocessor``, ``Encoder``, ``Decoder`` and ``JointDecision`` (v2) or ``JointDecisionv3``
(v3, with ``top_k_ids``/``top_k_logits``) as compiled ``.mlmodelc`` bundles, plus
``parakeet_vocab.json`` (:mod:`parakeet_nb.coreml.fluidaudio_contract` has every fact and
its source line). The input and output names of parakeet-nb's components are already the
ones FluidAudio feeds and reads, so no tensor is renamed: this module exports the
components with :func:`parakeet_nb.coreml.export.export` (same checks, precision profile,
``metadata.json`` and ``compile.sh``), names the packages after FluidAudio's files, writes
the vocabulary and the folder, and checks the result with
:func:`parakeet_nb.coreml.layout_check.check_layout` before anything is published.

Compiling to ``.mlmodelc`` needs macOS (``compile=True`` there, or the folder's
``compile.sh`` on a Mac). A model whose sizes FluidAudio does not hard-code (``tiny``,
the digits model) gets the same names, dtypes and files, and the export says in one line
that FluidAudio cannot run it.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from parakeet_nb.coreml import export as exporter
from parakeet_nb.coreml import fluidaudio_contract as fa
from parakeet_nb.coreml.layout_check import LayoutReport, check_layout
from parakeet_nb.model.presets import ParakeetModules

#: Layouts ``export`` writes: parakeet-nb's own file names, or FluidAudio's.
LAYOUTS: tuple[str, ...] = ("parakeet-nb", "fluidaudio")


@dataclass
class FluidAudioExport:
    """What ``export --layout fluidaudio`` wrote: the folder, the export and the layout check."""

    folder: Path
    version: str
    result: exporter.ExportResult
    report: LayoutReport
    vocabulary: str  # "tokenizer" or "placeholder"

    @property
    def unmet(self) -> str | None:
        """One line saying which hard-coded FluidAudio sizes this model does not have, or ``None``."""
        sizes = self.report.of("size")
        if not sizes:
            return None
        what = "; ".join(f.message.replace(f"; FluidAudio {self.version} hard-codes", " (needs") + ")" for f in sizes)
        return (f"FluidAudio {self.version} cannot run this model: {what}; "
                "the files, names and dtypes are written as it reads them")


def version_for(modules: ParakeetModules, requested: str | None = None) -> str:
    """FluidAudio version to write for ``modules``: ``requested``, else the preset's name
    (``v2``/``v3``), else ``v2`` for a 1024-piece vocabulary and ``v3`` (FluidAudio's
    default) otherwise."""
    if requested is not None:
        fa.models(requested)  # validates
        return requested
    if modules.preset is not None and modules.preset.name in fa.VERSIONS:
        return modules.preset.name
    return "v2" if modules.vocab_size == fa.RUNTIME_SIZES[3].values["v2"] else "v3"


def components(version: str, only: Sequence[str] | None = None) -> list[str]:
    """parakeet-nb components of FluidAudio ``version``'s models, in load order (``only``
    restricts them; ``joint_decision`` names the version's joint)."""
    models = fa.models(version)
    names = [m.component for m in models]
    if not only:
        return names
    alias = {n: n for n in names} | {"joint_decision": models[-1].component}
    unknown = [n for n in only if n not in alias]
    if unknown:
        raise ValueError(
            f"unknown component{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} for --layout fluidaudio: "
            f"expected names from {', '.join(names[:-1])}, joint_decision"
        )
    wanted = {alias[n] for n in only}
    return [n for n in names if n in wanted]


def vocabulary(modules: ParakeetModules) -> tuple[dict[str, str], str]:
    """``parakeet_vocab.json``'s content ``{"id": "piece"}`` and where it came from.

    From the checkpoint's tokenizer (``ids_to_tokens``, e.g. ``"▁three"``) when there is one;
    a preset has none, so its ids get placeholder pieces ``"<token_ID>"`` (FluidAudio needs
    the file to load, AsrModels.swift:366-375; its text output is then those placeholders).
    """
    n = modules.vocab_size
    tokenizer = modules.tokenizer
    if tokenizer is None:
        return {str(i): f"<token_{i}>" for i in range(n)}, "placeholder"
    if int(tokenizer.vocab_size) != n:
        raise exporter.ExportError(
            f"the tokenizer has {tokenizer.vocab_size} pieces but the decoder {n} tokens: "
            "the checkpoint's vocabulary and model disagree"
        )
    pieces = tokenizer.ids_to_tokens(list(range(n)))
    return {str(i): str(p) for i, p in enumerate(pieces)}, "tokenizer"


def export_layout(
    modules: ParakeetModules,
    out_dir: str | os.PathLike,
    *,
    version: str | None = None,
    only: Sequence[str] | None = None,
    precision: str = "auto",
    compile: bool = False,
    progress: Callable[[str], None] | None = None,
) -> FluidAudioExport:
    """Export ``modules`` as FluidAudio's folder: ``out_dir/<folder>`` (or ``out_dir`` itself
    when it already has the folder's name, ``parakeet-tdt-0.6b-v3`` or ``-v2``).

    ``version``: FluidAudio's ``v2`` or ``v3``; default the one ``out_dir``'s name says, else
    :func:`version_for`.

    Everything is written to a staging folder, checked with :func:`check_layout` and only
    then moved into place; a layout mismatch raises :class:`~parakeet_nb.coreml.export.ExportError`.
    Packages of other models in an existing folder are kept.
    """
    out_dir = Path(out_dir)
    named = {folder_name: v for v, folder_name in fa.FOLDER.items()}
    version = version_for(modules, version if version is not None else named.get(out_dir.name))
    names = components(version, only)
    stems = {m.component: m.stem for m in fa.models(version)}
    folder = out_dir if out_dir.name == fa.FOLDER[version] else out_dir / fa.FOLDER[version]
    for path in (out_dir, folder):
        if path.exists() and not path.is_dir():
            raise exporter.ExportError(f"{path}: exists and is a file; expected a folder (or a path that does not exist)")
    vocab, vocab_source = vocabulary(modules)
    folder.parent.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix=f".{folder.name}.fluidaudio-", dir=folder.parent))
    try:
        staging = root / folder.name
        result = exporter.export(modules, staging, only=names, precision=precision, compile=compile, progress=progress)
        files = []
        for r in result.components:
            for suffix in (fa.SOURCE_SUFFIX, fa.COMPILED_SUFFIX):
                built = staging / Path(r.file).with_suffix(suffix).name
                if built.exists():
                    os.replace(built, staging / f"{stems[r.name]}{suffix}")
                    files.append(f"{stems[r.name]}{suffix}")
            r.file = f"{stems[r.name]}{fa.SOURCE_SUFFIX}"
        (staging / fa.VOCABULARY_FILE).write_text(json.dumps(vocab, ensure_ascii=False, indent=0) + "\n", encoding="utf-8")
        report = check_layout(staging, version=version, only=names)
        if not report.clean:
            raise exporter.ExportError(
                f"the FluidAudio {version} layout came out wrong: "
                + "; ".join(f"{f.subject}: {f.message}" for f in report.of("mismatch"))
            )
        done = FluidAudioExport(folder, version, result, report, vocab_source)
        metadata = _metadata(result.metadata, folder, done, {r.name: r.file for r in result.components}, stems)
        result.metadata = metadata
        (staging / "metadata.json").write_text(json.dumps(metadata, indent=2, ensure_ascii=False) + "\n")
        (staging / exporter.COMPILE_SCRIPT).write_text(
            exporter.compile_script([c["file"] for c in metadata["components"].values()]))
        exporter._publish(staging, folder, [*files, fa.VOCABULARY_FILE, exporter.COMPILE_SCRIPT])
    finally:
        shutil.rmtree(root, ignore_errors=True)
    result.out_dir = folder
    report.folder = folder
    return done


def _metadata(meta: dict[str, Any], folder: Path, done: FluidAudioExport, files: dict[str, str],
              stems: dict[str, str]) -> dict[str, Any]:
    """``metadata.json`` of the export with FluidAudio's file names and a ``layout`` section;
    entries of earlier packages in ``folder`` from the same model are kept."""
    components = dict(meta["components"])
    for name, file in files.items():
        components[name] = {**components[name], "file": file}
    old = exporter.previous_metadata(folder)
    if old.get("model", {}).get("source") == meta["model"]["source"] and old.get("layout", {}).get("name") == "fluidaudio":
        for name, entry in old.get("components", {}).items():
            if name not in components and (folder / entry["file"]).exists():
                components[name] = entry
    ordered = {n: components[n] for n in stems if n in components}
    version = done.version
    return {
        **meta,
        "components": ordered,
        "layout": {
            "name": "fluidaudio",
            "version": version,
            "folder": fa.FOLDER[version],
            "repo": fa.REPOS[version],
            "fluidaudio_commit": fa.COMMIT,
            "files": {n: f"{stems[n]}{fa.COMPILED_SUFFIX}" for n in ordered},
            "compute_units": {m.stem: m.compute_units for m in fa.models(version)},
            "vocabulary": {"file": fa.VOCABULARY_FILE, "source": done.vocabulary},
            "runtime_sizes": {f.symbol: f.values[version] for f in fa.RUNTIME_SIZES},
            "model_sizes": done.report.sizes,
            "runnable_by_fluidaudio": done.unmet is None,
            "unmet": done.unmet,
            "chunking": asdict(fa.CHUNKING[version]),
        },
    }
