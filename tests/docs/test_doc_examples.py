"""Every Python example in README.md and docs/*.md runs, page by page, against rlm's scripted server.

A page's blocks run in order in one IPython namespace (top-level ``await`` and ``%`` magics
work as in a notebook); names a reader would have at hand come from ``doc_fixtures``; root
code (``<!-- docs-test: repl -->``) runs in a real completion's REPL; blocks marked
``check`` are left to ``test_doc_names.py``. See tests/docs/README.md.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import doc_model
import pytest
from doc_fixtures import values, write_files
from doc_pages import pages
from doc_runner import Sandboxes, patched_rlm, run_page, shell

from rlm import RLM
from rlm.testing import ScriptedLM

PAGES = [page for page in pages() if any(b.is_python and b.mode != "check" for b in page.blocks)]


@pytest.fixture(scope="module")
def endpoint() -> Iterator[ScriptedLM]:
    """The endpoint the examples reach through the environment, as a reader's would."""
    with ScriptedLM(root=doc_model.root, sub=doc_model.sub) as lm, pytest.MonkeyPatch.context() as env:
        env.setenv("OPENAI_BASE_URL", lm.base_url)
        env.setenv("OPENAI_API_KEY", "sk-docs-examples")
        env.setenv("RLM_LIVE_VIEW", "static")
        for name in ("OPENAI_ORG_ID", "OPENAI_PROJECT_ID"):
            env.delenv(name, raising=False)
        yield lm


@pytest.fixture(scope="module")
def repl_server() -> Iterator[ScriptedLM]:
    with ScriptedLM(sub=doc_model.sub) as lm:
        yield lm


@pytest.fixture(scope="module")
def ipython() -> Any:
    return shell()


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_the_examples_of_a_page_run(page: Any, endpoint: ScriptedLM, repl_server: ScriptedLM, ipython: Any,
                                    tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    sandboxes = Sandboxes()
    with patched_rlm(sandboxes):
        names = values(lambda: RLM("gpt-5", "gpt-5-mini"))
        write_files(tmp_path, page.path.read_text(encoding="utf-8"), names["result"])
        ran = run_page(page, ipython, names, repl_server, sandboxes)
    assert ran > 0
    assert os.environ["OPENAI_BASE_URL"] == endpoint.base_url  # no example changed where the others point
