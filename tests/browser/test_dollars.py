"""Every ``$`` the views write reads as a dollar sign in JupyterLab, Notebook 7 and the saved page.

JupyterLab and Notebook 7 typeset HTML outputs with MathJax, which reads text between two
``$`` as LaTeX: an estimate's "$0.0541–$0.5172" lost both signs and turned into math. The
notebook ends with a control output, ``$x + 1$`` in plain HTML, so the test knows MathJax
has run over the outputs before it looks for any math in ours.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.timeout(300)

AMOUNT = r"\$\d+\.\d{4}"
QUERY = "Did it cost $5 or $10?"
CELLS = [
    (
        "from rlm import RLM\n"
        "from rlm.testing import ScriptedLM\n"
        "PROGRAM = \"```repl\\nanswers = llm_batch([f'item {i}' for i in range(100)], max_concurrent=4)\\n```\"\n"
        "lm = ScriptedLM(root=[PROGRAM, 'FINAL(It cost $5, not $10.)'], sub=lambda r: 'ok', latency=0.2).start()\n"
        "rlm = RLM('gpt-5', 'gpt-5-mini', base_url=lm.base_url, api_key='k', sandbox='local', max_concurrent=4)\n"
        "context = 'The price went from $5 to $10 in May. ' * 3000"
    ),
    f"result = rlm.completion(context, {QUERY!r})",
    f"rlm.estimate(context, {QUERY!r})",
    "print('SAVED', result.trace.save_html('dollars.html'))",
    "from IPython.display import HTML\nHTML('<div class=\"rlm-control\">$x + 1$</div>')",
]
RECORD = ".rlm-view:has(.rlm-sec-timeline):not(.rlm-live)"


def text(page: Any, selector: str) -> str:
    """What the page shows there (innerText: MathJax's output has no ``$`` in it)."""
    return str(page.locator(selector).first.inner_text())


def check_views(page: Any) -> None:
    """The record, the estimate and the query keep their dollar signs, and MathJax typeset none of ours."""
    page.locator(".rlm-control mjx-container").wait_for(timeout=120_000)  # MathJax has run over the outputs
    page.locator(RECORD).wait_for(timeout=60_000)
    assert re.fullmatch(AMOUNT, text(page, f'{RECORD} [data-counter="cost"] b')), text(page, RECORD)[:500]
    estimated = text(page, f"{RECORD} .rlm-estimated")
    assert re.search(rf"tokens, {AMOUNT}–{AMOUNT}$", estimated), estimated
    assert QUERY in text(page, f"{RECORD} .rlm-query")
    assert re.search(rf"in all; {AMOUNT}-{AMOUNT} \(an estimate", text(page, ".rlm-estimate"))
    assert page.locator(".rlm-view mjx-container, .rlm-estimate mjx-container").count() == 0


def test_dollars_stay_dollars_live_in_the_record_in_notebook_7_and_in_the_saved_page(
        browser: Any, lab: Any, notebooks: Any, artifacts: Path) -> None:
    page = notebooks.open("dollars.ipynb", CELLS)
    try:
        notebooks.run_all(page)
        estimated = f"document.querySelector('{notebooks.LIVE} .rlm-estimated')?.innerText || ''"
        page.wait_for_function(f"() => /{AMOUNT}–{AMOUNT}/.test({estimated})", timeout=60_000)  # shown as it starts
        page.locator(".jp-OutputArea-output").filter(has_text="SAVED").wait_for(timeout=120_000)
        check_views(page)
        page.locator(RECORD).screenshot(path=str(artifacts / "dollars-lab.png"))
        page.wait_for_function("() => !document.body.innerText.includes('[*]')", timeout=60_000)
        page.keyboard.press("Control+s")
        page.wait_for_function("() => !document.querySelector('.jp-mod-dirty')", timeout=30_000)
    except Exception:
        page.screenshot(path=str(artifacts / "dollars-lab-failure.png"), full_page=True)
        raise
    finally:
        page.close()

    saved = browser.new_page()
    try:
        saved.goto((lab.root / "dollars.html").as_uri())
        assert re.fullmatch(AMOUNT, text(saved, '[data-counter="cost"] b'))
        assert re.search(rf"{AMOUNT}–{AMOUNT}$", text(saved, ".rlm-estimated"))
    finally:
        saved.close()

    if importlib.util.find_spec("notebook") is None:
        pytest.skip("Notebook 7 is not installed (pip install 'rlm[test]' brings it)")
    classic = browser.new_page(viewport={"width": 1280, "height": 1400})
    classic.set_default_timeout(60_000)
    try:
        classic.goto(f"http://127.0.0.1:{lab.port}/notebooks/dollars.ipynb?token={lab.token}")
        classic.wait_for_selector(".jp-Notebook .jp-Cell")
        check_views(classic)
        classic.locator(RECORD).screenshot(path=str(artifacts / "dollars-notebook7.png"))
    except Exception:
        classic.screenshot(path=str(artifacts / "dollars-notebook7-failure.png"), full_page=True)
        raise
    finally:
        classic.close()
