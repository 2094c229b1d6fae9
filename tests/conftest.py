"""Shared fixtures for the unit tests.

The expensive things are made once per test session and shared:

* ``tiny_modules``: the ``tiny`` preset's NeMo modules (``presets.build("tiny")``).
* ``tiny_export`` / ``tiny_export_result``: every component of the tiny preset exported
  once with :func:`parakeet_nb.coreml.export.export` (default `auto` precision profile: fp16
  compute for the ANE components, fp32 for `preprocessor` and `mel_encoder`). **Read-only**: a test that wants to
  change the folder copies it first (``shutil.copytree``).
* ``tiny_nemo``: a small ``.nemo`` TDT checkpoint made offline with
  :func:`parakeet_nb.model.checkpoint.save_tiny_checkpoint` (random weights, SentencePiece
  tokenizer trained on :data:`TOKENIZER_WORDS`); ``tiny_tokenizer_dir`` is that tokenizer.
* ``save_mlprogram``: save a MIL-builder program as an fp32 iOS17 ``.mlpackage``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

import pytest

#: Words the tiny checkpoint's tokenizer is trained on (the clips' texts).
TOKENIZER_WORDS: list[str] = (
    "the neural engine limits every tensor axis to sixteen thousand three hundred eighty four "
    "elements a fifteen second waveform has two hundred and forty thousand samples so the fused "
    "model fails on the phone parakeet listens"
).split()


@pytest.fixture(scope="session")
def tiny_modules():
    """The tiny preset's NeMo modules (seeded random weights). Do not mutate."""
    from parakeet_nb.model import presets

    return presets.build("tiny")


@pytest.fixture(scope="session")
def tiny_export_result(tiny_modules, tmp_path_factory):
    """The :class:`~parakeet_nb.coreml.export.ExportResult` of exporting every tiny component once."""
    from parakeet_nb.coreml.export import export

    out = tmp_path_factory.mktemp("tiny_export") / "parakeet_coreml"
    return export(tiny_modules, out)


@pytest.fixture(scope="session")
def tiny_export(tiny_export_result) -> Path:
    """The folder with every tiny component and ``metadata.json``. Read-only: copy to change."""
    return Path(tiny_export_result.out_dir)


@pytest.fixture(scope="session")
def tiny_nemo(tmp_path_factory) -> Path:
    """A ``.nemo`` TDT checkpoint with the tiny preset's shapes (random weights, real tokenizer)."""
    from parakeet_nb.model import checkpoint
    from parakeet_nb.model import presets

    folder = tmp_path_factory.mktemp("tiny_nemo")
    return checkpoint.save_tiny_checkpoint(
        folder / "parakeet_tiny.nemo", presets.PRESETS["tiny"], TOKENIZER_WORDS, folder / "work"
    )


@pytest.fixture(scope="session")
def tiny_tokenizer_dir(tiny_nemo) -> Path:
    """The SentencePiece tokenizer folder (``tokenizer.model``, ``vocab.txt``) of ``tiny_nemo``."""
    folder = tiny_nemo.parent / "work" / "tokenizer"
    assert (folder / "tokenizer.model").is_file()
    return folder


@pytest.fixture(scope="session")
def save_mlprogram(tmp_path_factory) -> Callable[..., Path]:
    """``save_mlprogram(prog, name=None) -> Path``: convert a ``mb.program`` and save it.

    fp32 compute precision, iOS17 target (the project's settings); each call writes a new
    package in a session folder.
    """
    from parakeet_nb import _quiet

    _quiet.import_heavy()
    import coremltools as ct

    folder = tmp_path_factory.mktemp("mlprograms")
    counter = itertools.count()

    def save(prog, name: str | None = None) -> Path:
        path = folder / f"{name or 'prog'}_{next(counter)}.mlpackage"
        model = ct.convert(
            prog,
            convert_to="mlprogram",
            compute_precision=ct.precision.FLOAT32,
            minimum_deployment_target=ct.target.iOS17,
            skip_model_load=True,
        )
        model.save(str(path))
        return path

    return save


@pytest.fixture(scope="module")
def one_blas_thread():
    """Small matrices on two shared cores: one BLAS thread is faster and steadier."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover
        yield
        return
    with threadpool_limits(1):
        yield
