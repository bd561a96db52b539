"""The live view in a real JupyterLab, in headless Chromium: it renders, moves, ends at N, stops."""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(300)

CALLS_DONE = '[data-counter="calls done"] b'


def done_count(text: str) -> tuple[int, int]:
    """``"137/137"`` -> ``(137, 137)``."""
    done, total = text.replace(",", "").split("/")
    return int(done), int(total)


def test_fanout_notebook_shows_live_counters_and_ends_at_n(notebooks: Any, artifacts: Path) -> None:
    live = notebooks.LIVE
    shutil.copy(REPO / "notebooks" / "03_batch_fanout.ipynb", notebooks.lab.root)
    page = notebooks.open("03_batch_fanout.ipynb")
    try:
        notebooks.run_all(page)
        widget = page.locator(live)
        widget.wait_for(state="visible", timeout=120_000)
        counter = widget.locator(CALLS_DONE)
        # The batch starts once the root's code runs; wait until sub-calls are landing.
        page.wait_for_function(
            f"() => {{ const b = document.querySelector('{live} {CALLS_DONE}');"
            " return b && Number(b.textContent.split('/')[0].replace(/,/g, '')) >= 5; }"
        )
        # The picture first, then the count: the picture shows at most that count, so waiting
        # for a higher one guarantees the view changed since (read the other way round, an
        # update between the two made both pictures show the same count).
        first_png = widget.screenshot(path=str(artifacts / "fanout-1.png"))
        first_text = counter.text_content()
        frame_ms = page.evaluate(
            "() => new Promise(r => { const t = performance.now(); "
            "requestAnimationFrame(() => r(performance.now() - t)); })"
        )
        seen = done_count(first_text)[0]
        page.wait_for_function(  # the counter moves on while the run goes
            f"() => {{ const b = document.querySelector('{live} {CALLS_DONE}');"
            f" return b && Number(b.textContent.split('/')[0].replace(/,/g, '')) > {seen}; }}", timeout=30_000)
        second_text = counter.text_content()
        second_png = widget.screenshot(path=str(artifacts / "fanout-2.png"))
        first, second = done_count(first_text), done_count(second_text)
        assert first_png != second_png, "the live view did not change while its counter moved"
        assert second[0] > first[0], f"calls done did not advance: {first_text} then {second_text}"
        assert frame_ms < 1000, f"the page took {frame_ms:.0f} ms to paint a frame during the run"

        # After the run the live widget is replaced by the static record of the same view.
        page.wait_for_function(f"() => !document.querySelector('{live}')", timeout=120_000)
        printed_output = page.locator(".jp-OutputArea-output").filter(
            has_text=re.compile(r"sub-calls: \d+, root calls: \d+"), has_not=page.locator(".rlm-view"))
        printed_output.wait_for(timeout=120_000)
        record = page.locator(".rlm-view").filter(has=page.locator(".rlm-sec-timeline")).first
        record.screenshot(path=str(artifacts / "fanout-final.png"))
        # text_content, not inner_text: JupyterLab may not render a cell scrolled out of view.
        printed = re.search(r"sub-calls: (\d+), root calls: (\d+)", printed_output.text_content() or "")
        assert printed, "the notebook did not print its call counts"
        sub_calls, root_calls = int(printed.group(1)), int(printed.group(2))
        assert sub_calls > 50
        final = done_count(record.locator(CALLS_DONE).text_content())
        assert final == (sub_calls + root_calls, sub_calls + root_calls)
        assert f"llm_batch × {sub_calls}" in record.inner_text()
        assert f"{sub_calls} ok" in record.inner_text()
        assert record.locator(".rlm-badge").text_content() == "done"
        assert page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']").count() == 0

        # The record survives saving and reopening (no widget state needed).
        page.wait_for_function("() => !document.body.innerText.includes('[*]')", timeout=60_000)
        page.keyboard.press("Control+s")
        page.wait_for_function("() => !document.querySelector('.jp-mod-dirty')", timeout=30_000)
        page.reload()
        page.wait_for_selector(".jp-Notebook .jp-Cell")
        reopened = page.locator(".rlm-view").filter(has=page.locator(".rlm-sec-timeline")).first
        reopened.wait_for(timeout=60_000)
        assert done_count(reopened.locator(CALLS_DONE).text_content()) == final
        assert reopened.locator(".rlm-lanes i").count() == sub_calls + root_calls
        assert reopened.locator(".rlm-grid i").count() == sub_calls
        reopened.screenshot(path=str(artifacts / "fanout-reopened.png"))
    except Exception:
        page.screenshot(path=str(artifacts / "fanout-failure.png"), full_page=True)
        raise
    finally:
        page.close()


STOP_CELLS = [
    (
        "from rlm import RLM\n"
        "from rlm.testing import ScriptedLM\n"
        "PROGRAM = \"```repl\\nanswers = llm_batch([f'item {i}' for i in range(400)], max_concurrent=4)\\n```\"\n"
        "lm = ScriptedLM(root=[PROGRAM, 'FINAL(done)'], sub=lambda r: 'ok', latency=0.3).start()\n"
        "rlm = RLM('root', 'sub', base_url=lm.base_url, api_key='k', sandbox='local', max_concurrent=4)"
    ),
    (
        "from rlm import Cancelled\n"
        "try:\n"
        "    rlm.completion('ctx', 'q')\n"
        "except Cancelled as stopped:\n"
        "    partial = stopped.partial\n"
        "    print('STOPPED', partial.stopped, len(partial.trace), lm.stats['sub'])"
    ),
]


def test_stop_button_cancels_the_run_and_keeps_the_partial_trace(notebooks: Any, artifacts: Path) -> None:
    live = notebooks.LIVE
    page = notebooks.open("stop.ipynb", STOP_CELLS)
    try:
        notebooks.run_all(page)
        widget = page.locator(live)
        widget.wait_for(state="visible", timeout=60_000)
        page.wait_for_function(
            f"() => {{ const b = document.querySelector('{live} {CALLS_DONE}');"
            " return b && Number(b.textContent.split('/')[0]) >= 8; }"
        )
        widget.locator(".rlm-stop").click()
        clicked = time.monotonic()
        output = page.locator(".jp-OutputArea-output").filter(has_text="STOPPED cancelled")
        output.wait_for(timeout=30_000)
        elapsed = time.monotonic() - clicked
        text = output.inner_text()
        found = re.search(r"STOPPED cancelled (\d+) (\d+)", text)
        assert found, text[-2000:]
        events, sub_requests = int(found.group(1)), int(found.group(2))
        assert events > 10 and sub_requests < 100, "the run went on after Stop"
        assert elapsed < 10
        record = page.locator(".rlm-view").first
        assert record.locator(".rlm-badge").text_content() == "stopped"
        record.screenshot(path=str(artifacts / "stopped.png"))
    except Exception:
        page.screenshot(path=str(artifacts / "stop-failure.png"), full_page=True)
        raise
    finally:
        page.close()


STREAM_CELLS = [
    (
        "from rlm import RLM\n"
        "from rlm.testing import ScriptedLM\n"
        "REPLY = ' '.join(f'word{i}' for i in range(200)) + '\\n```repl\\nprint(1)\\n```'\n"
        "lm = ScriptedLM(root=[REPLY, 'FINAL(done)'], stream_chars=4, stream_delay=0.01).start()\n"
        "rlm = RLM('root', 'sub', base_url=lm.base_url, api_key='k', sandbox='local')"
    ),
    "print('ANSWER', rlm.completion('ctx', 'q').answer)",
]


def test_the_root_reply_streams_into_the_live_view(notebooks: Any, artifacts: Path) -> None:
    live = notebooks.LIVE
    page = notebooks.open("stream.ipynb", STREAM_CELLS)
    reply = f"{live} .rlm-sec-stream pre"
    try:
        notebooks.run_all(page)
        page.wait_for_selector(reply, timeout=60_000)
        # The reply grows while it streams, and its box keeps the newest words in sight.
        page.wait_for_function(f"() => document.querySelector('{reply}')?.textContent.includes('word60')")
        first = page.locator(reply).text_content() or ""
        page.wait_for_function(
            f"() => {{ const p = document.querySelector('{reply}');"
            " return p && p.textContent.includes('word120') && p.scrollHeight > p.clientHeight"
            " && p.scrollTop + p.clientHeight >= p.scrollHeight - 2; }"
        )
        assert "the root is replying" in (page.locator(f"{live} .rlm-sec-stream").text_content() or "")
        assert first.startswith("word0 word1") and "word120" not in first
        page.locator(live).screenshot(path=str(artifacts / "streaming.png"))
        page.locator(".jp-OutputArea-output").filter(has_text="ANSWER done").wait_for(timeout=60_000)
        page.wait_for_function(f"() => !document.querySelector('{live}')", timeout=60_000)
        assert page.locator(".rlm-view .rlm-streaming").count() == 0, "the record kept the streaming reply"
    except Exception:
        page.screenshot(path=str(artifacts / "stream-failure.png"), full_page=True)
        raise
    finally:
        page.close()


INSPECT_CELLS = [
    (
        "from rlm import RLM\n"
        "from rlm.testing import ScriptedLM\n"
        "PROGRAM = \"```repl\\nanswers = llm_batch([f'tell me about item {i}' for i in range(300)], max_concurrent=4)"
        "\\n```\"\n"
        "lm = ScriptedLM(root=[PROGRAM, 'FINAL(done)'], sub=lambda r: 'REPLY TO ' + r.prompt, latency=0.05).start()\n"
        "rlm = RLM('root', 'sub', base_url=lm.base_url, api_key='k', sandbox='local', max_concurrent=4)"
    ),
    "print('ANSWER', rlm.completion('ctx', 'q').answer)",
]


def test_clicking_a_sub_call_shows_its_prompt_and_reply(notebooks: Any, artifacts: Path) -> None:
    live = notebooks.LIVE
    page = notebooks.open("inspect.ipynb", INSPECT_CELLS)
    try:
        notebooks.run_all(page)
        cell = f"{live} .rlm-grid i[data-i]"
        page.wait_for_function(f"() => document.querySelectorAll('{cell}').length >= 5", timeout=60_000)
        shown = page.locator(cell).nth(2)
        index = shown.get_attribute("data-i")
        shown.click()
        detail = page.locator(f"{live} .rlm-detail")
        detail.locator(".rlm-detail-facts").wait_for(timeout=30_000)
        asked = page.evaluate(f"() => document.querySelector('{live} .rlm-detail details pre').textContent")
        assert asked.startswith("tell me about item"), asked
        item = asked.removeprefix("tell me about item ").strip()
        assert f"REPLY TO tell me about item {item}" in (detail.text_content() or "")
        assert f"#{index}" in (detail.locator(".rlm-detail-facts").text_content() or "")
        detail.screenshot(path=str(artifacts / "inspect.png"))
        page.locator(".jp-OutputArea-output").filter(has_text="ANSWER done").wait_for(timeout=120_000)
        record = page.locator(".rlm-view").filter(has=page.locator(".rlm-sec-calls")).first
        record.wait_for(timeout=30_000)
        record.locator(".rlm-calls-record > summary").click()
        record.locator(".rlm-call-detail").nth(1).locator("> summary").click()
        assert "REPLY TO tell me about item 0" in (record.locator(".rlm-call-detail").nth(1).inner_text() or "")
    except Exception:
        page.screenshot(path=str(artifacts / "inspect-failure.png"), full_page=True)
        raise
    finally:
        page.close()
