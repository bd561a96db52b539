"""Retries: what is retried, how long we wait, and what a final failure looks like."""

from __future__ import annotations

import asyncio
import email.utils
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiohttp import web

from rlm import (
    RLM,
    Endpoint,
    LMConnectionError,
    LMRateLimited,
    LMResponseError,
    LMTimeout,
)
from rlm.lm.client import OpenAIClient
from rlm.lm.dispatcher import Dispatcher
from rlm.lm.limiter import AdaptiveLimiter
from rlm.lm.retry import RetryPolicy, parse_duration, quota_reset, retry_after
from rlm.lm.transport import FastClient
from rlm.testing import Fault, ScriptedLM
from rlm.trace.events import Tracer

TRANSPORTS = {"openai": OpenAIClient, "fast": FastClient}
OK_BODY = {
    "id": "x", "object": "chat.completion", "created": 0, "model": "m",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "done"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
}


def _error(status: int, headers: dict[str, str] | None = None) -> LMResponseError:
    if status == 429:
        return LMRateLimited("limited", headers=headers)
    return LMResponseError(f"HTTP {status}", status=status, headers=headers)


# ------------------------------------------------------------------ pure policy


def test_durations_in_ratelimit_reset_headers() -> None:
    assert parse_duration("1s") == 1.0
    assert parse_duration("6m0s") == 360.0
    assert parse_duration("20ms") == pytest.approx(0.02)
    assert parse_duration("1h2m3.5s") == pytest.approx(3723.5)
    assert parse_duration("0.5") == 0.5
    assert parse_duration("soon") is None and parse_duration("5x") is None


def test_retry_after_spellings() -> None:
    assert retry_after({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert retry_after({"retry-after": "2"}) == 2.0
    in_3s = email.utils.formatdate(time.time() + 3, usegmt=True)
    assert 1.5 < retry_after({"retry-after": in_3s}) <= 3.0
    assert retry_after({"retry-after": "whenever"}) is None
    assert retry_after({}) is None and retry_after(None) is None


def test_quota_reset_only_for_an_exhausted_quota() -> None:
    spent = {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "2s"}
    assert quota_reset(spent) == 2.0
    assert quota_reset({**spent, "x-ratelimit-remaining-requests": "12"}) is None
    both = {**spent, "x-ratelimit-remaining-tokens": "0", "x-ratelimit-reset-tokens": "6m0s"}
    assert quota_reset(both) == 360.0
    assert quota_reset({"x-ratelimit-remaining-requests": "0"}) is None


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_client_errors_are_never_retried(status: int) -> None:
    assert not RetryPolicy.retryable(_error(status))
    assert RetryPolicy().delay(_error(status), 1) is None


@pytest.mark.parametrize("status", [408, 409, 429, 500, 502, 503, 504])
def test_what_can_succeed_later_is_retried(status: int) -> None:
    assert RetryPolicy.retryable(_error(status))


def test_timeouts_and_dropped_connections_are_retried_but_unusable_bodies_are_not() -> None:
    assert RetryPolicy.retryable(LMTimeout("t"))
    assert RetryPolicy.retryable(LMConnectionError("c"))
    assert not RetryPolicy.retryable(LMResponseError("unusable response", status=None))


def test_x_should_retry_overrides_the_status_except_for_client_errors() -> None:
    assert not RetryPolicy.retryable(_error(503, {"x-should-retry": "false"}))
    assert not RetryPolicy.retryable(_error(429, {"x-should-retry": "false"}))
    assert RetryPolicy.retryable(_error(425, {"x-should-retry": "true"}))
    assert not RetryPolicy.retryable(_error(425))
    for status in (400, 401, 403, 404, 422):
        assert not RetryPolicy.retryable(_error(status, {"x-should-retry": "true"}))
        assert RetryPolicy().delay(_error(status, {"x-should-retry": "true", "retry-after": "0"}), 1) is None


def test_backoff_is_exponential_jittered_and_capped() -> None:
    policy = RetryPolicy(max_attempts=10, base_delay=0.5, max_delay=4.0, jitter=0.25)
    err = _error(500)
    assert [policy.delay(err, n, rand=lambda: 0.0) for n in (1, 2, 3, 4, 5)] == [0.5, 1.0, 2.0, 4.0, 4.0]
    assert policy.delay(err, 2, rand=lambda: 1.0) == 0.75
    assert policy.delay(err, 10) is None  # out of attempts


def test_server_hints_win_and_are_never_undercut() -> None:
    policy = RetryPolicy(base_delay=0.01, max_server_delay=60)
    assert policy.delay(_error(429, {"retry-after": "3"}), 1, rand=lambda: 0.0) == 3.0
    assert 3.0 <= policy.delay(_error(429, {"retry-after": "3"}), 1, rand=lambda: 1.0) <= 3.75
    assert policy.delay(_error(503, {"retry-after-ms": "1500"}), 1, rand=lambda: 0.0) == 1.5
    quota = {"x-ratelimit-remaining-tokens": "0", "x-ratelimit-reset-tokens": "7s"}
    assert policy.delay(_error(429, quota), 1, rand=lambda: 0.0) == 7.0
    assert policy.delay(LMRateLimited("r", retry_after=2.0), 1, rand=lambda: 0.0) == 2.0
    assert policy.delay(_error(429, {"retry-after": "600"}), 1) is None  # longer than we will wait


def test_429s_have_their_own_allowance() -> None:
    policy = RetryPolicy(max_attempts=2, max_rate_limited=5)
    assert policy.delay(_error(429), 4) is not None
    assert policy.delay(_error(429), 5) is None
    assert policy.delay(_error(500), 1) is not None
    assert policy.delay(_error(500), 2) is None


def test_policy_validates_its_settings() -> None:
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError):
        RetryPolicy(jitter=2)


# ------------------------------------------------------------------ over real HTTP


@asynccontextmanager
async def _server(replies: list[tuple[int, dict[str, str]]]) -> AsyncIterator[tuple[str, list[float]]]:
    """A server answering ``replies`` in order (status, headers), then 200; records arrival times."""
    arrivals: list[float] = []

    async def chat(request: web.Request) -> web.Response:
        await request.read()
        arrivals.append(time.monotonic())
        if len(arrivals) <= len(replies):
            status, headers = replies[len(arrivals) - 1]
            body = {"error": {"message": f"scripted {status}", "type": "x", "param": None, "code": None}}
            return web.json_response(body, status=status, headers=headers)
        return web.Response(body=json.dumps(OK_BODY), content_type="application/json")

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}/v1", arrivals
    finally:
        await runner.cleanup()


def _dispatcher(client: Any, policy: RetryPolicy, limiter: AdaptiveLimiter | None = None) -> Dispatcher:
    return Dispatcher(client, limiter=limiter or AdaptiveLimiter(8), tracer=Tracer(), retry=policy)


@pytest.mark.parametrize("name", sorted(TRANSPORTS))
async def test_waits_at_least_what_retry_after_asks(name: str) -> None:
    async with _server([(429, {"Retry-After": "0.4"}), (503, {"retry-after-ms": "300"})]) as (url, arrivals):
        client = TRANSPORTS[name](base_url=url, api_key="k")
        reply = await _dispatcher(client, RetryPolicy(base_delay=0.0)).query("q", model="m", parent=None)
        await client.aclose()
    assert reply == "done" and len(arrivals) == 3
    assert arrivals[1] - arrivals[0] >= 0.4
    assert arrivals[2] - arrivals[1] >= 0.3


@pytest.mark.parametrize("name", sorted(TRANSPORTS))
async def test_an_exhausted_quota_pauses_every_call_until_it_resets(name: str) -> None:
    quota = {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "400ms"}
    async with _server([(429, quota)]) as (url, arrivals):
        client = TRANSPORTS[name](base_url=url, api_key="k")
        limiter = AdaptiveLimiter(8)
        dispatcher = _dispatcher(client, RetryPolicy(base_delay=0.0), limiter)
        first = asyncio.create_task(dispatcher.query("first", model="m", parent=None))
        while limiter.paused_for == 0.0:
            await asyncio.sleep(0.005)
        second = await dispatcher.query("second", model="m", parent=None)  # sent while paused
        assert await first == second == "done"
        await client.aclose()
    assert len(arrivals) == 3
    assert min(arrivals[1:]) - arrivals[0] >= 0.4  # nothing went out before the quota reset


@pytest.mark.parametrize("name", sorted(TRANSPORTS))
async def test_a_reply_that_exhausts_the_quota_pauses_the_next_calls_before_any_429(name: str) -> None:
    arrivals: list[float] = []

    def sub(request: Any) -> str:
        arrivals.append(time.monotonic())
        return "ok"

    spent = {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "400ms"}
    with ScriptedLM(sub=sub, headers=lambda r: spent if r.index == 0 else {}) as lm:
        client = TRANSPORTS[name](base_url=lm.base_url, api_key="k")
        dispatcher = _dispatcher(client, RetryPolicy(base_delay=0.0))
        first = await dispatcher.query("first", model="m", parent=None)
        rest = await dispatcher.batch(["a", "b", "c"], model="m", max_concurrent=3, parent=None)
        await client.aclose()
        statuses = lm.stats["status_counts"]
    assert first == "ok" and rest == ["ok"] * 3
    assert min(arrivals[1:]) - arrivals[0] >= 0.4  # the success said the quota was spent
    assert statuses == {200: 4}  # learnt from the headers, not from a 429


@pytest.mark.parametrize("name", sorted(TRANSPORTS))
async def test_x_should_retry_false_stops_at_once(name: str) -> None:
    async with _server([(503, {"x-should-retry": "false"})]) as (url, arrivals):
        client = TRANSPORTS[name](base_url=url, api_key="k")
        reply = await _dispatcher(client, RetryPolicy(base_delay=0.0)).query("q", model="m", parent=None)
        await client.aclose()
    assert isinstance(reply, LMResponseError) and reply.status == 503 and len(arrivals) == 1


@pytest.mark.parametrize("name", sorted(TRANSPORTS))
@pytest.mark.parametrize("status, requests", [(400, 1), (401, 1), (403, 1), (404, 1), (422, 1), (425, 2)])
async def test_x_should_retry_true_cannot_retry_a_client_error(name: str, status: int, requests: int) -> None:
    async with _server([(status, {"x-should-retry": "true"})]) as (url, arrivals):
        client = TRANSPORTS[name](base_url=url, api_key="k")
        reply = await _dispatcher(client, RetryPolicy(base_delay=0.0)).query("q", model="m", parent=None)
        await client.aclose()
    assert len(arrivals) == requests
    if requests == 1:
        assert isinstance(reply, LMResponseError) and reply.status == status
    else:
        assert reply == "done"  # an unlisted status the server calls retryable is retried


@pytest.mark.parametrize("allowance, requests, ok", [(10, 8, True), (3, 3, False)])
async def test_a_call_outlasts_a_run_of_429s_within_its_allowance(allowance: int, requests: int, ok: bool) -> None:
    """A 429 is "not yet": it does not use up max_attempts, only max_rate_limited."""
    limited = (429, {"retry-after-ms": "5"})
    async with _server([limited] * 5 + [(500, {})] + [limited]) as (url, arrivals):
        client = FastClient(base_url=url, api_key="k")
        policy = RetryPolicy(max_attempts=2, max_rate_limited=allowance, base_delay=0.0)
        reply = await _dispatcher(client, policy).query("q", model="m", parent=None)
        await client.aclose()
    assert len(arrivals) == requests
    assert (reply == "done") is ok
    if not ok:
        assert isinstance(reply, LMRateLimited)


def test_max_retries_zero_turns_off_every_retry() -> None:
    with ScriptedLM(root=["```repl\nr = llm_query('x')\n```", "FINAL_VAR(r)"]) as lm:
        lm.fail(Fault.rate_limit(0.01), when=lambda r: r.role == "sub", times=1)
        result = RLM("root", "sub", base_url=lm.base_url, api_key="k", endpoint=Endpoint(retries=0)).completion(
            "ctx", "q"
        )
        assert result.answer.startswith("[rlm error] LMRateLimited") and lm.stats["sub"] == 1


@pytest.mark.parametrize("status", [400, 401, 404])
def test_rlm_never_retries_client_errors(status: int) -> None:
    with ScriptedLM(
        root=["```repl\nr = llm_query('x')\nprint(type(r).__name__, r.error.status)\n```", "FINAL(ok)"]
    ) as lm:
        lm.fail(Fault.http(status), when=lambda r: r.role == "sub")
        result = RLM("root", "sub", base_url=lm.base_url, api_key="k", endpoint=Endpoint(retries=5)).completion(
            "ctx", "q"
        )
        assert result.steps[0].outputs[0].stdout.strip() == f"FailedCall {status}"
        assert lm.stats["sub"] == 1


def test_rlm_max_retries_bounds_the_attempts_and_the_last_error_is_the_items() -> None:
    with ScriptedLM(
        root=["```repl\nr = llm_batch(['a', 'b'])\nprint([type(x).__name__ for x in r])\n```", "FINAL(ok)"]
    ) as lm:
        lm.fail(Fault.http(502, "bad gateway"), when=lambda r: r.prompt == "a")
        rlm = RLM("root", "sub", base_url=lm.base_url, api_key="k",
                endpoint=Endpoint(retries=RetryPolicy(max_attempts=3, base_delay=0.01)))
        result = rlm.completion("ctx", "q")
        assert result.steps[0].outputs[0].stdout.strip() == "['FailedCall', 'str']"
        assert lm.stats["sub"] == 4  # 'a' three times, 'b' once
        retries = [e for e in result.trace if e.kind == "call.retry"]
        assert [e.data["attempt"] for e in retries] == [1, 2]
        assert all("502" in e.data["error"] for e in retries)


def test_timed_out_calls_are_retried() -> None:
    with ScriptedLM(root=["```repl\nr = llm_query('x')\n```", "FINAL_VAR(r)"]) as lm:
        lm.fail(Fault.hang(5.0), when=lambda r: r.role == "sub", times=1)
        rlm = RLM("root", "sub", base_url=lm.base_url, api_key="k",
                endpoint=Endpoint(timeout=0.5, retries=RetryPolicy(base_delay=0.01)))
        assert rlm.completion("ctx", "q").answer == "ok"
        assert lm.stats["sub"] == 2


def test_root_calls_are_retried_too() -> None:
    with ScriptedLM(root=["FINAL(done)"]) as lm:
        lm.fail(Fault.rate_limit(0.05), when=lambda r: r.role == "root", times=2)
        result = RLM("root", base_url=lm.base_url, api_key="k").completion("ctx", "q")
        assert result.answer == "done" and lm.stats["root"] == 3
