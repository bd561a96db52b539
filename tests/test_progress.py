"""Progress derived from trace events, and the console line outside notebooks."""

from __future__ import annotations

import io

import pytest

from rlm import RLM, ConsoleProgress, Endpoint, ModelInfo, Progress, ProgressModel
from rlm.testing import Fault, ScriptedLM
from rlm.trace.events import Event

PROGRAM = "```repl\nr = llm_batch(['item %d' % i for i in range(40)], max_concurrent=8)\n```"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def make_rlm(lm: ScriptedLM, **kwargs: object) -> RLM:
    kwargs.setdefault("endpoint", Endpoint(retries=0))
    kwargs.setdefault("sandbox", "local")
    return RLM("root", "sub", base_url=lm.base_url, api_key="k", **kwargs)  # type: ignore[arg-type]


def test_a_real_run_reports_done_total_in_flight_failures_tokens_and_cost() -> None:
    seen: list[Progress] = []
    with ScriptedLM(root=[PROGRAM, "FINAL(ok)"], latency=0.02) as lm:
        lm.fail(Fault.http(500), when=lambda r: r.role == "sub" and r.prompt in ("item 3", "item 30"))
        prices = {"root": (1.0, 1.0), "sub": (2.0, 2.0)}
        rlm = make_rlm(lm, progress=seen.append, endpoint=Endpoint(retries=0, pricing=prices))
        result = rlm.completion("ctx", "q")
    last = seen[-1]
    assert last.finished and last.done == last.total == 42 and last.in_flight == 0
    assert last.failed == 2
    assert last.prompt_tokens == result.usage.prompt_tokens
    assert last.completion_tokens == result.usage.completion_tokens
    assert last.cost_usd == pytest.approx(result.usage.cost_usd)
    # the batch announced its 40 items up front, and at most 8 ran at once
    assert max(p.total for p in seen) == 42
    assert any(p.total == 41 and p.done == 1 for p in seen)
    assert 1 < max(p.in_flight for p in seen) <= 8
    assert all(p.eta_s is None or p.eta_s >= 0 for p in seen)
    assert "rlm 42/42 calls" in last.line() and "2 failed" in last.line() and "done in" in last.line()


def test_cache_hits_and_refused_calls_end_their_items() -> None:
    program = "```repl\nr = llm_batch(['same'] * 5 + [context])\n```"
    seen: list[Progress] = []
    with ScriptedLM(root=[program, "FINAL(ok)"], latency=0.05) as lm:
        rlm = make_rlm(lm, progress=seen.append,
                endpoint=Endpoint(pricing={"sub": ModelInfo(context_window=50)}))
        rlm.completion("word " * 500, "q")
    last = seen[-1]
    assert last.done == last.total == 2 + 6 and last.failed == 1


def event(kind: str, span: str, parent: str | None = None, **data: object) -> Event:
    return Event(kind, span, parent, 0.0, dict(data))


def test_eta_comes_from_the_recent_completion_rate() -> None:
    clock = Clock()
    model = ProgressModel(clock=clock)
    model(event("run.start", "run-1"))
    model(event("batch.start", "b", "run-1", n=100))
    for i in range(50):
        model(event("call.start", f"c{i}", "b"))
        clock.now += 0.1
        model(event("call.end", f"c{i}", "b", status="ok", prompt_tokens=10, completion_tokens=2))
    p = model.snapshot()
    assert (p.done, p.total, p.in_flight) == (50, 100, 0)
    assert p.rate == pytest.approx(10.0) and p.eta_s == pytest.approx(5.0)
    assert p.tokens == 600 and p.cost_usd is None and not p.finished


def test_a_cancelled_batch_takes_its_unstarted_items_off_the_total() -> None:
    model = ProgressModel(clock=Clock())
    model(event("batch.start", "b", n=10))
    for i in range(3):
        model(event("call.start", f"c{i}", "b"))
    model(event("batch.end", "b", status="cancelled"))
    for i in range(3):
        model(event("call.end", f"c{i}", "b", status="cancelled"))
    model(event("call.start", "c3"))
    model(event("call.end", "c3", status="error"))
    p = model.snapshot()
    assert (p.done, p.total, p.failed, p.cancelled) == (4, 4, 1, 3)  # stopped is not failed
    assert "1 failed · 3 cancelled" in p.line()


def test_console_line_updates_in_place_at_most_every_interval() -> None:
    clock = Clock()
    out = Terminal()
    line = ConsoleProgress(out, interval=0.1, clock=clock)
    for done in range(1, 101):
        clock.now += 0.001  # 100 updates in 0.1 s
        line(Progress(done=done, total=100))
    clock.now += 0.2
    line(Progress(done=100, total=100, finished=True, elapsed_s=0.3))
    text = out.getvalue()
    assert text.count("\r") == 2 and text.endswith("\n") and text.count("\n") == 1
    assert "rlm 1/100 calls" in text and "rlm 100/100 calls" in text and "done in 0.3s" in text


def test_console_line_on_a_log_writes_plain_lines_rarely() -> None:
    clock = Clock()
    out = io.StringIO()
    line = ConsoleProgress(out, log_interval=5.0, clock=clock)
    for done in range(1, 61):
        clock.now += 0.5  # 30 s in all
        line(Progress(done=done, total=60))
    assert "\r" not in out.getvalue() and len(out.getvalue().splitlines()) == 6


def test_progress_true_draws_on_stderr_and_auto_stays_quiet_off_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    with ScriptedLM(root=[PROGRAM, "FINAL(ok)"]) as lm:
        make_rlm(lm, progress=True).completion("ctx", "q")
        assert "rlm 42/42 calls" in capsys.readouterr().err
        lm.root = [PROGRAM, "FINAL(ok)"]
        make_rlm(lm).completion("ctx", "q")  # progress=None: stderr is captured, not a TTY
        assert "rlm " not in capsys.readouterr().err
