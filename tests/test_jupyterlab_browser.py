"""A real JupyterLab in headless Chromium: run notebook 02 and use the layout explorer.

What a reader does, done by a browser: start ``jupyter lab`` on a copy of ``notebooks/``,
open ``02_coreml_layout_mapping.ipynb``, *Run > Run All Cells*, type shapes into the
explorer's ``shape`` box and read the verdict (``data-status`` of
:func:`parakeet_nb.teach.explorer.verdict_html`).

Requirements: Debian's ``chromium`` (``/usr/bin/chromium``, or ``$PARAKEET_NB_CHROMIUM``)
and the ``playwright`` Python package; Playwright's own browser download is not used.
Without either the test is skipped with the reason shown.

Isolation: the server serves a temporary copy of the notebooks, its Jupyter config,
runtime, settings and workspace folders are temporary, the notebook writes its models
under ``$PARAKEET_NB_BUILD`` (temporary), and the server is stopped (SIGTERM, then
SIGKILL) whatever happens.

Screenshot: the explorer cell is always captured into the test's ``tmp_path``; it is
copied to ``docs/jupyterlab_explorer.png`` only when ``PARAKEET_NB_SCREENSHOT`` is set
(``PARAKEET_NB_SCREENSHOT=1 pytest tests/test_jupyterlab_browser.py``), so ordinary test
runs never modify the repository.

Running all cells of notebook 02 takes about 60-90 s here; the timeouts are generous.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest

from parakeet_nb.paths import ROOT

NOTEBOOK = "02_coreml_layout_mapping.ipynb"
CHROMIUM = Path(os.environ.get("PARAKEET_NB_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
SCREENSHOT = ROOT / "docs" / "jupyterlab_explorer.png"
SCREENSHOT_MAX_BYTES = 300_000

SERVER_START_S = 120
#: All cells of notebook 02 (about 60-90 s on a quiet machine); ``$PARAKEET_NB_RUN_ALL_S`` overrides.
RUN_ALL_S = float(os.environ.get("PARAKEET_NB_RUN_ALL_S", "420"))
VERDICT_S = 30


@dataclass(frozen=True)
class Lab:
    """A running JupyterLab: its base URL and token."""

    url: str
    token: str


def _require_browser():
    """``playwright.sync_api``, or skip the test (with the reason) when Chromium or Playwright is missing."""
    if not CHROMIUM.exists():
        pytest.skip(f"Chromium not found at {CHROMIUM} (apt-get install -y chromium)")
    return pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_until_up(proc: subprocess.Popen, url: str, log: Path) -> None:
    deadline = time.monotonic() + SERVER_START_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"jupyter lab exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)
    raise TimeoutError(f"jupyter lab did not answer within {SERVER_START_S} s:\n{log.read_text()[-3000:]}")


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM the server (it shuts its kernels down), SIGKILL its process group if it hangs."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # the group the server was started in (ours alone)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait(timeout=10)


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    """``jupyter lab`` on a temporary copy of the notebooks, stopped whatever happens."""
    _require_browser()  # skip before starting a server that could not be used
    jupyter_lab = Path(sys.executable).with_name("jupyter-lab")
    if not jupyter_lab.exists():
        pytest.skip(f"jupyter-lab not found next to {sys.executable}")
    root = tmp_path / "lab"
    root.mkdir()
    for notebook in (ROOT / "notebooks").glob("*.ipynb"):
        shutil.copy2(notebook, root / notebook.name)
    home = tmp_path / "jupyter"
    env = dict(
        os.environ,
        PARAKEET_NB_BUILD=str(tmp_path / "build"),
        JUPYTER_CONFIG_DIR=str(home / "config"),
        JUPYTER_RUNTIME_DIR=str(home / "runtime"),
        JUPYTERLAB_SETTINGS_DIR=str(home / "settings"),
        JUPYTERLAB_WORKSPACES_DIR=str(home / "workspaces"),
        JUPYTER_DATA_DIR=str(home / "data"),  # the notebook-signing key goes here, not to ~
        IPYTHONDIR=str(home / "ipython"),
        PYTHONUNBUFFERED="1",
    )
    # Every cell in the DOM (no windowing), no news or update checks.
    tracker = home / "settings" / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings"
    tracker.parent.mkdir(parents=True)
    tracker.write_text(json.dumps({"windowingMode": "none"}))
    notification = home / "settings" / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    notification.parent.mkdir(parents=True)
    notification.write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    token = secrets.token_hex(16)
    port = _free_port()
    log = tmp_path / "jupyter-lab.log"
    with log.open("wb") as log_file:
        proc = subprocess.Popen(
            [
                str(jupyter_lab), "--no-browser", f"--port={port}", "--ServerApp.port_retries=0",
                "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={token}",
                f"--ServerApp.root_dir={root}",
                "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
                "--LabApp.extension_manager=readonly",  # no PyPI queries from the extension manager
                *(["--allow-root"] if os.geteuid() == 0 else []),
            ],
            cwd=root, env=env, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_until_up(proc, f"{url}/api/status?token={token}", log)
        yield Lab(url=url, token=token)
    finally:
        _stop(proc)


#: The prompts of the notebook's code cells, as shown (``[3]:``, ``[*]:``, ``[ ]:``).
_PROMPTS = "() => [...document.querySelectorAll('.jp-NotebookPanel .jp-CodeCell .jp-InputPrompt')].map(e => e.textContent)"
#: All ``n`` code cells are rendered and show an execution count (all ran, none queued as ``[*]``).
_ALL_PROMPTS_RUN = f"n => {{ const p = ({_PROMPTS})(); return p.length === n && p.every(t => /\\[\\d+\\]/.test(t)); }}"
#: All ``n`` code cells are rendered and none shows an execution count (outputs cleared).
_ALL_PROMPTS_EMPTY = f"n => {{ const p = ({_PROMPTS})(); return p.length === n && p.every(t => !/[\\d*]/.test(t)); }}"
#: The status bar says the kernel is idle.
_KERNEL_IDLE = "() => /\\|\\s*Idle/.test(document.querySelector('#jp-main-statusbar')?.textContent ?? '')"


def _accept_dialogs(page) -> None:
    """Accept a dialog JupyterLab may show (e.g. *Select Kernel*: the preselected kernel)."""
    dialog = page.locator(".jp-Dialog")
    if dialog.count():
        dialog.locator("button.jp-mod-accept").first.click()
        dialog.first.wait_for(state="detached")


def _menu(page, menu: str, item: str) -> None:
    """Click ``menu`` in JupyterLab's menu bar, then its entry ``item`` (exact labels)."""
    page.locator(f".lm-MenuBar-itemLabel:text-is('{menu}')").first.click()
    page.locator(f".lm-Menu-itemLabel:text-is('{item}')").first.click()


def _verdict_status(page) -> str | None:
    return page.locator(".parakeet-verdict").first.get_attribute("data-status")


def _type_shape(page, shape_box, text: str, expected: str) -> None:
    shape_box.fill(text)
    page.wait_for_function(
        "want => { const v = document.querySelector('.parakeet-verdict');"
        " return v !== null && v.getAttribute('data-status') === want; }",
        arg=expected, timeout=VERDICT_S * 1000,
    )


def test_layout_explorer_in_jupyterlab(lab: Lab, tmp_path: Path):
    sync_api = _require_browser()

    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = None
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(60_000)
            page.goto(f"{lab.url}/lab/tree/{NOTEBOOK}?token={lab.token}")
            page.locator(".jp-NotebookPanel .jp-Cell").first.wait_for(state="visible", timeout=120_000)
            code_cells = sum(c.cell_type == "code" for c in nbformat.read(ROOT / "notebooks" / NOTEBOOK, as_version=4).cells)
            # The notebook fully rendered (every code cell, stored outputs) and its kernel idle.
            page.wait_for_function(_ALL_PROMPTS_RUN, arg=code_cells, timeout=120_000)
            page.wait_for_timeout(2000)
            _accept_dialogs(page)
            page.wait_for_function(_KERNEL_IDLE, timeout=120_000)
            # Start from a clean slate (no stored outputs, empty prompts), then run everything.
            _menu(page, "Edit", "Clear Outputs of All Cells")
            page.wait_for_function(_ALL_PROMPTS_EMPTY, arg=code_cells, timeout=VERDICT_S * 1000)
            _menu(page, "Run", "Run All Cells")
            _accept_dialogs(page)
            page.wait_for_function(_ALL_PROMPTS_RUN, arg=code_cells, timeout=RUN_ALL_S * 1000)
            outputs = page.locator(".jp-NotebookPanel .jp-OutputArea").all_inner_texts()
            assert not [text for text in outputs if "Traceback (most recent call last)" in text]

            shape_box = page.locator(".widget-text:has(label:text-is('shape')) input").first
            shape_box.wait_for(state="visible", timeout=VERDICT_S * 1000)
            page.locator(".parakeet-verdict").first.wait_for(state="attached", timeout=VERDICT_S * 1000)

            # A fitting shape first, so that the 1, 240000 verdict is computed by what we type.
            _type_shape(page, shape_box, "1, 15, 16000", "ok")
            _type_shape(page, shape_box, "1, 240000", "over_limit")
            assert _verdict_status(page) == "over_limit"

            cell = page.locator(".jp-Cell:has(.parakeet-verdict)").first
            cell.scroll_into_view_if_needed()
            shot = tmp_path / "jupyterlab_explorer.png"
            cell.screenshot(path=str(shot))
            assert 0 < shot.stat().st_size < SCREENSHOT_MAX_BYTES

            _type_shape(page, shape_box, "1, 15, 16000", "ok")
            assert _verdict_status(page) == "ok"
            assert "within the ANE limits" in page.locator(".parakeet-verdict").first.inner_text()

        except Exception:
            if page is None:
                raise
            print("prompts at the failure:", page.evaluate(_PROMPTS))
            failure = tmp_path / "failure.png"
            page.screenshot(path=str(failure), full_page=False)
            print(f"screenshot of the page at the failure: {failure}")
            raise
        finally:
            browser.close()

    if os.environ.get("PARAKEET_NB_SCREENSHOT"):
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, SCREENSHOT)
