"""Numbers the docs state as measured name what measured them (``rlm bench ...``, a test, an outside source)."""

from __future__ import annotations

import pytest
from doc_numbers import unsourced
from doc_pages import Page, pages

PAGES = pages()


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_measured_numbers_name_their_source(page: Page) -> None:
    found = unsourced(page)
    assert not found, (
        "these paragraphs state measured numbers without saying what measured them: name the `rlm bench ...` "
        "command (or the test, or the outside source with a link) in the paragraph, just before its table, or in "
        "its section's heading or opening paragraph; or drop the numbers no command measures:\n"
        + "\n".join(f"{u.where}: {', '.join(u.quantities)} ... {u.text[:160]!r}" for u in found))


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_no_page_cites_what_users_cannot_see(page: Page) -> None:
    text = page.path.read_text(encoding="utf-8")
    lines = [n for n, line in enumerate(text.split("\n"), start=1) if "FINDINGS" in line or "../shared/" in line]
    assert not lines, (f"{page.name}:{lines[0]}: cites the team's FINDINGS or ../shared/, which users do not have: "
                       "name the `rlm bench` command, the test or the outside source instead")
