"""The interactive layout explorer: type a shape, see its N D C H W and verdict.

:func:`verdict_html` is the pure function that does the work (unit-tested); the widget
from :func:`layout_explorer` only wires a text box to it.
"""

from __future__ import annotations

import html

from parakeet_nb.ane.layout import AXES, LIMITS, Verdict, judge_text, to_layout

_STATUS_COLORS = {"ok": "#2e7d32", "over_limit": "#c62828", "ambiguous": "#ef6c00", "invalid": "#6d6d6d"}
_STATUS_WORDS = {
    "ok": "within the ANE limits",
    "over_limit": "over the ANE limits",
    "ambiguous": "ambiguous (N or D?)",
    "invalid": "not a Core ML shape",
}


def verdict_html(text: str) -> str:
    """HTML for the shape typed as ``text``: a verdict line, an N D C H W table, the error text.

    Every element carries a ``data-status`` attribute (``ok``, ``over_limit``,
    ``ambiguous`` or ``invalid``) so a browser test can read the verdict.
    """
    verdict: Verdict = judge_text(text)
    color = _STATUS_COLORS[verdict.status]
    parts = [
        f'<div class="parakeet-verdict" data-status="{verdict.status}" style="font-family: monospace">',
        f'<b style="color: {color}">{_STATUS_WORDS[verdict.status]}</b>: {html.escape(verdict.message)}',
    ]
    if verdict.shape is not None:
        layout = to_layout(verdict.shape)
        cells = []
        for axis in AXES:
            size = layout.bound(axis)
            low, high = LIMITS[axis]
            over = size is None or not low <= size <= high
            style = f"color: {_STATUS_COLORS['over_limit']}; font-weight: bold" if over else ""
            cells.append(f'<td style="{style}">{axis} {size if size is not None else "?"}<br><small>{low}-{high}</small></td>')
        parts.append('<table style="border-collapse: collapse"><tr>' + "".join(cells) + "</tr></table>")
    if verdict.error_text:
        parts.append(f"<pre>{html.escape(verdict.error_text)}</pre>")
    parts.append("</div>")
    return "\n".join(parts)


def layout_explorer(initial: str = "1, 240000"):
    """An ipywidgets box: a text field for a shape and the live verdict below it."""
    import ipywidgets as widgets

    box = widgets.Text(value=initial, description="shape", placeholder="e.g. 1, 15, 16000",
                       continuous_update=True, layout=widgets.Layout(width="420px"))
    out = widgets.HTML(value=verdict_html(initial))

    def update(change) -> None:
        out.value = verdict_html(change["new"])

    box.observe(update, names="value")
    return widgets.VBox([box, out])
