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
