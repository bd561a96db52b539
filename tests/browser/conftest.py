"""A real JupyterLab on 127.0.0.1 and a headless Debian Chromium driven by Playwright."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "artifacts" / "browser"
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run",
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Lab:
    """A running JupyterLab: its URL, token and notebook folder."""

    def __init__(self, root: Path, port: int, token: str, process: subprocess.Popen[bytes], log: Path) -> None:
        self.root, self.port, self.token, self.process, self.log = root, port, token, process, log

    def url(self, notebook: str) -> str:
        """The notebook alone in a fresh workspace (no tabs restored from an earlier test)."""
        workspace = notebook.rsplit(".", 1)[0]
        return f"http://127.0.0.1:{self.port}/lab/workspaces/{workspace}/tree/{notebook}?token={self.token}&reset"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """JupyterLab serving a temporary folder, with its own config, settings and runtime dirs."""
    base = tmp_path_factory.mktemp("lab")
    root = base / "notebooks"
    root.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_") and k != "RLM_BASE_URL"}
    for name in ("JUPYTER_CONFIG_DIR", "JUPYTER_RUNTIME_DIR", "JUPYTERLAB_SETTINGS_DIR", "JUPYTERLAB_WORKSPACES_DIR"):
        env[name] = str(base / name.lower())
    # No news poll: this machine is offline, and the pop-up covers the page.
    settings = base / "jupyterlab_settings_dir" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text('{"fetchNews": "false", "checkForUpdates": false}')
    port, token = _free_port(), secrets.token_hex(16)
    log = base / "lab.log"
    process = subprocess.Popen(
        [
            sys.executable, "-m", "jupyter", "lab", "--no-browser", "--allow-root", "--ip=127.0.0.1",
            f"--port={port}", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
            "--LabApp.news_url=", "--LabServerApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        ],
        stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"JupyterLab did not start:\n{log.read_text()[-3000:]}") from None
                time.sleep(0.2)
        yield Lab(root, port, token, process, log)
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """Headless Debian Chromium (never a Playwright-downloaded browser)."""
    executable = shutil.which("chromium")
    if executable is None:
        pytest.skip("chromium is not installed (apt-get install chromium); CI installs it")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def artifacts() -> Path:
    """Where screenshots go (git-ignored)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


class Notebooks:
    """Notebooks in the lab, each opened in a new page of the browser: how every live-view test starts."""

    #: The live view while it runs (the record that replaces it is a plain ``.rlm-view``).
    LIVE = ".rlm-view.rlm-live"

    def __init__(self, browser: Any, lab: Lab) -> None:
        self.browser, self.lab = browser, lab

    def write(self, name: str, cells: list[str]) -> Path:
        """A notebook of these code cells, on the python3 kernel, in the lab's folder."""
        import nbformat

        notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
        notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        path = self.lab.root / name
        nbformat.write(notebook, path)
        return path

    def open(self, name: str, cells: list[str] | None = None) -> Any:
        """A new page on the notebook (written from ``cells`` first, if given), once its kernel is idle."""
        if cells is not None:
            self.write(name, cells)
        page = self.browser.new_page(viewport={"width": 1280, "height": 1400})
        page.set_default_timeout(60_000)
        page.goto(self.lab.url(name))
        page.wait_for_selector(".jp-Notebook .jp-Cell")
        # The kernel must be idle before "Run All", or the first cells race its start.
        page.wait_for_function("() => document.querySelector('.jp-StatusBar-Widget')"
                               " && document.body.innerText.includes('| Idle')", timeout=60_000)
        return page

    @staticmethod
    def run_all(page: Any) -> None:
        """Run > Run All Cells, and wait until a cell is running."""
        page.get_by_role("menuitem", name="Run", exact=True).click()
        page.get_by_role("menuitem", name=re.compile(r"^Run All Cells")).click()
        page.wait_for_function("() => document.body.innerText.includes('[*]')", timeout=30_000)


@pytest.fixture
def notebooks(browser: Any, lab: Lab) -> Notebooks:
    """Write, open and run notebooks in the module's JupyterLab."""
    return Notebooks(browser, lab)
