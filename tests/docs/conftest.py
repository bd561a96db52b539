"""What the docs' tests share: the scripted endpoint the examples reach, a second one for root code, one IPython."""

from __future__ import annotations

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
def endpoint() -> Iterator[ScriptedLM]:
    """The endpoint the examples reach through the environment, as a reader's would."""
    with ScriptedLM(root=doc_model.root, sub=doc_model.sub) as lm, pytest.MonkeyPatch.context() as env:
        env.setenv("OPENAI_BASE_URL", lm.base_url)
        env.setenv("OPENAI_API_KEY", "sk-docs-examples")
        env.setenv("RLM_LIVE_VIEW", "static")
        for name in ("OPENAI_ORG_ID", "OPENAI_PROJECT_ID"):
            env.delenv(name, raising=False)
        yield lm


@pytest.fixture(scope="session")
def repl_server() -> Iterator[ScriptedLM]:
    """The server a ``repl`` block's completion talks to: its root replies with the block's code."""
    with ScriptedLM(sub=doc_model.sub) as lm:
        yield lm


@pytest.fixture(scope="session")
def ipython() -> Any:
    return shell()


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
            return run_page(page, ipython, names, repl_server, sandboxes)

    return run
