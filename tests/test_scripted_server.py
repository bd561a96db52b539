"""ScriptedLM seen through the real openai client, raw aiohttp, and the CLI."""

from __future__ import annotations

import asyncio
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest

from rlm.cli import build_parser
from rlm.testing import Fault, ScriptedLM, ScriptedRequest

REPO = Path(__file__).resolve().parents[1]
ROOT_MESSAGES: list[Any] = [{"role": "system", "content": "You are root."}, {"role": "user", "content": "go"}]


def client(lm: ScriptedLM, **kwargs: Any) -> openai.OpenAI:
    """A sync client that never retries, so every fault surfaces."""
    return openai.OpenAI(base_url=lm.base_url, api_key="x", max_retries=0, **kwargs)


def aclient(lm: ScriptedLM) -> openai.AsyncOpenAI:
    """An async client that never retries, so every fault surfaces."""
    return openai.AsyncOpenAI(base_url=lm.base_url, api_key="x", max_retries=0)


def ask(c: openai.OpenAI, prompt: str = "hi", **kwargs: Any) -> Any:
    """One sub-style call: a single user message."""
    return c.chat.completions.create(model="sub-model", messages=[{"role": "user", "content": prompt}], **kwargs)


def ask_root(c: openai.OpenAI, **kwargs: Any) -> Any:
    """One root-style call: system prompt plus user turn."""
    return c.chat.completions.create(model="root-model", messages=ROOT_MESSAGES, **kwargs)


# ------------------------------------------------------------------ scripting


def test_root_list_replies_in_order_then_fails_loudly() -> None:
    with ScriptedLM(root=["one", "two"]) as lm:
        c = client(lm)
        assert ask_root(c).choices[0].message.content == "one"
        assert ask_root(c).choices[0].message.content == "two"
        with pytest.raises(openai.InternalServerError, match="the root script ran out: its list of 2 replies"):
            ask_root(c)
        assert [r.role for r in lm.requests] == ["root"] * 3
        assert [r.index for r in lm.root_requests] == [0, 1, 2]
        assert lm.sub_requests == []
        assert lm.stats["status_counts"] == {200: 2, 500: 1}


def test_sub_callable_sees_the_request() -> None:
    with ScriptedLM(sub=lambda req: req.prompt.upper()) as lm:
        response = ask(client(lm), "hello world")
        assert response.choices[0].message.content == "HELLO WORLD"
        assert response.choices[0].finish_reason == "stop"
        assert response.model == "sub-model"
        assert response.usage is not None
        assert (response.usage.prompt_tokens, response.usage.completion_tokens) == (2, 2)
        (req,) = lm.requests
        assert req.path == "/v1/chat/completions"
        assert (req.index, req.role, req.model, req.prompt, req.stream) == (0, "sub", "sub-model", "hello world", False)
        assert req.headers["authorization"] == "Bearer x"
        assert req.body["messages"] == req.messages
        assert lm.stats["sub"] == 1 and lm.stats["root"] == 0


def test_fixture_defaults_and_reconfiguration(scripted_lm: ScriptedLM) -> None:
    c = client(scripted_lm)
    assert ask_root(c).choices[0].message.content == "FINAL(ok)"
    assert ask(c).choices[0].message.content == "ok"
    scripted_lm.root = ["FINAL(new)"]
    scripted_lm.sub = lambda req: f"sub:{req.prompt}"
    scripted_lm.is_root = lambda body: body["model"] == "root-model"
    assert ask_root(c).choices[0].message.content == "FINAL(new)"
    assert ask(c, "q").choices[0].message.content == "sub:q"
    scripted_lm.reset()
    assert scripted_lm.requests == []
    assert scripted_lm.stats["requests"] == 0


def test_script_exception_becomes_500_with_its_text() -> None:
    def broken(req: ScriptedRequest) -> str:
        raise ValueError("no answer for you")

    with ScriptedLM(sub=broken) as lm, pytest.raises(openai.InternalServerError, match="no answer for you"):
        ask(client(lm))


def test_streaming_with_usage() -> None:
    reply = "a streamed reply long enough to split"
    with ScriptedLM(sub=lambda req: reply) as lm:
        chunks = list(ask(client(lm), stream=True, stream_options={"include_usage": True}))
        assert all(chunk.object == "chat.completion.chunk" for chunk in chunks)
        deltas = [chunk.choices[0].delta.content for chunk in chunks if chunk.choices]
        assert "".join(d or "" for d in deltas) == reply
        assert sum(1 for d in deltas if d) >= 3
        assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
        assert chunks[-1].choices == [] and chunks[-1].usage is not None
        assert chunks[-1].usage.completion_tokens == len(reply) // 4
        assert lm.requests[0].stream is True


async def test_raw_stream_is_server_sent_events() -> None:
    with ScriptedLM(sub=lambda req: "hey") as lm:
        async with aiohttp.ClientSession() as session:
            body = {"model": "m", "messages": [{"role": "user", "content": "x"}], "stream": True}
            async with session.post(f"{lm.base_url}/chat/completions", json=body) as response:
                assert response.headers["Content-Type"].startswith("text/event-stream")
                text = await response.text()
        events = [line[len("data: ") :] for line in text.split("\n\n") if line]
        assert events[-1] == "[DONE]"
        assert all(json.loads(e)["object"] == "chat.completion.chunk" for e in events[:-1])
        assert all("usage" not in json.loads(e) for e in events[:-1])


def test_models_lists_seen_models() -> None:
    with ScriptedLM() as lm:
        c = client(lm)
        ask(c)
        assert [m.id for m in c.models.list()] == ["scripted", "sub-model"]


async def test_stats_reset_and_bad_request_endpoints() -> None:
    with ScriptedLM() as lm:
        async with aiohttp.ClientSession() as session:
            async with session.post(f"{lm.base_url}/chat/completions", data=b"not json") as response:
                assert response.status == 400
                assert (await response.json())["error"]["type"] == "invalid_request_error"
            async with session.post(f"{lm.base_url}/chat/completions", json={"messages": [{"role": "user"}]}) as r:
                assert r.status == 200
            async with session.get(f"{lm.url}/stats") as response:
                stats = await response.json()
            assert stats["requests"] == 1 and stats["status_counts"] == {"400": 1, "200": 1}
            async with session.post(f"{lm.url}/reset") as response:
                assert response.status == 200
        assert lm.stats["requests"] == 0 and lm.requests == []


# --------------------------------------------------------------------- faults


def test_http_fault() -> None:
    with ScriptedLM() as lm:
        lm.fail(Fault.http(500, "boom"))
        with pytest.raises(openai.InternalServerError, match="boom") as info:
            ask(client(lm))
        assert info.value.body == {"message": "boom", "type": "server_error", "param": None, "code": None}
        lm.fail(Fault.http(400), when=lambda req: req.prompt == "bad")
        assert lm.stats["faults"] == {"http": 1}


def test_rate_limit_fault_headers() -> None:
    with ScriptedLM() as lm:
        lm.fail(Fault.rate_limit(retry_after=0.5))
        with pytest.raises(openai.RateLimitError) as info:
            ask(client(lm))
        headers = info.value.response.headers
        assert headers["retry-after"] == "0.5"
        assert headers["retry-after-ms"] == "500"
        assert headers["x-ratelimit-remaining-requests"] == "0"
        assert info.value.code == "rate_limit_exceeded"


def test_hang_fault_exceeds_client_timeout_without_blocking_others() -> None:
    with ScriptedLM() as lm:
        lm.fail(Fault.hang(5.0), when=lambda req: req.prompt == "slow")
        started = time.monotonic()
        with pytest.raises(openai.APITimeoutError):
            ask(client(lm, timeout=0.3), "slow")
        assert time.monotonic() - started < 2.0
        assert ask(client(lm, timeout=1.0), "fast").choices[0].message.content == "ok"


def test_malformed_fault() -> None:
    with ScriptedLM() as lm:
        lm.fail(Fault.malformed())
        # The openai client lets the decoder's error through rather than wrapping it.
        with pytest.raises(json.JSONDecodeError):
            ask(client(lm))
        with pytest.raises(json.JSONDecodeError):
            list(ask(client(lm), stream=True))


def test_empty_choices_and_null_content_faults() -> None:
    with ScriptedLM() as lm:
        c = client(lm)
        lm.fail(Fault.empty_choices(), times=1)
        assert ask(c).choices == []
        lm.fail(Fault.null_content(), times=1)
        assert ask(c).choices[0].message.content is None
        lm.fail(Fault.null_content(), times=1)
        chunks = list(ask(c, stream=True))
        assert [chunk.choices[0].delta.content for chunk in chunks] == [None]
        assert ask(c).choices[0].message.content == "ok"
        assert lm.stats["faults"] == {"empty_choices": 1, "null_content": 2}


def test_when_and_times_rules_first_match_wins() -> None:
    with ScriptedLM() as lm:
        c = client(lm)
        lm.fail(Fault.http(503, "first"), when=lambda req: req.prompt == "bad", times=2)
        lm.fail(Fault.http(500, "second"), when=lambda req: req.prompt.startswith("ba"))
        for _ in range(2):
            with pytest.raises(openai.InternalServerError, match="first"):
                ask(c, "bad")
        with pytest.raises(openai.InternalServerError, match="second"):
            ask(c, "bad")
        assert ask(c, "good").choices[0].message.content == "ok"
        assert lm.stats["faults"] == {"http": 3}
        assert lm.stats["status_counts"] == {503: 2, 500: 1, 200: 1}


def test_faults_do_not_consume_root_replies() -> None:
    with ScriptedLM(root=["only"]) as lm:
        lm.fail(Fault.http(502), times=1)
        with pytest.raises(openai.InternalServerError):
            ask_root(client(lm))
        assert ask_root(client(lm)).choices[0].message.content == "only"


# ---------------------------------------------------------- latency and load


async def _timed_calls(lm: ScriptedLM, n: int) -> list[float]:
    """Fire ``n`` concurrent sub-calls; each one's own duration, or the first error."""
    outcomes = await _calls(lm, n)
    errors = [o for o in outcomes if isinstance(o, BaseException)]
    if errors:
        raise errors[0]
    return [o for o in outcomes if isinstance(o, float)]


async def _calls(lm: ScriptedLM, n: int) -> list[float | BaseException]:
    """Fire ``n`` concurrent sub-calls and let each one finish; durations or errors."""
    c = aclient(lm)

    async def one(i: int) -> float:
        started = time.monotonic()
        await c.chat.completions.create(model="m", messages=[{"role": "user", "content": str(i)}])
        return time.monotonic() - started

    try:
        return list(await asyncio.gather(*(one(i) for i in range(n)), return_exceptions=True))
    finally:
        await c.close()


async def test_latency_range_is_random_per_request() -> None:
    with ScriptedLM(latency=(0.05, 0.35)) as lm:
        durations = await _timed_calls(lm, 16)
    assert min(durations) >= 0.05
    assert max(durations) - min(durations) > 0.05


async def test_latency_callable() -> None:
    with ScriptedLM(latency=lambda req: 1.0 if req.prompt == "0" else 0.0) as lm:
        slow, fast = await _timed_calls(lm, 2)
    # The slow call waits at least its latency; the fast one only for a loaded machine's scheduling.
    assert slow >= 1.0 and fast < slow - 0.5


async def test_concurrent_requests_are_counted_in_flight() -> None:
    with ScriptedLM(latency=0.2) as lm:
        await _timed_calls(lm, 30)
        stats = lm.stats
    assert stats["max_in_flight"] >= 20
    assert stats["in_flight"] == 0
    assert stats["requests"] == 30


async def test_admission_limit_answers_429_beyond_it() -> None:
    with ScriptedLM(latency=0.2) as lm:
        lm.admit(16)
        outcomes = await _calls(lm, 30)
        refused = [o for o in outcomes if isinstance(o, openai.RateLimitError)]
        assert len(refused) == 14 and sum(isinstance(o, float) for o in outcomes) == 16
        assert refused[0].response.headers["retry-after"] == "0.5"
        stats = lm.stats
        assert stats["max_in_flight"] == 16
        assert stats["status_counts"] == {200: 16, 429: 14}
        assert stats["faults"] == {"admit": 14}
        lm.admit(None)
        assert len(await _timed_calls(lm, 30)) == 30


# ------------------------------------------------------------------ lifecycle


def test_stop_ends_hung_requests_and_leaks_no_threads() -> None:
    before = threading.active_count()
    lm = ScriptedLM().start()
    lm.fail(Fault.hang(30.0))
    errors: queue.Queue[BaseException] = queue.Queue()

    def call() -> None:
        try:
            ask(client(lm, timeout=10.0))
        except openai.APIError as exc:
            errors.put(exc)

    caller = threading.Thread(target=call)
    caller.start()
    while lm.stats["in_flight"] == 0:
        time.sleep(0.01)
    started = time.monotonic()
    lm.stop()
    lm.stop()
    caller.join(timeout=5)
    assert time.monotonic() - started < 3.0
    assert not caller.is_alive() and not errors.empty()
    assert threading.active_count() == before
    with pytest.raises(RuntimeError):
        _ = lm.base_url


def test_client_hanging_up_leaves_flight() -> None:
    with ScriptedLM(latency=30.0) as lm:
        with pytest.raises(openai.APITimeoutError):
            ask(client(lm, timeout=0.3))
        deadline = time.monotonic() + 2.0
        while lm.stats["in_flight"] and time.monotonic() < deadline:
            time.sleep(0.02)
        assert lm.stats["in_flight"] == 0


# ------------------------------------------------------------------------ CLI


def test_cli_latency_argument() -> None:
    parse = build_parser().parse_args
    assert parse(["serve-fake", "--latency", "0.2"]).latency == 0.2
    assert parse(["serve-fake", "--latency", "0.1,0.5"]).latency == (0.1, 0.5)
    assert parse(["serve-fake"]).port == 8000
    with pytest.raises(SystemExit):
        parse(["serve-fake", "--latency", "0.5,0.1"])


def test_cli_serve_fake_runs_until_sigint() -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.Popen(
        [sys.executable, "-m", "rlm.cli", "serve-fake", "--port", "0"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lines: queue.Queue[str] = queue.Queue()
        assert proc.stdout is not None
        threading.Thread(target=lambda: lines.put(proc.stdout.readline()), daemon=True).start()  # type: ignore[union-attr]
        line = lines.get(timeout=10)
        assert line.startswith("serving on http://127.0.0.1:") and line.endswith(" (Ctrl-C to stop)\n")
        base_url = line.split()[2]
        assert not base_url.endswith(":0/v1")
        c = openai.OpenAI(base_url=base_url, api_key="x", max_retries=0)
        prompt = "p" * 100
        assert ask(c, prompt).choices[0].message.content == prompt[:80]
        assert ask_root(c).choices[0].message.content.startswith("FINAL(")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=5) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _batch_file(c: openai.OpenAI, lines: list[dict[str, Any]]) -> str:
    data = "".join(json.dumps(x) + "\n" for x in lines).encode()
    return c.files.create(file=("in.jsonl", data, "application/jsonl"), purpose="batch").id


def _until(c: openai.OpenAI, batch_id: str, statuses: set[str]) -> Any:
    deadline = time.monotonic() + 30
    while (batch := c.batches.retrieve(batch_id)).status not in statuses:
        assert time.monotonic() < deadline, f"batch still {batch.status}"
        time.sleep(0.01)
    return batch


def _line(custom_id: str, prompt: str) -> dict[str, Any]:
    return {"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions",
            "body": {"model": "sub-model", "messages": [{"role": "user", "content": prompt}]}}


def test_the_batch_api_through_the_sdk_answers_lines_in_the_official_format() -> None:
    with ScriptedLM(sub=lambda r: r.prompt[::-1], latency=0.01) as lm:
        lm.fail(Fault.http(503, "busy"), when=lambda r: r.prompt == "bad")
        c = client(lm)
        batch = c.batches.create(input_file_id=_batch_file(c, [_line("a", "abc"), _line("b", "bad")]),
                                 endpoint="/v1/chat/completions", completion_window="24h")
        assert batch.status == "validating" and batch.request_counts is not None
        done = _until(c, batch.id, {"completed"})
        assert done.request_counts is not None and (done.request_counts.completed, done.request_counts.failed,
                                                    done.request_counts.total) == (1, 1, 2)
        assert done.output_file_id is not None and done.error_file_id is not None
        (out,) = [json.loads(x) for x in c.files.content(done.output_file_id).text.splitlines()]
        (err,) = [json.loads(x) for x in c.files.content(done.error_file_id).text.splitlines()]
        assert set(out) == {"id", "custom_id", "response", "error"} and out["error"] is None
        assert out["custom_id"] == "a" and out["response"]["status_code"] == 200
        assert out["response"]["body"]["choices"][0]["message"]["content"] == "cba"
        assert err["custom_id"] == "b" and err["response"]["status_code"] == 503
        assert [b.id for b in c.batches.list().data] == [batch.id]
        assert lm.stats["batches"]["files_uploaded"] == 1 and lm.stats["requests"] == 0


def test_a_bad_batch_file_fails_validation_and_a_cancelled_batch_keeps_what_it_answered() -> None:
    with ScriptedLM(latency=0.05) as lm:
        c = client(lm)
        bad = c.batches.create(input_file_id=_batch_file(c, [_line("a", "x"), _line("a", "y")]),
                               endpoint="/v1/chat/completions", completion_window="24h")
        failed = _until(c, bad.id, {"failed"})
        assert failed.errors is not None and "duplicate custom_id" in str(failed.errors.data[0].message)
        long = c.batches.create(input_file_id=_batch_file(c, [_line(str(i), "x") for i in range(100)]),
                                endpoint="/v1/chat/completions", completion_window="24h")
        _until(c, long.id, {"in_progress"})
        c.batches.cancel(long.id)
        cancelled = _until(c, long.id, {"cancelled"})
        assert cancelled.request_counts is not None and 0 < cancelled.request_counts.completed < 100
        with pytest.raises(openai.BadRequestError):
            c.batches.create(input_file_id="file-none", endpoint="/v1/chat/completions", completion_window="24h")
