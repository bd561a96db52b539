"""What a call's events keep of its content, and where a user sees it: the record, rlm view, the live widget."""

from __future__ import annotations

from pathlib import Path

from rlm import RLM, Endpoint, Trace
from rlm.lm.record import PROMPT_CHARS, REPLY_CHARS, prompt_hash
from rlm.testing import Fault, ScriptedLM
from rlm.trace.fanout import call_detail
from rlm.trace.state import RECORD_CALLS, RunState

BATCH = "```repl\nout = llm_batch([f'item {i}' for i in range(N)])\nprint(len(out))\n```"


def run(n: int, sub=lambda r: "reply to " + r.prompt, **kwargs):
    with ScriptedLM(root=[BATCH.replace("N", str(n)), "FINAL(done)"], sub=sub) as lm:
        lm.fail(Fault.http(500, "boom"), when=lambda r: r.prompt == "item 1", times=1)
        rlm = RLM("root", "sub", base_url=lm.base_url, api_key="k", sandbox="local",
                  endpoint=Endpoint(retries=1), **kwargs)
        return rlm.completion("ctx", "q")


def test_call_events_keep_the_prompt_the_reply_and_the_retries() -> None:
    result = run(3)
    starts = {e.id: e for e in result.trace if e.kind == "call.start"}
    ends = {e.id: e for e in result.trace if e.kind == "call.end"}
    sub = next(e for e in starts.values() if e.data["prompt"] == "item 2")
    assert ends[sub.id].data["reply"] == "reply to item 2"
    assert sub.data["prompt_hash"] == prompt_hash([{"role": "user", "content": "item 2"}])
    root = next(e for e in starts.values() if e.data["role"] == "root")
    assert "The query:\nq" in root.data["prompt"] and len(root.data["prompt"]) <= PROMPT_CHARS + 80
    state = RunState(result.trace)
    retried = next(d for d in state.details if d["prompt"] == "item 1")
    assert retried["retries"] and "500" in retried["retries"][0]["error"] and retried["reply"] == "reply to item 1"
    shown = call_detail(dict(retried, index=0))
    assert "item 1" in shown and "reply to item 1" in shown and "retry 1" in shown


def test_a_long_reply_is_clipped_and_marked() -> None:
    result = run(1, sub=lambda r: "x" * (REPLY_CHARS + 10))
    end = next(e for e in result.trace if e.kind == "call.end" and e.data.get("reply_cut"))
    assert len(end.data["reply"]) < REPLY_CHARS + 100


def test_the_record_and_rlm_view_show_calls_in_detail_within_a_cap(tmp_path: Path) -> None:
    result = run(RECORD_CALLS + 50)
    page = result.trace._repr_html_()
    assert "rlm-sec-calls" in page and "reply to item 7" in page
    assert f"({RECORD_CALLS} of {RECORD_CALLS + 52} calls: root calls" in page  # 2 root calls + the items
    assert page.count('class="rlm-call-detail"') == RECORD_CALLS
    log = tmp_path / "run.jsonl"
    result.trace.to_jsonl(log)
    standalone = Trace.from_jsonl(log).to_html(standalone=True)
    assert "reply to item 7" in standalone and "item 7" in standalone
