"""``check-layout``: compare any folder of Core ML models with what a runtime's loader reads.

The runtime is FluidAudio (:mod:`parakeet_nb.coreml.fluidaudio_contract`). Each model's
declared inputs and outputs are read from its ``.mlpackage`` with coremltools
(``ct.models.MLModel(path, skip_model_load=True).get_spec()``); nothing is parsed by hand.
Findings, each with the FluidAudio source line it rests on:

* **mismatches** (the folder is not what the loader reads; exit code 1): ``missing``,
  ``rename`` (a model under parakeet-nb's default file name), ``name`` (an input or output
  it feeds or reads is absent), ``shape``, ``dtype``, ``vocabulary``, ``folder``, ``compiled``
  (an ``.mlmodelc`` without ``coremldata.bin``).
* **sizes**: shapes that are consistent but not the 0.6B sizes FluidAudio hard-codes (e.g.
  the ``tiny`` preset's width 64): the layout is right, FluidAudio cannot run the model.
  They count as mismatches only with ``strict=True``.
* **notes**: ``compile`` (only the ``.mlpackage`` is there: FluidAudio loads the compiled
  ``.mlmodelc``, made on a Mac), ``extra`` (files FluidAudio never opens), ``unchecked``
  (an ``.mlmodelc`` without its ``.mlpackage``: coremltools cannot read its inputs here).

:class:`LayoutUnreadable` (exit code 2) is raised for a path that is not a folder or a
package coremltools cannot read.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from parakeet_nb import _quiet
from parakeet_nb.coreml import fluidaudio_contract as fa
from parakeet_nb.coreml.convert import COMPONENTS

_quiet.import_heavy()

#: Runtimes ``check-layout`` knows.
RUNTIMES: tuple[str, ...] = ("fluidaudio",)
#: Files the parakeet-nb exporter writes beside the models; FluidAudio never opens them.
OWN_FILES = frozenset({"metadata.json", "compile.sh"})

MISMATCH_KINDS = ("missing", "rename", "name", "shape", "dtype", "vocabulary", "folder", "compiled")


class LayoutUnreadable(ValueError):
    """The folder or a model in it cannot be read; the message says which and why."""


@dataclass(frozen=True)
class Finding:
    kind: str
    subject: str  # a file, or "File.tensor"
    message: str
    source: str  # "File.swift:lines" of FluidAudio at fluidaudio_contract.COMMIT
    target: str = ""  # for a ``rename``: the file name FluidAudio reads

    @property
    def severity(self) -> str:
        if self.kind in MISMATCH_KINDS:
            return "mismatch"
        return "size" if self.kind == "size" else "note"


@dataclass
class LayoutReport:
    """Everything ``check-layout`` found in one folder."""

    folder: Path
    runtime: str
    version: str
    version_reason: str
    strict: bool
    findings: list[Finding] = field(default_factory=list)
    sizes: dict[str, int] = field(default_factory=dict)  # symbols bound from the folder's models
    checked: list[str] = field(default_factory=list)  # model stems whose I/O was read

    def of(self, severity: str) -> list[Finding]:
        return [f for f in self.findings if f.severity == severity]

    @property
    def clean(self) -> bool:
        """No mismatch (and, if ``strict``, no size FluidAudio cannot run)."""
        return not self.of("mismatch") and not (self.strict and self.of("size"))

    @property
    def exit_code(self) -> int:
        return 0 if self.clean else 1

    def renames(self) -> list[tuple[str, str]]:
        """``(current file, file FluidAudio reads)`` for every ``rename`` finding."""
        return [(f.subject, f.target) for f in self.findings if f.kind == "rename"]

    def verdict(self) -> str:
        n_mis, n_size = len(self.of("mismatch")), len(self.of("size"))
        compile_notes = [f for f in self.findings if f.kind == "compile"]
        if n_mis:
            head = f"{n_mis} mismatch{'es' if n_mis != 1 else ''}: FluidAudio {self.version} cannot load this folder"
        elif n_size:
            head = (f"layout clean; FluidAudio {self.version} cannot run this model: "
                    f"{n_size} size{'s' if n_size != 1 else ''} differ from the 0.6B sizes it hard-codes")
        else:
            head = f"clean: the folder is what FluidAudio {self.version} reads"
        if compile_notes and not n_mis:
            head += f" (after compiling {len(compile_notes)} package{'s' if len(compile_notes) != 1 else ''} to .mlmodelc on a Mac)"
        return head

    def table(self) -> str:
        """One line per finding (severity, kind, subject, message, source), then the verdict."""
        rows = [("severity", "kind", "subject", "finding", "source")]
        order = {"mismatch": 0, "size": 1, "note": 2}
        for f in sorted(self.findings, key=lambda f: order[f.severity]):
            rows.append((f.severity, f.kind, f.subject, f.message, f.source))
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        lines = [f"{self.folder.name}/: FluidAudio {self.version} ({self.version_reason}), "
                 f"commit {fa.COMMIT[:7]}"]
        if len(rows) > 1:
            lines += ["  ".join(c.ljust(w) for c, w in zip(r[:4], widths)) + "  " + r[4] for r in rows]
        lines.append(self.verdict())
        return "\n".join(line.rstrip() for line in lines)

    def as_dict(self) -> dict[str, Any]:
        return {
            "folder": str(self.folder),
            "runtime": self.runtime,
            "fluidaudio_commit": fa.COMMIT,
            "version": self.version,
            "version_reason": self.version_reason,
            "strict": self.strict,
            "clean": self.clean,
            "verdict": self.verdict(),
            "sizes": self.sizes,
            "checked": self.checked,
            "findings": [{**asdict(f), "severity": f.severity} for f in self.findings],
            "renames": [list(r) for r in self.renames()],
        }


# --------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class Declared:
    """An input or output as the model's spec declares it."""

    name: str
    dtype: str  # "fp32", "fp16", "int32", "double", ... (or the feature type for non-arrays)
    shape: tuple[int, ...] | None  # None: flexible (a range or enumerated shapes)


_ARRAY_DTYPES = {"FLOAT32": "fp32", "FLOAT16": "fp16", "INT32": "int32", "DOUBLE": "double", "INT8": "int8"}


def read_io(package: Path) -> tuple[list[Declared], list[Declared]]:
    """Declared inputs and outputs of ``package`` (coremltools spec, weights not loaded)."""
    import coremltools as ct
    from coremltools.proto import FeatureTypes_pb2

    try:
        spec = ct.models.MLModel(str(package), skip_model_load=True).get_spec()
    except Exception as exc:  # coremltools raises many types for a bad package
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise LayoutUnreadable(f"{package}: coremltools cannot read it ({reason})") from None

    def describe(feature) -> Declared:
        kind = feature.type.WhichOneof("Type")
        if kind != "multiArrayType":
            return Declared(feature.name, str(kind), None)
        array = feature.type.multiArrayType
        dtype = FeatureTypes_pb2.ArrayFeatureType.ArrayDataType.Name(array.dataType)
        flexible = array.WhichOneof("ShapeFlexibility") is not None
        return Declared(feature.name, _ARRAY_DTYPES.get(dtype, dtype.lower()), None if flexible else tuple(int(s) for s in array.shape))

    return [describe(f) for f in spec.description.input], [describe(f) for f in spec.description.output]


# --------------------------------------------------------------------------- checking


def _unify(pattern: tuple[int | str, ...], shape: tuple[int, ...], sizes: dict[str, int]) -> dict[str, int] | None:
    """``sizes`` extended so that ``pattern`` (ints and symbols) equals ``shape``, or ``None``."""
    if len(pattern) != len(shape):
        return None
    bound = dict(sizes)
    for want, got in zip(pattern, shape):
        if isinstance(want, str):
            if bound.setdefault(want, got) != got:
                return None
        elif want != got:
            return None
    return bound


def _fmt(shape) -> str:
    return "[" + ", ".join(str(s) for s in shape) + "]"


def infer_version(folder: Path) -> tuple[str, str]:
    """FluidAudio's version for ``folder`` and why: its name (as ``AsrModels.modelsExist``
    infers it, AsrModels.swift:145-156), else the joint file present, else the loader's default."""
    name = folder.name.lower()
    for version, folder_name in fa.FOLDER.items():
        if folder_name in name:
            return version, f"folder name {folder.name}"
    for version, models in fa.MODELS.items():
        stem = models[-1].stem
        if any((folder / f"{stem}{suffix}").exists() for suffix in (fa.COMPILED_SUFFIX, fa.SOURCE_SUFFIX)):
            return version, f"{stem} present"
    return fa.DEFAULT_VERSION_NAME, "FluidAudio's default version"


def check_layout(
    folder: str | os.PathLike,
    runtime: str = "fluidaudio",
    version: str | None = None,
    only: list[str] | None = None,
    strict: bool = False,
) -> LayoutReport:
    """Compare ``folder`` with the loader of ``runtime`` (FluidAudio ``version``, default inferred).

    ``only``: parakeet-nb component names whose models are required (default: every model
    of the version; ``joint_decision`` stands for the version's joint). Raises
    :class:`LayoutUnreadable` for a missing folder or an unreadable package, ``ValueError``
    for an unknown runtime, version or component.
    """
    if runtime not in RUNTIMES:
        raise ValueError(f"unknown runtime {runtime!r}: expected one of {', '.join(RUNTIMES)}")
    folder = Path(folder)
    if not folder.is_dir():
        raise LayoutUnreadable(f"{folder}: not a folder" if folder.exists() else f"{folder}: no such folder")
    if version is None:
        version, reason = infer_version(folder)
    else:
        reason = "asked for"
    models = fa.models(version)
    if only:
        aliases = {m.component: m.component for m in models} | {"joint_decision": models[-1].component}
        unknown = [n for n in only if n not in aliases]
        if unknown:
            raise ValueError(f"unknown component(s) {', '.join(unknown)}: expected names from "
                             f"{', '.join(m.component for m in models[:-1])}, joint_decision")
        wanted = {aliases[n] for n in only}
        models = tuple(m for m in models if m.component in wanted)
    report = LayoutReport(folder, runtime, version, reason, strict)
    add = report.findings.append

    if folder.name != fa.FOLDER[version]:
        add(Finding("folder", folder.name,
                    f"AsrModels.load(from:) reads <parent>/{fa.FOLDER[version]}: rename the folder to {fa.FOLDER[version]}",
                    str(fa.REPO_PATH)))

    expected_files = {fa.VOCABULARY_FILE}
    declared: dict[str, tuple[list[Declared], list[Declared]]] = {}
    for model in models:
        compiled = folder / f"{model.stem}{fa.COMPILED_SUFFIX}"
        package = folder / f"{model.stem}{fa.SOURCE_SUFFIX}"
        expected_files |= {compiled.name, package.name}
        default = next((folder / f for f in _default_files(model.component) if (folder / f).exists()), None)
        if compiled.exists() and not (compiled / fa.COMPILED_MARKER).is_file():
            add(Finding("compiled", compiled.name, f"not a compiled model: no {fa.COMPILED_MARKER} inside",
                        str(fa.COMPILED_LAYOUT)))
        if package.exists():
            declared[model.stem] = read_io(package)
            if not compiled.exists():
                add(Finding("compile", package.name,
                            f"FluidAudio loads {compiled.name}: compile it on a Mac "
                            f"(xcrun coremlcompiler compile {package.name} .)", str(fa.LOAD)))
        elif compiled.exists():
            add(Finding("unchecked", compiled.name,
                        f"inputs and outputs not checked: coremltools reads {package.name}, not a compiled bundle",
                        str(fa.LOAD)))
        elif default is not None:
            expected_files.add(default.name)
            add(Finding("rename", default.name, f"rename to {package.name} (then compile it to {compiled.name})",
                        str(fa.MODEL_NAMES), package.name))
            declared[model.stem] = read_io(default)
        else:
            add(Finding("missing", compiled.name, f"FluidAudio {version} loads {compiled.name}; the folder has neither it nor {package.name}",
                        str(fa.REQUIRED_V3 if version == "v3" else fa.REQUIRED_V2)))

    sizes = _check_tensors(models, declared, report)
    report.sizes = sizes
    report.checked = [m.stem for m in models if m.stem in declared]
    _check_vocabulary(folder / fa.VOCABULARY_FILE, version, sizes, report)
    _check_sizes(version, sizes, report)

    for entry in sorted(folder.iterdir()):
        if entry.name not in expected_files and entry.name not in OWN_FILES and not entry.name.startswith("."):
            add(Finding("extra", entry.name, "FluidAudio never opens it", str(fa.REQUIRED_V3 if version == "v3" else fa.REQUIRED_V2)))
    return report


def _default_files(component: str) -> list[str]:
    """parakeet-nb's default file names that hold ``component`` (the v3 joint may be the plain one)."""
    names = [COMPONENTS[component].file]
    if component == "joint_decision_topk":
        names.append(COMPONENTS["joint_decision"].file)
    return names


def _check_tensors(models, declared, report: LayoutReport) -> dict[str, int]:
    """Names, dtypes and shapes of every model read; the symbols bound from them."""
    add = report.findings.append
    sizes: dict[str, int] = {}
    # Unambiguous layouts first, so that alternatives (encoder [1,D,T] or [1,T,D]) are decided by them.
    facts = [(m, fact, io) for m in models for io, facts in (("input", m.inputs), ("output", m.outputs)) for fact in facts]
    facts.sort(key=lambda item: item[1].shapes is not None and len(item[1].shapes) > 1)
    top_k_counts: dict[str, int] = {}
    for model, fact, io in facts:
        if model.stem not in declared:
            continue
        ins, outs = declared[model.stem]
        found = {d.name: d for d in (ins if io == "input" else outs)}
        subject = f"{model.stem}.{fact.name}"
        if fact.name not in found:
            have = ", ".join(found) or "none"
            add(Finding("name", subject, f"{io} {fact.name} missing (the model's {io}s: {have})", str(fact.source)))
            continue
        d = found[fact.name]
        if d.dtype != fact.dtype:
            add(Finding("dtype", subject, f"{d.dtype}, FluidAudio reads {fact.dtype}", str(fact.source)))
        if d.shape is None:
            add(Finding("shape", subject, "flexible shape: FluidAudio feeds and reads one fixed shape", str(fact.source)))
            continue
        if fact.shapes is None:
            top_k_counts[fact.name] = math.prod(d.shape)
            continue
        for pattern in fact.shapes:
            bound = _unify(pattern, d.shape, sizes)
            if bound is not None:
                sizes = bound
                break
        else:
            wanted = " or ".join(_fmt(p) for p in fact.shapes)
            add(Finding("shape", subject, f"{_fmt(d.shape)}, FluidAudio expects {wanted} (with {_known(sizes)})", str(fact.source)))
    if top_k_counts:
        ids, logits = top_k_counts.get("top_k_ids"), top_k_counts.get("top_k_logits")
        if ids is not None and logits is not None and ids != logits:
            add(Finding("shape", f"{models[-1].stem}.top_k_ids", f"{ids} ids but {logits} logits: FluidAudio needs as many of each",
                        str(fa.TOP_K_OUT)))
        if ids is not None:
            sizes["K"] = ids
    return sizes


def _known(sizes: dict[str, int]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(sizes.items())) or "no size bound yet"


def _check_vocabulary(path: Path, version: str, sizes: dict[str, int], report: LayoutReport) -> None:
    add = report.findings.append
    src = str(fa.VOCABULARY)
    if not path.is_file():
        add(Finding("vocabulary", path.name, "missing: AsrModels.load throws modelNotFound without it", src))
        return
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        add(Finding("vocabulary", path.name, f"not readable JSON ({str(exc).splitlines()[0]})", src))
        return
    if not isinstance(data, dict):
        add(Finding("vocabulary", path.name, f"a JSON {type(data).__name__}; the 0.6B loader reads an object {{\"id\": \"piece\"}}", src))
        return
    bad = [k for k, v in data.items() if not (k.lstrip("-").isdigit() and isinstance(v, str))]
    if bad:
        add(Finding("vocabulary", path.name, f"{len(bad)} entries are not \"<integer id>\": \"<piece>\" (first: {bad[0]!r}); FluidAudio skips them", src))
        return
    ids = sorted(int(k) for k in data)
    if ids != list(range(len(ids))):
        add(Finding("vocabulary", path.name, f"ids are not 0..{len(ids) - 1} without gaps", src))
        return
    sizes["V"] = len(ids)


def _check_sizes(version: str, sizes: dict[str, int], report: LayoutReport) -> None:
    for fact in fa.RUNTIME_SIZES:
        want = fact.values[version]
        if fact.symbol in sizes and sizes[fact.symbol] != want:
            report.findings.append(Finding(
                "size", fact.symbol, f"{fact.what} {sizes[fact.symbol]}; FluidAudio {version} hard-codes {want}", str(fact.source)))
