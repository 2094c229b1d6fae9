"""The notebook runner: kernels start quietly, and nothing but the known line is hidden."""

from __future__ import annotations

import nbformat
import pytest

from parakeet_nb.teach import notebooks


@pytest.fixture
def tiny_notebook(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("print(6 * 7)")]
    path = tmp_path / "tiny.ipynb"
    nbformat.write(nb, path)
    return path


def test_kernel_start_noise_is_filtered_and_outputs_kept(tiny_notebook, capfd):
    notebooks.execute(tiny_notebook)
    assert not any(n in capfd.readouterr().err for n in notebooks.KERNEL_NOISE)
    assert nbformat.read(tiny_notebook, 4).cells[0].outputs[0]["text"] == "42\n"


def test_the_filter_hides_only_what_it_names(tiny_notebook, capfd, monkeypatch):
    """Without the filter list the kernel's warning reaches stderr: the filter is what hides it."""
    monkeypatch.setattr(notebooks, "KERNEL_NOISE", ())
    notebooks.execute(tiny_notebook)
    assert "Kernel is running over TCP without encryption." in capfd.readouterr().err
