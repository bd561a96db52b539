"""Both clients stream a reply as it is generated and return what a whole reply returns, errors included.

Every test runs the openai SDK client and the lean aiohttp client against one ScriptedLM
on 127.0.0.1 and compares them with each other and with the whole-reply path.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import web

from rlm import LMConnectionError, LMError, LMRateLimited, LMResponseError
from rlm.lm.client import OpenAIClient
from rlm.lm.dispatcher import DELTA_INTERVAL_S, Dispatcher
from rlm.lm.limiter import AdaptiveLimiter
from rlm.lm.retry import RetryPolicy
from rlm.lm.stream import SSEDecoder
from rlm.lm.transport import FastClient
from rlm.lm.types import Usage
from rlm.testing import Fault, ScriptedLM
from rlm.testing.wire import estimate_tokens
from rlm.trace.events import Tracer

HELLO = [{"role": "user", "content": "hello"}]
REPLY = "a reply long enough to come in many small pieces, one after another"
CLIENTS: dict[str, Callable[..., Any]] = {"openai": OpenAIClient, "fast": FastClient}


async def _both(base_url: str) -> AsyncIterator[tuple[str, Any]]:
    for name, make in CLIENTS.items():
        client = make(base_url=base_url, api_key="test-key")
        try:
            yield name, client
        finally:
            await client.aclose()


async def _outcome(client: Any, **opts: Any) -> Any:
    try:
        return await client.complete(HELLO, model="m", **opts)
    except LMError as exc:
        return exc


async def until(check: Callable[[], Any], timeout: float = 10.0) -> None:
    """Poll ``check`` until it is true, failing after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.005)


def _dispatcher(client: Any, tracer: Tracer, **kwargs: Any) -> Dispatcher:
    return Dispatcher(client, limiter=AdaptiveLimiter(4), tracer=tracer,
                      retry=RetryPolicy(max_attempts=3, base_delay=0.01), **kwargs)


async def test_both_clients_stream_the_text_usage_and_finish_of_a_whole_reply() -> None:
    with ScriptedLM(sub=lambda r: REPLY, stream_chars=5) as lm:
        results = {}
        async for name, client in _both(lm.base_url):
            pieces: list[str] = []
            whole = await client.complete(HELLO, model="m", max_tokens=100)
            streamed = await client.complete(HELLO, model="m", max_tokens=100, on_delta=pieces.append)
            results[name] = (whole, streamed, pieces)
        requests = lm.requests
    for whole, streamed, pieces in results.values():
        assert streamed.text == whole.text == "".join(pieces) == REPLY
        assert len(pieces) == -(-len(REPLY) // 5)
        assert streamed.usage == whole.usage == Usage(
            calls=1, prompt_tokens=estimate_tokens("hello"), completion_tokens=estimate_tokens(REPLY)
        )
        assert (streamed.finish_reason, streamed.tool_calls, streamed.model) == ("stop", 0, "m")
    sdk, fast = results["openai"][1], results["fast"][1]
    assert (sdk.text, sdk.usage, sdk.finish_reason) == (fast.text, fast.usage, fast.finish_reason)
    assert [r.stream for r in requests] == [False, True, False, True]
    assert requests[1].body == requests[3].body == {
        "model": "m", "messages": HELLO, "max_tokens": 100, "stream": True, "stream_options": {"include_usage": True},
    }


async def test_text_arrives_before_the_reply_ends() -> None:
    with ScriptedLM(sub=lambda r: REPLY) as lm:
        async for _, client in _both(lm.base_url):
            gate = lm.hold_streams()
            pieces: list[str] = []
            call = asyncio.create_task(client.complete(HELLO, model="m", on_delta=pieces.append))
            await until(lambda pieces=pieces: "".join(pieces) == REPLY)  # every piece is in, the end is held
            assert not call.done()
            gate.set()
            assert (await call).text == REPLY


async def test_a_cut_reply_capped_reply_and_tool_call_stream_as_they_read_whole() -> None:
    with ScriptedLM(sub=lambda r: REPLY) as lm:
        async for _, client in _both(lm.base_url):
            capped = await client.complete(HELLO, model="m", max_tokens=3, on_delta=lambda _: None)
            assert (capped.text, capped.finish_reason) == (REPLY[:12], "length")
            lm.fail(Fault.tool_call("search"), times=1)
            tool = await client.complete(HELLO, model="m", on_delta=lambda _: None)
            assert (tool.text, tool.tool_calls, tool.finish_reason) == ("", 1, "tool_calls")
            lm.fail(Fault.null_content(), times=1)
            assert (await client.complete(HELLO, model="m", on_delta=lambda _: None)).text == ""


@pytest.mark.parametrize(
    "fault, kind, status",
    [
        (Fault.http(500, "boom"), LMResponseError, 500),
        (Fault.http(401, "no key"), LMResponseError, 401),
        (Fault.rate_limit(0.25), LMRateLimited, 429),
        (Fault.malformed(), LMResponseError, None),
        (Fault.empty_choices(), LMResponseError, None),
    ],
    ids=["500", "401", "429", "malformed", "empty-choices"],
)
async def test_errors_of_a_stream_are_the_errors_of_a_whole_reply(fault: Fault, kind: type, status: int | None) -> None:
    with ScriptedLM() as lm:
        errors: dict[tuple[str, bool], Any] = {}
        async for name, client in _both(lm.base_url):
            for stream in (False, True):
                lm.fail(fault, times=1)
                errors[name, stream] = await _outcome(client, **({"on_delta": lambda _: None} if stream else {}))
        assert lm.stats["requests"] == 4  # nobody retried on their own
    for error in errors.values():
        assert type(error) is kind and error.status == status
        assert RetryPolicy.retryable(error) == RetryPolicy.retryable(errors["openai", False])
    assert str(errors["openai", True]) == str(errors["fast", True])
    if status is not None:
        assert str(errors["openai", True]) == str(errors["openai", False])


async def test_an_error_event_mid_stream_is_a_retryable_error_on_both() -> None:
    with ScriptedLM() as lm:
        errors = []
        async for _, client in _both(lm.base_url):
            lm.fail(Fault.error_event("overloaded"), times=1)
            errors.append(await _outcome(client, on_delta=lambda _: None))
    sdk, fast = errors
    assert type(sdk) is type(fast) is LMResponseError and str(sdk) == str(fast)
    assert "failed mid-stream: overloaded" in str(sdk) and sdk.body["type"] == "server_error"
    assert RetryPolicy.retryable(sdk) and RetryPolicy.retryable(fast)


async def test_a_stream_cut_midway_is_retried_as_a_dropped_whole_reply_is() -> None:
    with ScriptedLM(sub=lambda r: REPLY) as lm:
        async for name, client in _both(lm.base_url):
            for stream in (True, False):
                tracer = Tracer()
                lm.fail(Fault.cut(after=4), times=1)
                completion = await _dispatcher(client, tracer, stream=stream).complete(
                    HELLO, model="m", parent=None, role="root"
                )
                assert completion.text == REPLY, name
                (retry,) = [e for e in tracer.events if e.kind == "call.retry"]
                assert retry.data["error"].startswith("LMConnectionError"), retry.data
                assert [e.data.get("attempts") for e in tracer.events if e.kind == "call.end"] == [2]
                deltas = [e for e in tracer.events if e.kind == "call.delta"]
                assert bool(deltas) is stream
                if stream:  # text of the cut attempt came before the retry; the retry's adds up to the reply
                    after = [e.data["text"] for e in tracer.events[tracer.events.index(retry):]
                             if e.kind == "call.delta"]
                    assert "".join(after) == REPLY and deltas[0].ts <= retry.ts
                    assert "broke off after" in retry.data["error"]


async def test_a_server_that_refuses_to_stream_is_asked_for_whole_replies_from_then_on() -> None:
    with ScriptedLM(sub=lambda r: REPLY) as lm:
        lm.fail(Fault.http(400, "stream is not supported by this server"), when=lambda r: r.stream)
        async for _, client in _both(lm.base_url):
            pieces: list[str] = []
            first = await client.complete(HELLO, model="m", on_delta=pieces.append)
            second = await client.complete(HELLO, model="m", on_delta=pieces.append)
            assert first.text == second.text == REPLY and pieces == [] and client.streams is False
        assert [r.stream for r in lm.requests] == [True, False, False] * 2


async def test_a_plain_400_is_not_taken_for_a_refusal_to_stream() -> None:
    with ScriptedLM() as lm:
        async for _, client in _both(lm.base_url):
            lm.fail(Fault.http(400, "context length exceeded"), times=1)
            error = await _outcome(client, on_delta=lambda _: None)
            assert isinstance(error, LMResponseError) and error.status == 400 and client.streams is True
        assert lm.stats["requests"] == 2


async def test_a_stream_without_usage_counts_as_a_whole_reply_without_usage_and_streaming_stops(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with ScriptedLM(sub=lambda r: REPLY) as lm, caplog.at_level(logging.WARNING, "rlm"):
        async for _, client in _both(lm.base_url):
            # A server that ignores stream_options: the request asks for no usage chunk.
            unreported = await client.complete(HELLO, model="m", on_delta=lambda _: None,
                                               extra_body={"stream_options": None})
            assert unreported.text == REPLY and unreported.usage == Usage(calls=1)
            assert client.streams is False
            assert (await client.complete(HELLO, model="m", on_delta=lambda _: None)).usage.completion_tokens > 0
        assert [r.stream for r in lm.requests] == [True, False] * 2
    assert sum("streamed no usage" in r.getMessage() for r in caplog.records) == 2


async def test_a_server_that_ignores_stream_and_answers_whole_is_read_whole() -> None:
    async def whole(request: web.Request) -> web.Response:
        usage = {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}
        choice = {"index": 0, "message": {"role": "assistant", "content": "whole"}, "finish_reason": "stop"}
        return web.json_response({"id": "x", "object": "chat.completion", "created": 0, "model": "m",
                                  "choices": [choice], "usage": usage})

    app = web.Application()
    app.router.add_post("/v1/chat/completions", whole)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        async for _, client in _both(f"http://127.0.0.1:{port}/v1"):
            pieces: list[str] = []
            completion = await client.complete(HELLO, model="m", on_delta=pieces.append)
            assert (completion.text, completion.usage) == ("whole", Usage(1, 3, 4)) and pieces == ["whole"]
            assert client.streams is False
    finally:
        await runner.cleanup()


async def test_the_dispatcher_coalesces_pieces_into_a_few_delta_events() -> None:
    long_reply = "word " * 800  # 4,000 characters in 1,000 pieces
    with ScriptedLM(sub=lambda r: long_reply, stream_chars=4) as lm:
        async for _, client in _both(lm.base_url):
            tracer = Tracer()
            started = time.monotonic()
            completion = await _dispatcher(client, tracer).complete(HELLO, model="m", parent=None, role="root")
            seconds = time.monotonic() - started
            deltas = [e for e in tracer.events if e.kind == "call.delta"]
            assert "".join(e.data["text"] for e in deltas) == completion.text == long_reply
            assert len(deltas) <= seconds / DELTA_INTERVAL_S + 2, (len(deltas), seconds)
            (end,) = [e for e in tracer.events if e.kind == "call.end"]
            assert deltas[-1].ts <= end.ts and {e.id for e in deltas} == {end.id}


async def test_text_waiting_for_its_interval_is_sent_while_the_reply_is_held() -> None:
    with ScriptedLM(sub=lambda r: REPLY) as lm:
        async for _, client in _both(lm.base_url):
            tracer = Tracer()
            gate = lm.hold_streams()
            call = asyncio.create_task(_dispatcher(client, tracer).complete(HELLO, model="m", parent=None, role="root"))
            await until(lambda t=tracer: "".join(e.data["text"] for e in t.events if e.kind == "call.delta") == REPLY)
            assert not call.done()
            gate.set()
            assert (await call).text == REPLY


async def test_sub_calls_and_a_dispatcher_with_stream_off_send_no_stream() -> None:
    with ScriptedLM(sub=lambda r: REPLY) as lm:
        async for _, client in _both(lm.base_url):
            tracer = Tracer()
            await _dispatcher(client, tracer).complete(HELLO, model="m", parent=None, role="sub")
            await _dispatcher(client, tracer, stream=False).complete(HELLO, model="m", parent=None, role="root")
            assert not [e for e in tracer.events if e.kind == "call.delta"]
        assert [r.stream for r in lm.requests] == [False] * 4


def test_sse_decoder_reads_events_split_anywhere() -> None:
    stream = b'data: {"a": 1}\r\n\r\n: keep-alive\n\nevent: x\ndata: line one\ndata: line two\n\ndata: [DONE]\n\n'
    for size in (1, 2, 7, len(stream)):
        decoder = SSEDecoder()
        events = [e for i in range(0, len(stream), size) for e in decoder.feed(stream[i : i + size])]
        assert events == ['{"a": 1}', "line one\nline two", "[DONE]"], size
    unterminated = SSEDecoder()
    assert unterminated.feed(b"data: last") == [] and unterminated.close() == ["last"]


def test_a_broken_stream_is_a_connection_error() -> None:
    from rlm.lm.stream import broken_stream

    error = broken_stream(ConnectionResetError("reset"), "m", 3)
    assert isinstance(error, LMConnectionError) and RetryPolicy.retryable(error)
    assert str(error) == "the stream from the endpoint for m broke off after 3 chunks: ConnectionResetError: reset"
