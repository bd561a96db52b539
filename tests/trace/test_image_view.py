"""A call's images in the live view's detail and in the saved record: thumbnails the browser scales,
each carried once by the trace, never anything but a PNG or JPEG data URL drawn."""

from __future__ import annotations

import re
from typing import Any

from rlm.lm.vision import Thumbs, checked
from rlm.testing.images import jpeg, png
from rlm.trace import fanout
from rlm.trace.events import Event
from rlm.trace.state import RunState
from rlm.trace.trace import Trace


def _events(calls: list[dict[str, Any]]) -> list[Event]:
    events = [Event("run.start", "run-1", None, 0.0, {"query": "q", "model": "root"})]
    for n, data in enumerate(calls, 1):
        events.append(Event("call.start", f"call-{n}", "run-1", float(n), {"model": "gpt-4o", "role": "sub",
                                                                          "prompt": f"p{n}", **data}))
        events.append(Event("call.end", f"call-{n}", "run-1", n + 0.5, {"status": "ok", "reply": f"r{n}"}))
    events.append(Event("run.end", "run-1", None, 9.0, {"status": "ok", "answer": "a"}))
    return events


def _image_calls() -> tuple[list[dict[str, Any]], list[Any]]:
    pictures = checked([png(1275, 1650), jpeg(300, 200)])
    thumbs = Thumbs()
    return [thumbs.fields(pictures, "gpt-4o", "low"), thumbs.fields(pictures[:1], "gpt-4o", None)], pictures


def test_the_live_detail_shows_a_thumbnail_at_every_call_and_the_record_once() -> None:
    calls, pictures = _image_calls()
    assert "thumb" not in calls[1]["images"][0]  # the second call's event carries no base64
    state = RunState(_events(calls))
    first, again = fanout.call_detail(state.detail(0) or {}), fanout.call_detail(state.detail(1) or {})
    url = pictures[0].data_url
    assert url in first and url in again
    assert '<img src="data:image/png;base64,' in first and 'width="124" height="160"' in first  # 1275x1650 in 160 px
    assert "PNG · 1,275×1,650 px" in first and "2 images" in first and 'detail "low"' in first
    assert f"sha256 {pictures[0].sha256[:16]}" in first
    page = Trace(_events(calls)).to_html(standalone=True)
    assert page.count(url) == 1 and page.count(pictures[1].data_url) == 1
    assert "tokens" in page and "1 image</b>" in page


def test_state_parts_never_carry_thumbnails() -> None:
    calls, _ = _image_calls()
    assert "base64" not in str(RunState(_events(calls)).parts())


def test_only_png_or_jpeg_data_urls_are_drawn_whatever_a_trace_on_disk_says() -> None:
    bad = ["javascript:alert(1)", "data:image/svg+xml;base64,PHN2Zz48L3N2Zz4=",
           'data:image/png;base64,AAAA" onerror="alert(1)', "data:text/html;base64,PGI+"]
    images = [{"format": "png", "width": 10, "height": 10, "bytes": 9, "sha256": f"h{k}", "tokens": 85, "thumb": t}
              for k, t in enumerate(bad)]
    detail = fanout.call_detail(RunState(_events([{"images": images}])).detail(0) or {})
    assert "<img" not in detail and detail.count("no thumbnail kept") == 4
    assert "javascript" not in detail and "onerror" not in detail and "svg" not in detail


def test_a_call_without_images_shows_no_image_section() -> None:
    detail = fanout.call_detail(RunState(_events([{}])).detail(0) or {})
    assert "rlm-detail-images" not in detail and not re.search(r"\bimages?\b", detail)
