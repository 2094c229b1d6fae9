"""The layout explorer: the pure function behind the widget, and the widget wiring."""

import pytest

from parakeet_nb.teach import explorer


@pytest.mark.parametrize("text, status", [
    ("1, 240000", "over_limit"), ("[1, 15, 16000]", "ok"), ("1x128x1501", "ok"),
    ("20000, 1, 1, 1", "ambiguous"), ("1, -3", "invalid"), ("banana", "invalid"), ("1,1,1,1,1,1", "invalid"),
])
def test_verdict_html_status(text, status):
    html = explorer.verdict_html(text)
    assert f'data-status="{status}"' in html
    assert html.count("<div") == html.count("</div>") == 1


def test_verdict_html_shows_axes_and_device_text():
    html = explorer.verdict_html("1, 240000")
    assert "W 240000" in html and "N 1" in html
    assert "Tensor dimensions N1D1C1H1W240000 are not within supported range" in html
    assert "Invalid layer" not in explorer.verdict_html("1, 16384")


def test_verdict_html_escapes_input():
    assert "<script>" not in explorer.verdict_html("<script>alert(1)</script>")


def test_widget_updates_on_typing():
    box = explorer.layout_explorer("1, 240000")
    text, out = box.children
    assert 'data-status="over_limit"' in out.value
    text.value = "1, 15, 16000"
    assert 'data-status="ok"' in out.value
