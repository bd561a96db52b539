"""What the docs' tests share: the scripted endpoint the examples reach, a second one for root code, one IPython."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import doc_model
import pytest
from doc_fixtures import values, write_files
from doc_pages import Page
from doc_runner import Sandboxes, patched_rlm, run_page, shell

from rlm import RLM
from rlm.testing import ScriptedLM


@pytest.fixture(scope="session")
def server() -> Iterator[ScriptedLM]:
    """The scripted model the examples talk to (``doc_model``), started once."""
    with ScriptedLM(root=doc_model.root, sub=doc_model.sub) as lm:
        yield lm


@pytest.fixture
def endpoint(server: ScriptedLM, monkeypatch: pytest.MonkeyPatch) -> ScriptedLM:
    """The endpoint the examples reach through the environment, as a reader's would (for this test only)."""
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-docs-examples")
    for name in ("OPENAI_ORG_ID", "OPENAI_PROJECT_ID"):
        monkeypatch.delenv(name, raising=False)
    return server


@pytest.fixture(scope="session")
def repl_server() -> Iterator[ScriptedLM]:
    """The server a ``repl`` block's completion talks to: its root replies with the block's code."""
    with ScriptedLM(sub=doc_model.sub) as lm:
        yield lm


@pytest.fixture(scope="session")
def ipython() -> Iterator[Any]:
    """One IPython shell for the docs' tests; gone afterwards, so no later test finds a shell in the process."""
    hooks = sys.displayhook, sys.excepthook
    made = shell()
    yield made
    type(made).clear_instance()
    sys.displayhook, sys.excepthook = hooks


@pytest.fixture
def run_examples(endpoint: ScriptedLM, repl_server: ScriptedLM, ipython: Any, tmp_path: Path,
                 monkeypatch: pytest.MonkeyPatch) -> Callable[[Page], int]:
    """Runs a page's examples in a fresh working directory holding the fixture files; returns how many ran."""
    def run(page: Page) -> int:
        monkeypatch.chdir(tmp_path)
        sandboxes = Sandboxes()
        with patched_rlm(sandboxes):
            names = values(lambda: RLM("gpt-5", "gpt-5-mini"))
            write_files(tmp_path, page.path.read_text(encoding="utf-8"), names["result"])
            monkeypatch.setenv("RLM_LIVE_VIEW", "static")
            return run_page(page, ipython, names, repl_server, sandboxes)

    return run
