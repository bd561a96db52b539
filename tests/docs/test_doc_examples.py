"""Every Python example in README.md and docs/*.md runs, page by page, against rlm's scripted server.

A page's blocks run in order in one IPython namespace (top-level ``await`` and ``%`` magics
work as in a notebook); names a reader would have at hand come from ``doc_fixtures``; root
code (``<!-- docs-test: repl -->``) runs in a real completion's REPL; blocks marked
``check`` are left to ``test_doc_names.py``. See tests/docs/README.md.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest
from doc_pages import Page, pages

from rlm.testing import ScriptedLM

PAGES = [page for page in pages() if any(b.is_python and b.mode != "check" for b in page.blocks)]


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_the_examples_of_a_page_run(page: Page, run_examples: Callable[[Page], int], endpoint: ScriptedLM) -> None:
    assert run_examples(page) > 0
    assert os.environ["OPENAI_BASE_URL"] == endpoint.base_url  # no example changed where the others point
