"""A run streams its root replies into the trace, the view's state and the console line; sub-calls stay whole."""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import Callable
from typing import Any

import pytest

from rlm import RLM, ConsoleProgress, Endpoint, Progress, ProgressModel
from rlm.testing import Fault, ScriptedLM
from rlm.trace import html
from rlm.trace.events import Event
from rlm.trace.progress import with_reply
from rlm.trace.state import STREAM_CHARS, RunState

PROGRAM = "Let me ask.\n```repl\nanswer = llm_query('what is 6 x 7?')\nprint(answer)\n```"
FINAL = "It said so.\nFINAL(42)"


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def make_rlm(lm: ScriptedLM, **kwargs: Any) -> RLM:
    kwargs.setdefault("sandbox", "local")
    return RLM("root", "sub", base_url=lm.base_url, api_key="k", **kwargs)


async def until(check: Callable[[], Any], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.01)


def streamed_text(trace: Any) -> dict[str, str]:
    """Each call's streamed text, starting over at a retry."""
    texts: dict[str, str] = {}
    for e in trace:
        if e.kind == "call.delta":
            texts[e.id] = texts.get(e.id, "") + e.data["text"]
        elif e.kind == "call.retry":
            texts[e.id] = ""
    return texts


@pytest.mark.parametrize("transport", ["auto", "fast", "openai"])
def test_a_run_streams_root_replies_and_not_sub_calls_with_the_usage_of_whole_replies(transport: str) -> None:
    with ScriptedLM(root=[PROGRAM, FINAL], sub=lambda r: "42") as lm:
        result = make_rlm(lm, endpoint=Endpoint(transport=transport)).completion("ctx", "q")
        requests = lm.requests
        lm.root = [PROGRAM, FINAL]
        whole = make_rlm(lm, endpoint=Endpoint(transport=transport, stream=False)).completion("ctx", "q")
        whole_requests = lm.requests[len(requests):]
    assert result.answer == whole.answer == "42"
    roles = {e.id: e.data["role"] for e in result.trace if e.kind == "call.start"}
    texts = streamed_text(result.trace)
    assert sorted(roles[i] for i in texts) == ["root", "root"] and "sub" in roles.values()
    assert sorted(texts.values()) == sorted([PROGRAM, FINAL])
    assert [(r.role, r.stream) for r in requests] == [("root", True), ("sub", False), ("root", True)]
    assert all(r.body["stream_options"] == {"include_usage": True} for r in requests if r.role == "root")
    # Endpoint(stream=False): nothing streams, and the usage is the same to the token.
    assert not any(r.stream for r in whole_requests) and not streamed_text(whole.trace)
    assert (result.usage.prompt_tokens, result.usage.completion_tokens, result.usage.calls) == (
        whole.usage.prompt_tokens, whole.usage.completion_tokens, whole.usage.calls
    )


def test_cached_root_replies_do_not_stream(tmp_path: Any) -> None:
    with ScriptedLM(root=[PROGRAM, FINAL], sub=lambda r: "42") as lm:
        rlm = make_rlm(lm, endpoint=Endpoint(cache=tmp_path / "cache"))
        first = rlm.completion("ctx", "q")
        again = rlm.completion("ctx", "q")
        assert lm.stats["requests"] == 3  # the second run cost nothing
    assert len(streamed_text(first.trace)) == 2 and streamed_text(again.trace) == {}


def test_a_retried_root_stream_is_shown_from_its_retry() -> None:
    with ScriptedLM(root=lambda r: FINAL, sub=lambda r: "42") as lm:
        lm.fail(Fault.cut(after=3), when=lambda r: r.role == "root", times=1)
        result = make_rlm(lm).completion("ctx", "q")
    assert result.answer == "42"
    assert list(streamed_text(result.trace).values()) == [FINAL]
    state = RunState(result.trace)
    assert state.parts()["stream"] == {}


async def test_the_view_state_and_the_console_line_show_the_reply_while_it_streams(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COLUMNS", "140")
    long_program = "I will count the words first, then answer. " * 3 + PROGRAM
    with ScriptedLM(root=[long_program, FINAL], sub=lambda r: "42") as lm:
        gate = lm.hold_streams()
        state, terminal = RunState(), Terminal()
        rlm = make_rlm(lm, progress=ConsoleProgress(terminal))
        run = asyncio.create_task(rlm.acompletion("ctx", "q", subscribers=[state]))
        await until(lambda: state.parts()["stream"].get("text") == long_program)
        shown = state.parts()["stream"]
        assert (shown["n"], shown["chars"]) == (1, len(long_program)) and not run.done()
        section = html.render_sections({"stream": shown})["stream"]
        assert f"the root is replying… · {len(long_program)} characters" in section and 'data-n="1"' in section
        assert "llm_query(&#x27;what is 6 x 7?&#x27;)" in section
        # The line ends with the latest words (drawn once the throttle's interval is over).
        await until(lambda: terminal.getvalue().rsplit("\r", 1)[-1].rstrip().endswith("print(answer) ```"))
        gate.set()
        result = await run
    assert result.answer == "42"
    assert state.parts()["stream"] == {} and "the root is replying" not in html.render(state.parts())


def event(kind: str, span: str, parent: str | None = None, **data: object) -> Event:
    return Event(kind, span, parent, 0.0, dict(data))


def test_progress_carries_the_tail_of_the_streaming_root_reply_only() -> None:
    seen: list[Progress] = []
    model = ProgressModel(seen.append)
    model(event("run.start", "run-1"))
    model(event("call.start", "root-1", "it-1", role="root"))
    model(event("call.start", "sub-1", "it-1", role="sub"))
    model(event("call.delta", "root-1", "it-1", text="Let me "))
    model(event("call.delta", "sub-1", "it-1", text="never shown"))  # not a root call: no snapshot
    model(event("call.delta", "root-1", "it-1", text="look.\n```repl"))
    assert [p.streaming for p in seen[-2:]] == ["Let me ", "Let me look.\n```repl"]
    model(event("call.retry", "root-1", "it-1", attempt=1, error="LMConnectionError: cut", wait=0.1))
    assert seen[-1].streaming == ""
    model(event("call.delta", "root-1", "it-1", text="x" * 1000))
    assert seen[-1].streaming == "x" * 240
    model(event("call.end", "root-1", "it-1", status="ok"))
    assert seen[-1].streaming == "" and seen[-1].done == 1


def test_the_console_line_fits_the_reply_tail_into_its_width() -> None:
    line = "rlm 1/2 calls · 1 in flight · 40 tokens"
    assert with_reply(line, "", 80) == line
    assert with_reply(line, "short\nreply", 80) == f"{line} · short reply"
    long = with_reply(line, "word " * 100, 80)
    assert len(long) == 80 and long.startswith(f"{line} · …") and long.endswith("word")
    assert with_reply(line, "word " * 100, len(line) + 5) == line  # no room worth using


def test_the_view_state_keeps_only_the_tail_of_a_long_reply() -> None:
    events = [event("run.start", "run-1", query="q", model="root"), event("iteration.start", "it-1", "run-1", n=1),
              event("call.start", "call-1", "it-1", role="root", model="root")]
    events += [event("call.delta", "call-1", "it-1", text=f"<{i:02d}>" + "y" * 96) for i in range(50)]
    state = RunState(events)
    stream = state.parts()["stream"]
    assert stream["chars"] == 5000 and len(stream["text"]) == STREAM_CHARS and stream["text"].endswith("y" * 96)
    assert "5,000 characters (the last 2,000 shown)" in html.render_sections({"stream": stream})["stream"]
    assert "&lt;49&gt;" in html.render_sections({"stream": stream})["stream"]
    assert "stream" in state.changed() and "stream" not in state.changed()  # sent again only when it changes
    state(event("call.end", "call-1", "it-1", status="ok"))
    assert state.parts()["stream"] == {} and "stream" in state.changed()
