"""The record's image thumbnails in headless Chromium: the browser decodes the very bytes the model was
sent and scales them into the thumbnail box; the host process never decoded them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from rlm import RLM, Endpoint
from rlm.testing import ScriptedLM
from rlm.testing.images import jpeg, png

pytestmark = pytest.mark.timeout(300)

PROGRAM = """```repl
import base64
pictures = [base64.b64decode(s) for s in {pictures!r}]
print(llm_query("what do these show?", images=pictures))
```"""


def test_a_records_thumbnails_decode_and_fit_their_box(browser: Any, tmp_path: Path, artifacts: Path) -> None:
    import base64

    pictures = [png(1275, 1650, stripes=6), jpeg(300, 200)]
    root = PROGRAM.format(pictures=[base64.b64encode(p).decode() for p in pictures])
    with ScriptedLM(root=[root, "FINAL(done)"], sub=lambda r: f"{len(r.images)} images") as lm:
        result = RLM("root", "sub", base_url=lm.base_url, api_key="k", sandbox="local",
                     endpoint=Endpoint(retries=0)).completion("ctx", "q")
    path = result.trace.save_html(tmp_path / "record.html")
    page = browser.new_page(viewport={"width": 1000, "height": 1200})
    try:
        page.goto(path.as_uri())
        page.locator(".rlm-calls-record > summary").click()
        for summary in page.locator(".rlm-call-detail > summary").all():
            summary.click()
        images = page.locator(".rlm-detail-images img")
        images.first.wait_for()
        page.wait_for_function("() => [...document.querySelectorAll('.rlm-detail-images img')]"
                               ".every(i => i.complete && i.naturalWidth > 0)")
        sizes = page.evaluate("() => [...document.querySelectorAll('.rlm-detail-images img')].map("
                              "i => [i.naturalWidth, i.naturalHeight, i.clientWidth, i.clientHeight])")
        page.locator(".rlm-detail-images").first.screenshot(path=str(artifacts / "image-thumbnails.png"))
    finally:
        page.close()
    assert sizes == [[1275, 1650, 124, 160], [300, 200, 160, 107]]


LIVE_CELLS = [
    (
        "import base64\n"
        "from rlm import RLM\n"
        "from rlm.testing import ScriptedLM\n"
        "from rlm.testing.images import png\n"
        "PICTURE = base64.b64encode(png(800, 600, stripes=5)).decode()\n"
        "PROGRAM = ('```repl\\nimport base64\\npicture = base64.b64decode(' + repr(PICTURE) + ')\\n'\n"
        "           'answers = llm_batch([f\"look at item {i}\" for i in range(200)], '\n"
        "           'images=[[picture]] * 200, max_concurrent=4)\\n```')\n"
        "lm = ScriptedLM(root=[PROGRAM, 'FINAL(done)'], sub=lambda r: f'{len(r.images)} image', latency=0.05).start()\n"
        "rlm = RLM('root', 'sub', base_url=lm.base_url, api_key='k', sandbox='local', max_concurrent=4)"
    ),
    "print('ANSWER', rlm.completion('ctx', 'q').answer)",
]


def test_clicking_a_live_call_shows_its_image(notebooks: Any, artifacts: Path) -> None:
    live = notebooks.LIVE
    page = notebooks.open("images.ipynb", LIVE_CELLS)
    try:
        notebooks.run_all(page)
        cell = f"{live} .rlm-grid i[data-i]"
        page.wait_for_function(f"() => document.querySelectorAll('{cell}').length >= 20", timeout=60_000)
        page.locator(cell).nth(10).click()  # not the first call: the trace carried its image at the first
        image = page.locator(f"{live} .rlm-detail .rlm-detail-images img")
        image.wait_for(timeout=30_000)
        page.wait_for_function("i => i.complete && i.naturalWidth > 0", arg=image.element_handle())
        size = image.evaluate("i => [i.naturalWidth, i.naturalHeight, i.clientWidth, i.clientHeight]")
        caption = page.locator(f"{live} .rlm-detail figcaption").inner_text()
        page.locator(f"{live} .rlm-detail").screenshot(path=str(artifacts / "live-image-detail.png"))
        page.locator(".jp-OutputArea-output").filter(has_text="ANSWER done").wait_for(timeout=120_000)
    except Exception:
        page.screenshot(path=str(artifacts / "live-image-failure.png"), full_page=True)
        raise
    finally:
        page.close()
    assert size == [800, 600, 160, 120]
    assert caption.startswith("PNG · 800×600 px")
