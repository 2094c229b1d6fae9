"""Checks on the rendered site (:mod:`parakeet_nb.teach.site`) as a reader meets it.

The site is built once per module from the committed notebooks into a temporary folder
(about 10 s); every page is then checked for its images, for error outputs, for absolute
machine paths, for remote scripts and for links that lead nowhere.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

from parakeet_nb.teach import site
from parakeet_nb.paths import ROOT

NOTEBOOKS = ROOT / "notebooks"
NOTEBOOK_PATHS = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))

_PNG_IMG = re.compile(r'<img\b[^>]*\bsrc="data:image/png;base64,')
_MACHINE_PATH = re.compile(r"/(work|root|tmp|home)/[A-Za-z]")
_HREF = re.compile(r'href="([^"]*)"')
_REMOTE_ASSET = re.compile(r'<(?:script|link|img|iframe)\b[^>]*\b(?:src|href)="(?:https?:)?//', re.IGNORECASE)


def _png_outputs(path: Path) -> int:
    nb = nbformat.read(path, as_version=4)
    return sum(
        1
        for cell in nb.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if "image/png" in output.get("data", {})
    )


def _local_targets(page: str) -> list[str]:
    """The relative ``href`` targets of a page (no scheme, no pure ``#anchor``), without anchors."""
    targets = []
    for href in _HREF.findall(page):
        if re.match(r"[A-Za-z][A-Za-z0-9+.-]*:", href) or href.startswith(("#", "//")):
            continue
        targets.append(href.split("#", 1)[0])
    return targets


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site") / "site"
    written = site.build_site(NOTEBOOKS, out)
    assert all(path.is_file() for path in written)
    return out


def _page(built: Path, notebook: Path) -> str:
    return (built / notebook.with_suffix(".html").name).read_text(encoding="utf-8")


def test_there_are_notebooks():
    assert len(NOTEBOOK_PATHS) >= 2


@pytest.mark.parametrize("notebook", NOTEBOOK_PATHS, ids=lambda p: p.stem)
def test_page_exists_with_its_images(built: Path, notebook: Path):
    page = _page(built, notebook)
    assert len(_PNG_IMG.findall(page)) >= _png_outputs(notebook)


@pytest.mark.parametrize("notebook", NOTEBOOK_PATHS, ids=lambda p: p.stem)
def test_page_shows_no_error_output(built: Path, notebook: Path):
    nb = nbformat.read(notebook, as_version=4)
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, f"{notebook.name} is committed with an error output"
    page = _page(built, notebook)
    assert "Traceback (most recent call last)" not in page
    # The CSS defines .ansi-red-fg; a rendered traceback uses it as a class.
    assert 'class="ansi-red-fg' not in page


@pytest.mark.parametrize("notebook", NOTEBOOK_PATHS, ids=lambda p: p.stem)
def test_page_shows_no_machine_path(built: Path, notebook: Path):
    match = _MACHINE_PATH.search(_page(built, notebook))
    assert match is None, f"absolute path near: {_page(built, notebook)[match.start() - 60:match.end() + 60]!r}"


@pytest.mark.parametrize("name", ["index.html", *[p.with_suffix(".html").name for p in NOTEBOOK_PATHS]])
def test_page_fetches_nothing_remote(built: Path, name: str):
    page = (built / name).read_text(encoding="utf-8")
    assert _REMOTE_ASSET.search(page) is None
    assert "<script" not in page.lower()


def test_index_tells_the_story_in_order(built: Path):
    index = (built / "index.html").read_text(encoding="utf-8")
    # each list item starts with the link to its notebook; summaries may link to the primer
    titles = re.findall(r'<li><a href="([^"#]+)">', index)
    assert titles == [p.with_suffix(".html").name for p in NOTEBOOK_PATHS]
    for target in _local_targets(index):
        assert (built / target).is_file(), target
    for notebook in NOTEBOOK_PATHS:
        title, summary = site.describe(nbformat.read(notebook, as_version=4), notebook.stem)
        assert title and not title.startswith("#")
        assert summary, f"{notebook.name} has no first paragraph"
        assert title in index.replace("&#x27;", "'")


@pytest.mark.parametrize("position", range(len(NOTEBOOK_PATHS)), ids=lambda i: NOTEBOOK_PATHS[i].stem)
def test_nav_links_resolve(built: Path, position: int):
    page = _page(built, NOTEBOOK_PATHS[position])
    assert 'class="parakeet-index" href="index.html"' in page
    prev = re.search(r'class="parakeet-prev"[^>]*href="([^"]+)"', page)
    nxt = re.search(r'class="parakeet-next"[^>]*href="([^"]+)"', page)
    if position == 0:
        assert prev is None
    else:
        assert prev is not None and prev.group(1) == NOTEBOOK_PATHS[position - 1].with_suffix(".html").name
        assert (built / prev.group(1)).is_file()
    if position == len(NOTEBOOK_PATHS) - 1:
        assert nxt is None
    else:
        assert nxt is not None and nxt.group(1) == NOTEBOOK_PATHS[position + 1].with_suffix(".html").name
        assert (built / nxt.group(1)).is_file()


@pytest.mark.parametrize("notebook", NOTEBOOK_PATHS, ids=lambda p: p.stem)
def test_links_between_notebooks_resolve(built: Path, notebook: Path):
    targets = _local_targets(_page(built, notebook))
    assert not [t for t in targets if t.endswith(".ipynb")], "a notebook link was not rewritten"
    missing = sorted({t for t in targets if t and not (built / t).exists()})
    assert not missing, f"{notebook.name} links to pages that do not exist: {missing}"


def test_rewrite_notebook_links():
    text = '<a href="01_x.ipynb">a</a> <a href="02_y.ipynb#sec">b</a> <a href="https://h/n.ipynb">c</a>'
    assert site.rewrite_notebook_links(text) == (
        '<a href="01_x.html">a</a> <a href="02_y.html#sec">b</a> <a href="https://h/n.ipynb">c</a>'
    )


def test_describe_takes_first_heading_and_paragraph():
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("x = 1"),
        nbformat.v4.new_markdown_cell("# 07 · Title\n\nFirst *para*\ncontinues `here`.\n\nSecond."),
    ]
    title, summary = site.describe(nb, "fallback")
    assert title == "07 · Title"
    assert summary == "First <em>para</em> continues <code>here</code>."


def test_build_replaces_the_site_atomically(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    nbdir = tmp_path / "nbs"
    nbdir.mkdir()
    for i in range(2):
        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_markdown_cell(f"# 0{i} · Part {i}\n\nText {i}, see [next](01_b.ipynb).")]
        nbformat.write(nb, nbdir / f"0{i}_{'ab'[i]}.ipynb")
    out = tmp_path / "site"
    out.mkdir()
    (out / "stale.html").write_text("old")
    site.build_site(nbdir, out)
    assert sorted(p.name for p in out.iterdir()) == ["00_a.html", "01_b.html", "index.html"]
    assert 'href="01_b.html"' in (out / "00_a.html").read_text()

    def broken(*args, **kwargs):
        raise RuntimeError("render failed")

    monkeypatch.setattr(site, "render_page", broken)
    with pytest.raises(RuntimeError):
        site.build_site(nbdir, out)
    # The previous site is intact and no staging folder is left behind.
    assert sorted(p.name for p in out.iterdir()) == ["00_a.html", "01_b.html", "index.html"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nbs", "site"]
