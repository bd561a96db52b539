"""The comparison page of a benchmark's runs in headless Chromium: a question opens to its runs on one time axis."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from rlm.cli import main
from rlm.trace.fanout import LANE_PX
from rlm.trace.runs import BenchRuns

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One 64k OOLONG question, answered by the harness: llm_query one at a time (6 sub-calls), and llm_batch."""
    out = tmp_path_factory.mktemp("bench")
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("OPENAI_API_KEY", raising=False)
        patch.delenv("OPENAI_BASE_URL", raising=False)
        code = main(["bench", "oolong", "--n", "1", "--sizes", "64k", "--seeds", "1", "--sandbox", "local",
                     "--methods", "base,rlm-query,rlm-batch", "--sim-latency", "0.2", "--out", str(out),
                     "--log-dir", str(out / "logs")])
    assert code == 0
    return out / "oolong.jsonl"


def _bars(page: Any) -> list[list[list[float]]]:
    """Per run, each call's bar as drawn: [left, right] as shares of its timeline's width, and its lane (top, px)."""
    return page.evaluate("""() => [...document.querySelectorAll('details[open] .rlm-cmp-lane')].map(lane => {
        const box = lane.querySelector('.rlm-lanes').getBoundingClientRect();
        return [...lane.querySelectorAll('.rlm-lanes i')].map(b => {
            const r = b.getBoundingClientRect();
            return [(r.left - box.left) / box.width, (r.right - box.left) / box.width, r.top - box.top];
        });
    })""")


def test_a_question_opens_to_its_runs_on_one_time_axis(browser: Any, results: Path, artifacts: Path) -> None:
    assert main(["view", str(results)]) == 0
    page = browser.new_page(viewport={"width": 1300, "height": 1200})
    try:
        page.goto(results.with_suffix(".html").as_uri())
        question = page.locator("details.rlm-cmp-question").first
        lanes = question.locator(".rlm-cmp-lane")
        assert question.get_attribute("open") is None and not lanes.first.is_visible()
        question.locator("summary").first.click()
        lanes.first.wait_for(state="visible")
        assert lanes.count() == 2
        text = question.inner_text()
        assert "rlm-query" in text and "rlm-batch" in text and "base" in text and "expected:" in text
        page.screenshot(path=str(artifacts / "compare-bench.png"), full_page=True)
        drawn = _bars(page)
        view = BenchRuns(results).compare(BenchRuns(results).questions()[0])
        assert len(drawn) == len(view.parts) == 2
        for bars, parts in zip(drawn, view.parts, strict=True):  # every bar where its call's times put it
            calls = parts["calls"]
            assert len(bars) == len(calls["start"])
            for (left, right, top), start, end, lane in zip(bars, calls["start"], calls["end"], calls["lane"],
                                                            strict=True):
                assert left == pytest.approx(start / view.span_ms, abs=0.01)
                assert right == pytest.approx(max(end / view.span_ms, left + 0.0015), abs=0.01)
                assert top == pytest.approx(lane * LANE_PX, abs=1)
        one_at_a_time, batched = ({top for _, _, top in bars} for bars in drawn)
        assert len(one_at_a_time) == 1, "llm_query one at a time: no two calls at once, one lane"
        assert len(batched) >= 2, "llm_batch's calls overlap: they stack in lanes"
        code = question.locator("details.rlm-code[open]")
        assert code.count() >= 1 and "llm_batch" in question.locator("td.rlm-cmp-marked").last.inner_text()
    finally:
        page.close()
