"""What README.md and docs/*.md name exists: every ``rlm.X``, every import, every keyword given to rlm's callables.

Blocks that run (``test_doc_examples.py``) are checked too: a check here costs nothing and
also covers what a run does not reach. Blocks marked ``check`` get the whole check, names
included; prose code spans and comments get their calls and dotted names checked.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import pytest
from doc_fixtures import values
from doc_names import Known, Reader, check_snippet, comments, prose_reader
from doc_pages import Page, code_spans, pages
from doc_runner import parse

from rlm import RLM, RLMResult, runtime
from rlm.repl.local import LocalREPL

PAGES = pages()
FIXTURE_KINDS = {"rlm": Known(cls=RLM), "result": Known(cls=RLMResult)}


@cache
def repl_names() -> dict[str, Any]:
    """What root code sees, read off a real in-process REPL."""
    repl = LocalREPL()
    runtime.run(repl.start("", object()))  # type: ignore[arg-type]  # no call is made: only its names are read
    try:
        return {k: v for k, v in repl.namespace.items() if not k.startswith("__")}
    finally:
        runtime.run(repl.close())


@cache
def transformer() -> Any:
    from IPython.core.inputtransformer2 import TransformerManager

    return TransformerManager()


def findings(page: Page) -> list[str]:
    fixtures = {name: FIXTURE_KINDS.get(name, Known()) for name in values(lambda: None)}
    reader = Reader(page.name, scope=dict(fixtures))
    repl = Reader(page.name, scope={k: Known(v) for k, v in repl_names().items()})
    prose = prose_reader(page.name, repl_names())
    for block in page.blocks:
        if block.lang in ("", "text"):  # messages, trees and synopses: the calls they show
            for n, text in enumerate(block.code.split("\n"), start=1):
                check_snippet(prose, text, block.line + n)
        if not block.is_python:
            continue
        source = block.python_source()
        try:
            tree = parse(transformer().transform_cell(source))
        except SyntaxError as exc:
            reader.line = block.line + (exc.lineno or 0)
            reader.fail(f"the example does not parse: {exc.msg}")
            continue
        (repl if block.mode == "repl" else reader).statements(tree, block.line, strict_names=block.mode == "check")
        for line, comment in comments(source):
            check_snippet(prose, comment, block.line + line)
    for paragraph in page.prose:
        for offset, span in code_spans(paragraph.checked_text()):
            check_snippet(prose, span, paragraph.line + offset)
    return reader.findings + repl.findings + prose.findings


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_what_a_page_names_exists(page: Page) -> None:
    found = findings(page)
    assert not found, ("the docs name things the code does not have (fix the doc, or the code if the doc is "
                       "what users should have):\n" + "\n".join(found))
