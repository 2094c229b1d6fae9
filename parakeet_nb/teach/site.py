"""Render the executed notebooks into a static HTML site: ``python -m parakeet_nb.teach.site``.

The site is what a reader meets without a Jupyter server: an ``index.html`` that tells
the story in order (one line per notebook: its first markdown heading and the first
paragraph after it) and one page per notebook, each with a nav bar (index, previous,
next). Links between notebooks (``01_....ipynb``) are rewritten to the ``.html`` pages.
The notebooks are read as committed, never executed.

Why nbconvert's ``HTMLExporter``: it is already a pinned dependency (the notebooks are
tested with it through nbval), and it builds fully offline -- its ``lab`` template and
CSS ship inside the package (``share/jupyter/nbconvert/templates``). Site generators
such as jupyter-book or Sphinx themes would add dependencies and may fetch assets.

Offline, also for the reader: the stock ``lab`` template adds ``<script src=...>`` tags
for require.js, MathJax, Mermaid and the ipywidgets HTML manager, all from CDNs. These
fetch nothing at build time, but the pages would ask the network when opened, so the
template used here (:data:`_TEMPLATE`, an extension of ``lab``) empties those blocks.
Consequences: no notebook uses math, and widget outputs (the layout explorer in 02)
fall back to their stored text representation. PNG outputs are embedded as
``data:image/png;base64`` URIs (nbconvert's default), so every page is one file.

The build writes into a temporary folder next to ``--out`` and then swaps it in, so a
failed build never leaves a half-written site behind.

Needs the ``dev`` extra (nbconvert, its jinja2 and mistune); they are imported lazily.
"""

from __future__ import annotations

import argparse
import copy
import html
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import nbformat

from parakeet_nb.paths import ROOT

#: The template: the stock ``lab`` page without any remote ``<script>`` and with a nav bar
#: (``resources["parakeet_nav"]``) at the top and bottom of the page.
_TEMPLATE = """\
{%- extends 'index.html.j2' -%}
{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}
{% block jupyter_widgets %}{% endblock jupyter_widgets %}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{%- block html_head_css -%}
<style type="text/css">
nav.parakeet-nav { display: flex; gap: 1.5em; padding: 0.6em 1em; margin: 0 0 1em 0;
  border-bottom: 1px solid #ccc; font-family: sans-serif; background: #f7f7f7; }
nav.parakeet-nav.bottom { border-top: 1px solid #ccc; border-bottom: none; margin: 1em 0 0 0; }
</style>
{%- endblock html_head_css -%}
{%- block body_header -%}
{{ super() }}
{{ resources.parakeet_nav }}
{%- endblock body_header -%}
{% block body_footer %}
{{ resources.parakeet_nav | replace('class="parakeet-nav"', 'class="parakeet-nav bottom"') }}
{{ super() }}
{% endblock body_footer %}
"""
_TEMPLATE_NAME = "parakeet_site.html.j2"

#: A relative link to a notebook inside an ``href``: group 1 the path without the
#: suffix, group 2 an optional ``#anchor``. Links with a scheme (``https:``) are left alone.
_NOTEBOOK_HREF = re.compile(r'href="(?![A-Za-z][A-Za-z0-9+.-]*:)([^"#?]*?)\.ipynb(#[^"]*)?"')


@dataclass(frozen=True)
class Page:
    """One notebook of the site: where it comes from, where it goes, how the index shows it."""

    source: Path
    title: str
    summary_html: str

    @property
    def href(self) -> str:
        """The page's file name inside the site (``02_x.ipynb`` becomes ``02_x.html``)."""
        return self.source.with_suffix(".html").name


def rewrite_notebook_links(text: str) -> str:
    """``href="01_x.ipynb#a"`` becomes ``href="01_x.html#a"``; absolute URLs stay as they are."""
    return _NOTEBOOK_HREF.sub(lambda m: f'href="{m.group(1)}.html{m.group(2) or ""}"', text)


def _markdown_inline(text: str) -> str:
    """``text`` (one markdown paragraph) as HTML without the surrounding ``<p>``."""
    import mistune

    rendered = str(mistune.html(text)).strip()
    if rendered.startswith("<p>") and rendered.endswith("</p>"):
        rendered = rendered[3:-4]
    return rewrite_notebook_links(rendered)


def describe(nb: nbformat.NotebookNode, fallback_title: str) -> tuple[str, str]:
    """The title and summary (HTML) of a notebook for the index.

    The title is the first markdown heading of the notebook (without the ``#``); the
    summary the first paragraph of markdown after it, joined into one line.
    """
    lines: list[str] = []
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            lines.extend(cell.source.splitlines())
            lines.append("")
    title = fallback_title
    paragraph: list[str] = []
    seen_heading = False
    in_fence = False
    for line in lines:
        stripped = line.strip()
        if stripped.startswith("```"):
            in_fence = not in_fence
            if paragraph:
                break
            continue
        if in_fence:
            continue
        if not seen_heading:
            if stripped.startswith("#"):
                title = stripped.lstrip("#").strip()
                seen_heading = True
            continue
        if not stripped or stripped.startswith("#"):
            if paragraph:
                break
            continue
        paragraph.append(stripped)
    return title, _markdown_inline(" ".join(paragraph)) if paragraph else ""


def _nav_html(index: int, pages: Sequence[Page]) -> str:
    """The nav bar of page ``index``: back to the index, previous and next notebooks."""
    links = ['<a class="parakeet-index" href="index.html">&#8962; Index</a>']
    if index > 0:
        prev = pages[index - 1]
        links.append(f'<a class="parakeet-prev" rel="prev" href="{prev.href}">&larr; {html.escape(prev.title)}</a>')
    if index + 1 < len(pages):
        nxt = pages[index + 1]
        links.append(f'<a class="parakeet-next" rel="next" href="{nxt.href}">{html.escape(nxt.title)} &rarr;</a>')
    return '<nav class="parakeet-nav">' + "".join(links) + "</nav>"


def _exporter():
    """An ``HTMLExporter`` on :data:`_TEMPLATE` (the ``lab`` template, offline)."""
    from jinja2 import DictLoader
    from nbconvert import HTMLExporter

    return HTMLExporter(
        template_name="lab",
        template_file=_TEMPLATE_NAME,
        extra_loaders=[DictLoader({_TEMPLATE_NAME: _TEMPLATE})],
    )


def render_page(nb: nbformat.NotebookNode, page: Page, nav_html: str) -> str:
    """The HTML page of one notebook (the notebook itself is not modified)."""
    nb = copy.deepcopy(nb)
    # Without widget state, widget outputs fall back to their text; nothing asks a CDN.
    nb.metadata.pop("widgets", None)
    nb.metadata["title"] = page.title
    body, _ = _exporter().from_notebook_node(
        nb, resources={"parakeet_nav": nav_html, "metadata": {"name": page.source.stem}}
    )
    return rewrite_notebook_links(body)


def render_index(pages: Sequence[Page], title: str = "parakeet-nb") -> str:
    """The index page: the notebooks in order, one line each (title and first paragraph)."""
    items = "\n".join(
        f'<li><a href="{p.href}">{html.escape(p.title)}</a>'
        + (f' &mdash; <span class="summary">{p.summary_html}</span>' if p.summary_html else "")
        + "</li>"
        for p in pages
    )
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8" />
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<title>{html.escape(title)}</title>
<style type="text/css">
body {{ font-family: sans-serif; max-width: 60em; margin: 2em auto; padding: 0 1em; line-height: 1.5; }}
li {{ margin-bottom: 0.8em; }}
code {{ background: #f2f2f2; padding: 0 0.2em; }}
</style>
</head>
<body>
<h1>{html.escape(title)}</h1>
<p>The notebooks in reading order, rendered as committed (executed).</p>
<ol class="parakeet-story">
{items}
</ol>
</body>
</html>
"""


def collect_pages(notebooks_dir: Path) -> list[tuple[Page, nbformat.NotebookNode]]:
    """Every ``NN_*.ipynb`` of ``notebooks_dir`` in name order, read and described."""
    found = []
    for path in sorted(notebooks_dir.glob("[0-9][0-9]_*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        title, summary = describe(nb, path.stem)
        found.append((Page(source=path, title=title, summary_html=summary), nb))
    return found


def build_site(notebooks_dir: Path, out: Path) -> list[Path]:
    """Render ``notebooks_dir`` into ``out`` (replaced atomically); the written files.

    Everything is written into a temporary folder beside ``out`` first; only a complete
    build replaces ``out``.
    """
    found = collect_pages(notebooks_dir)
    if not found:
        raise FileNotFoundError(f"no NN_*.ipynb notebooks in {notebooks_dir}")
    pages = [page for page, _ in found]
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        written = [staging / "index.html"]
        written[0].write_text(render_index(pages), encoding="utf-8")
        for i, (page, nb) in enumerate(found):
            target = staging / page.href
            target.write_text(render_page(nb, page, _nav_html(i, pages)), encoding="utf-8")
            written.append(target)
        old = None
        if out.exists():
            old = out.with_name(f".{out.name}-old-{staging.name}")
            out.rename(old)
        staging.rename(out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return [out / path.name for path in written]


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m parakeet_nb.teach.site [--notebooks DIR] [--out DIR]``."""
    parser = argparse.ArgumentParser(prog="python -m parakeet_nb.teach.site", description=__doc__.splitlines()[0])
    parser.add_argument("--notebooks", type=Path, default=ROOT / "notebooks", help="folder of executed notebooks")
    parser.add_argument("--out", type=Path, default=Path("build/site"), help="site folder (replaced)")
    args = parser.parse_args(argv)
    written = build_site(args.notebooks, args.out)
    print(f"wrote {len(written)} pages to {args.out}/ (open {args.out}/index.html)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
