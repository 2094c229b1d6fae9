"""Read a saved Core ML ML Program with coremltools, for inspection on any OS.

``coremltools`` reads the package (``MLModel(..., skip_model_load=True)``, which needs no
Core ML runtime) and rebuilds its MIL program from the protobuf spec with its own
``milproto`` loader, weights included. Nothing here parses protobuf by hand.
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

from parakeet_nb import _quiet

_quiet.import_heavy()

import coremltools as ct  # noqa: E402
from coremltools.converters.mil.frontend.milproto.load import load as _load_milproto  # noqa: E402
from coremltools.converters.mil.mil import Program  # noqa: E402


class ModelReadError(ValueError):
    """A path that is not a readable Core ML ML Program; the message says why in one line."""


@dataclass
class LoadedProgram:
    """A package read from disk: its MIL program, its spec and where it came from."""

    path: Path
    program: Program
    spec: object  # coremltools.proto.Model_pb2.Model
    model: ct.models.MLModel

    @property
    def main(self):
        """The ``main`` function (``coremltools.converters.mil.mil.Function``)."""
        return self.program.functions["main"]


def load_program(path: str | os.PathLike) -> LoadedProgram:
    """Load ``path`` (an ``.mlpackage`` directory) as a MIL program.

    Raises :class:`ModelReadError` with a one-line reason when the path is missing, is
    not a Core ML package, is an old NeuralNetwork ``.mlmodel``, or is corrupt.
    """
    path = Path(path)
    if not path.exists():
        raise ModelReadError(f"{path}: no such file or directory")
    if path.is_dir() and not (path / "Manifest.json").is_file():
        raise ModelReadError(f"{path}: not a Core ML package (no Manifest.json in the folder)")
    if path.is_file() and zipfile.is_zipfile(path):
        raise ModelReadError(f"{path}: a zip archive, not a Core ML package; unzip it first")
    try:
        model = ct.models.MLModel(str(path), skip_model_load=True)
        spec = model.get_spec()
    except Exception as exc:  # coremltools raises many types for unreadable input
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelReadError(f"{path}: not a readable Core ML model ({reason})") from None
    kind = spec.WhichOneof("Type")
    if kind == "neuralNetwork" or kind in {"neuralNetworkClassifier", "neuralNetworkRegressor"}:
        raise ModelReadError(
            f"{path}: an old NeuralNetwork model ({kind}); this tool reads ML Programs "
            "(convert with convert_to='mlprogram')"
        )
    if kind is None:
        raise ModelReadError(f"{path}: an empty Core ML model (the package's model spec holds no model)")
    if kind != "mlProgram":
        raise ModelReadError(f"{path}: a Core ML model of type {kind!r}, not an ML Program")
    try:
        program = _load_milproto(
            spec,
            specification_version=spec.specificationVersion,
            file_weights_dir=model.weights_dir,
        )
    except Exception as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelReadError(f"{path}: corrupt ML Program ({reason})") from None
    if "main" not in program.functions:
        raise ModelReadError(f"{path}: the ML Program has no 'main' function")
    return LoadedProgram(path=path, program=program, spec=spec, model=model)
