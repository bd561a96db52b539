"""The lean aiohttp transport and the openai SDK client give the same results, errors and retries.

Every test runs both clients against the same ScriptedLM and compares what comes back.
"""

from __future__ import annotations

import asyncio
import gc
import inspect
import socket
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import openai
import pytest

from rlm import (
    RLM,
    ConfigError,
    Endpoint,
    LMConnectionError,
    LMError,
    LMRateLimited,
    LMResponseError,
    LMTimeout,
    runtime,
)
from rlm.lm.client import LMClient, OpenAIClient
from rlm.lm.dispatcher import Dispatcher
from rlm.lm.limiter import AdaptiveLimiter
from rlm.lm.retry import RetryPolicy
from rlm.lm.transport import FastClient, env_proxy
from rlm.testing import Fault, ScriptedLM
from rlm.trace.events import Tracer

HELLO = [{"role": "user", "content": "hello"}]
CLIENTS: dict[str, Callable[..., Any]] = {"openai": OpenAIClient, "fast": FastClient}


async def _both(lm: ScriptedLM, **kwargs: Any) -> AsyncIterator[tuple[str, LMClient]]:
    for name, make in CLIENTS.items():
        client = make(base_url=lm.base_url, api_key="test-key", **kwargs)
        try:
            yield name, client
        finally:
            await client.aclose()


async def _outcome(client: LMClient, **opts: Any) -> Any:
    try:
        return await client.complete(HELLO, model="m", **opts)
    except LMError as exc:
        return exc


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_same_request_on_the_wire_and_same_completion() -> None:
    with ScriptedLM(sub=lambda r: f"echo {r.prompt}") as lm:
        results = {}
        async for name, client in _both(lm):
            results[name] = await client.complete(HELLO, model="m", temperature=0.3, max_tokens=7)
        a, b = lm.requests
    assert a.body == b.body == {"model": "m", "messages": HELLO, "temperature": 0.3, "max_tokens": 7}
    assert a.headers["authorization"] == b.headers["authorization"] == "Bearer test-key"
    assert a.headers["content-type"] == b.headers["content-type"] == "application/json"
    sdk, fast = results["openai"], results["fast"]
    assert (sdk.text, sdk.usage, sdk.finish_reason, sdk.model) == (
        fast.text, fast.usage, fast.finish_reason, fast.model
    )
    assert sdk.text == "echo hello" and sdk.usage.calls == 1 and sdk.usage.prompt_tokens > 0


async def test_null_content_reads_as_empty_text_on_both() -> None:
    with ScriptedLM() as lm:
        texts = []
        async for _, client in _both(lm):
            lm.fail(Fault.null_content(), times=1)
            texts.append((await client.complete(HELLO, model="m")).text)
    assert texts == ["", ""]


@pytest.mark.parametrize(
    "fault, kind, status",
    [
        (Fault.http(400, "bad request"), LMResponseError, 400),
        (Fault.http(401, "no key"), LMResponseError, 401),
        (Fault.http(404, "no model"), LMResponseError, 404),
        (Fault.http(500, "boom"), LMResponseError, 500),
        (Fault.http(503, "busy"), LMResponseError, 503),
        (Fault.rate_limit(0.25), LMRateLimited, 429),
        (Fault.malformed(), LMResponseError, None),
        (Fault.empty_choices(), LMResponseError, None),
    ],
    ids=["400", "401", "404", "500", "503", "429", "malformed", "empty-choices"],
)
async def test_same_typed_error_for_each_failure(fault: Fault, kind: type, status: int | None) -> None:
    with ScriptedLM() as lm:
        errors = []
        async for _, client in _both(lm):
            lm.fail(fault, times=1)
            errors.append(await _outcome(client))
        assert lm.stats["requests"] == 2  # neither client retried on its own
    sdk, fast = errors
    assert type(sdk) is type(fast) is kind
    assert str(sdk) == str(fast)
    assert sdk.status == fast.status == status
    if status is not None:
        assert sdk.body == fast.body and isinstance(sdk.body, dict)
        assert sdk.headers["content-type"] == fast.headers["content-type"]
    if kind is LMRateLimited:
        assert sdk.retry_after == fast.retry_after == 0.25
        assert sdk.headers["x-ratelimit-remaining-requests"] == fast.headers["x-ratelimit-remaining-requests"] == "0"


async def test_same_timeout_error() -> None:
    with ScriptedLM() as lm:
        lm.fail(Fault.hang(5.0))
        errors = [await _outcome(client) async for _, client in _both(lm, timeout=0.3)]
    assert all(isinstance(e, LMTimeout) for e in errors)
    assert str(errors[0]) == str(errors[1])


async def test_same_connection_error() -> None:
    url = f"http://127.0.0.1:{_free_port()}/v1"
    errors = []
    for make in CLIENTS.values():
        client = make(base_url=url, api_key="k")
        errors.append(await _outcome(client))
        await client.aclose()
    assert all(isinstance(e, LMConnectionError) for e in errors)
    assert str(errors[0]) == str(errors[1])


@pytest.mark.parametrize("name", sorted(CLIENTS))
async def test_same_retries_through_the_dispatcher(name: str) -> None:
    """Two 503s then an answer: three requests and the answer, whichever transport."""
    with ScriptedLM(sub=lambda r: "fine") as lm:
        lm.fail(Fault.http(503), times=2)
        client = CLIENTS[name](base_url=lm.base_url, api_key="k")
        tracer = Tracer()
        dispatcher = Dispatcher(
            client, limiter=AdaptiveLimiter(4), tracer=tracer, retry=RetryPolicy(max_attempts=3, base_delay=0.01)
        )
        assert await dispatcher.query("q", model="m", parent=None) == "fine"
        lm.fail(Fault.http(503), times=3)
        failed = await dispatcher.query("q", model="m", parent=None)
        await client.aclose()
        assert lm.stats["requests"] == 6
    assert isinstance(failed, LMResponseError) and failed.status == 503
    assert [e.data["attempt"] for e in tracer.events if e.kind == "call.retry"] == [1, 2, 1, 2]
    assert [e.data.get("attempts") for e in tracer.events if e.kind == "call.end"] == [3, None]


async def test_fast_client_refuses_to_stream() -> None:
    client = FastClient(base_url="http://127.0.0.1:9/v1", api_key="k")
    with pytest.raises(ConfigError, match="stream"):
        await client.complete(HELLO, model="m", stream=True)


def test_fast_client_serves_callers_on_different_event_loops() -> None:
    with ScriptedLM() as lm:
        client = FastClient(base_url=lm.base_url, api_key="k")
        first = asyncio.run(client.complete(HELLO, model="m"))
        second = asyncio.run(client.complete(HELLO, model="m"))
        asyncio.run(client.aclose())
    assert first.text == second.text == "ok"


PROGRAM = "```repl\nr = llm_batch(['one', 'two', 'three'])\nq = llm_query('four')\n```"


@pytest.mark.parametrize("transport", ["openai", "fast", "auto"])
def test_rlm_transports_give_the_same_run(transport: str) -> None:
    with ScriptedLM(root=[PROGRAM, "FINAL_VAR(r)"], sub=lambda r: r.prompt.upper()) as lm:
        lm.fail(Fault.http(500), when=lambda r: r.prompt == "two", times=1)
        rlm = RLM("root", "sub", base_url=lm.base_url, api_key="k",
                endpoint=Endpoint(transport=transport, retries=RetryPolicy(base_delay=0.01)))
        result = rlm.completion("ctx", "q")
        assert result.answer == "['ONE', 'TWO', 'THREE']"
        assert lm.stats["sub"] == 5 and lm.stats["root"] == 2
        assert result.usage.by_model["sub"].calls == 4
    sdk_calls = {"openai": "both", "fast": "none", "auto": "root"}[transport]
    assert isinstance(rlm.engine.client, FastClient if sdk_calls == "none" else OpenAIClient)
    assert isinstance(rlm.engine.sub_client, FastClient) == (sdk_calls == "root")


def test_rlm_rejects_unknown_transport_and_bad_retries() -> None:
    with pytest.raises(ConfigError, match="transport"):
        RLM("m", base_url="http://127.0.0.1:9/v1", endpoint=Endpoint(transport="grpc"))
    with pytest.raises(ConfigError, match="retries"):
        RLM("m", base_url="http://127.0.0.1:9/v1", endpoint=Endpoint(retries=-1))


def test_a_callers_own_client_replaces_both_transports() -> None:
    with ScriptedLM(root=["```repl\nr = llm_query('x')\n```", "FINAL_VAR(r)"]) as lm:
        own = FastClient(base_url=lm.base_url, api_key="k")
        rlm = RLM("root", "sub", endpoint=Endpoint(client=own, transport="openai"))
        assert rlm.completion("ctx", "q").answer == "ok"
    assert rlm.engine.client is own and rlm.engine.sub_client is None


@pytest.mark.parametrize("in_a_cycle", [False, True])
def test_dropped_clients_close_their_connections_on_their_own_loop(in_a_cycle: bool) -> None:
    """Left to the garbage collector on another thread, open connections stalled other clients' calls."""
    with ScriptedLM() as lm:
        sdk = OpenAIClient(base_url=lm.base_url, api_key="k")
        fast = FastClient(base_url=lm.base_url, api_key="k")
        for client in (sdk, fast):
            assert runtime.run(client.complete(HELLO, model="m")).text == "ok"
            if in_a_cycle:
                client.itself = client  # type: ignore[attr-defined]
        inner, session = sdk._client, fast._session
        assert session is not None
        del sdk, fast, client
        gc.collect()  # on this (main) thread, while rlm's loop runs on its own
        deadline = time.monotonic() + 10
        while not (inner.is_closed() and session.closed) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert inner.is_closed() and session.closed


def test_fast_client_takes_its_proxy_from_the_environment_once(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1")
    assert env_proxy("https://api.openai.com/v1/chat/completions") == "http://proxy.internal:3128"
    assert env_proxy("http://127.0.0.1:8000/v1/chat/completions") is None
    monkeypatch.delenv("HTTPS_PROXY")
    assert env_proxy("https://api.openai.com/v1/chat/completions") is None


# ------------------------------------------------------------------ request options


RELEVANT = ("authorization", "content-type", "accept", "openai-organization", "openai-project", "x-trace", "x-team")
# What the SDK sends of its own accord and the lean client does not: telemetry and transport details.
SDK_ONLY = {"user-agent", "connection", "x-stainless-read-timeout"}

OPTIONS: dict[str, Any] = {
    "temperature": 0.3,
    "max_completion_tokens": 64,
    "seed": None,  # None is sent as null, by both
    "top_p": openai.omit,  # omit is not sent at all
    "extra_body": {"top_k": 5, "temperature": 0.1, "chat_template_kwargs": {"thinking": False}},
    "extra_headers": {"X-Trace": "abc", "x-team": "core", "accept": "application/json; q=1"},
    "extra_query": {"api-version": "2024-10-21", "tags": ["a", "b"], "deep": {"k": "x y&z"}, "on": True, "gone": None},
    "timeout": 30,
}


async def test_same_body_headers_and_query_for_sdk_request_options(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_ORG_ID", "org-123")
    monkeypatch.setenv("OPENAI_PROJECT_ID", "proj_456")
    with ScriptedLM() as lm:
        async for _, client in _both(lm):
            for _ in range(2):  # the second call reuses the prepared headers and URL
                assert (await client.complete(HELLO, model="m", **OPTIONS)).text == "ok"
        requests = lm.requests
    queries = [r.path for r in requests]
    assert len(requests) == len(queries) == 4
    for request in requests:
        assert request.body == {
            "model": "m",
            "messages": HELLO,
            "temperature": 0.1,  # extra_body wins, as in the SDK
            "max_completion_tokens": 64,
            "seed": None,
            "top_k": 5,
            "chat_template_kwargs": {"thinking": False},
        }
        assert {k: request.headers.get(k) for k in RELEVANT} == {
            "authorization": "Bearer test-key",
            "content-type": "application/json",
            "accept": "application/json; q=1",
            "openai-organization": "org-123",
            "openai-project": "proj_456",
            "x-trace": "abc",
            "x-team": "core",
        }
    assert set(queries) == {
        "/v1/chat/completions?api-version=2024-10-21&tags%5B%5D=a&tags%5B%5D=b&deep%5Bk%5D=x+y%26z&on=true"
    }
    sdk, fast = requests[0], requests[2]
    assert set(fast.headers) - set(sdk.headers) == set()  # nothing the SDK would not send
    assert {k for k in set(sdk.headers) - set(fast.headers) if not k.startswith("x-stainless-")} <= SDK_ONLY


async def test_the_sdk_sends_a_long_history_without_walking_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """A root call's messages reach the SDK in extra_body, so create() does not walk the history.

    Why: that walk cost 18 ms per call at 81 messages and made the root loop's turn 29 ms.
    """
    import openai.resources.chat.completions.completions as completions

    walked: list[int] = []
    transform = completions.async_maybe_transform

    async def counting(data: Any, expected_type: Any) -> Any:
        walked.append(len(data.get("messages") or ()))
        return await transform(data, expected_type)

    monkeypatch.setattr(completions, "async_maybe_transform", counting)
    history = [{"role": ("user", "assistant")[i % 2], "content": f"turn {i}"} for i in range(81)]
    with ScriptedLM() as lm:
        client = OpenAIClient(base_url=lm.base_url, api_key="test-key")
        try:
            await client.complete(history, model="m", extra_body={"top_k": 5})
            await client.complete(history, model="m", on_delta=lambda _: None)
        finally:
            await client.aclose()
        whole, streamed = (r.body for r in lm.requests)
    assert walked == [0, 0]
    assert whole == {"model": "m", "messages": history, "top_k": 5}
    assert streamed["messages"] == history and streamed["stream"] is True


async def test_no_organization_or_project_header_without_them(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_ORG_ID", raising=False)
    monkeypatch.delenv("OPENAI_PROJECT_ID", raising=False)
    with ScriptedLM() as lm:
        async for _, client in _both(lm):
            await client.complete(HELLO, model="m")
        async for _, client in _both(lm, organization="org-arg", project="proj-arg"):
            await client.complete(HELLO, model="m")
        plain_sdk, plain_fast, sdk, fast = lm.requests
    for request in (plain_sdk, plain_fast):
        assert "openai-organization" not in request.headers and "openai-project" not in request.headers
    for request in (sdk, fast):
        assert (request.headers["openai-organization"], request.headers["openai-project"]) == ("org-arg", "proj-arg")


async def test_omit_in_extra_body_and_extra_headers_removes_on_both() -> None:
    opts = {"extra_body": {"n": openai.omit, "top_k": None}, "extra_headers": {"Accept": openai.omit}, "n": 2}
    with ScriptedLM() as lm:
        async for _, client in _both(lm):
            await client.complete(HELLO, model="m", **opts)
        sdk, fast = lm.requests
    assert sdk.body == fast.body == {"model": "m", "messages": HELLO, "top_k": None}
    # Our "application/json" is gone; what is left is each HTTP library's own default.
    assert sdk.headers.get("accept") == fast.headers.get("accept") == "*/*"


async def test_per_call_timeout_replaces_the_clients_on_both() -> None:
    with ScriptedLM() as lm:
        lm.fail(Fault.hang(0.6))
        short = [await _outcome(client, timeout=0.2) async for _, client in _both(lm, timeout=30)]
        long = [await _outcome(client, timeout=30) async for _, client in _both(lm, timeout=0.2)]
        unlimited = [await _outcome(client, timeout=None) async for _, client in _both(lm, timeout=0.2)]
        split = [
            await _outcome(client, timeout=httpx.Timeout(0.2, connect=5.0)) async for _, client in _both(lm, timeout=30)
        ]
    assert all(isinstance(e, LMTimeout) for e in short + split), short + split
    assert [c.text for c in long + unlimited] == ["ok"] * 4


async def test_prepared_request_follows_options_changed_in_place() -> None:
    headers = {"X-Trace": "one"}
    with ScriptedLM() as lm:
        client = FastClient(base_url=lm.base_url, api_key="k")
        await client.complete(HELLO, model="m", extra_headers=headers)
        headers["X-Trace"] = "two"
        await client.complete(HELLO, model="m", extra_headers=headers)
        await client.aclose()
        assert [r.headers["x-trace"] for r in lm.requests] == ["one", "two"]


@pytest.mark.parametrize("transport", ["openai", "fast", "auto"])
def test_rlm_sends_the_same_request_options_root_and_sub(transport: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_PROJECT_ID", "proj_456")
    options = {
        "extra_body": {"top_k": 5},
        "extra_headers": {"X-Trace": "abc"},
        "extra_query": {"api-version": "1"},
        "timeout": 30,
    }
    with ScriptedLM(root=["```repl\nr = llm_query('x')\n```", "FINAL_VAR(r)"]) as lm:
        rlm = RLM("root", "sub", base_url=lm.base_url, api_key="k",
                endpoint=Endpoint(transport=transport, call_options=options))
        assert rlm.completion("ctx", "q").answer == "ok"
        requests = lm.requests
    assert [r.role for r in requests] == ["root", "sub", "root"]
    assert [r.body["top_k"] for r in requests] == [5, 5, 5]
    assert [(r.headers["x-trace"], r.headers["openai-project"]) for r in requests] == [("abc", "proj_456")] * 3
    assert [r.path for r in requests] == ["/v1/chat/completions?api-version=1"] * 3


@pytest.mark.parametrize(
    "options, match",
    [
        ({"top_k": 5}, r"call_options\['top_k'\].*extra_body"),
        ({"temperature": 0.2, "repetition_penalty": 1.1}, r"'repetition_penalty'.*extra_body"),
        ({"model": "x"}, r"call_options\['model'\].*sub_model"),
        ({"extra_body": [("top_k", 5)]}, r"'extra_body'.*dict"),
        ({"extra_headers": {"X-Count": 3}}, r"'X-Count'.*str"),
        ({"timeout": "30"}, r"'timeout'"),
        ({"stream": True}, r"'stream'.*not supported"),
    ],
    ids=["unknown", "unknown-among-known", "model", "extra-body-not-a-dict", "header-not-a-str", "timeout-a-str",
         "stream"],
)
@pytest.mark.parametrize("transport", ["openai", "fast", "auto"])
def test_rlm_refuses_options_the_sdk_would_not_take(transport: str, options: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        RLM("m", base_url="http://127.0.0.1:9/v1", api_key="k",
                endpoint=Endpoint(transport=transport, call_options=options))


def test_rlm_accepts_every_sdk_option() -> None:
    from openai.resources.chat.completions import AsyncCompletions

    every = dict.fromkeys(inspect.signature(AsyncCompletions.create).parameters)
    del every["self"], every["messages"], every["model"]
    assert {
        "temperature", "max_completion_tokens", "extra_body", "extra_headers", "extra_query", "timeout"
    } <= set(every)
    RLM("m", base_url="http://127.0.0.1:9/v1", api_key="k", endpoint=Endpoint(call_options=every))


def test_a_callers_own_client_gets_its_options_unchecked() -> None:
    own = FastClient(base_url="http://127.0.0.1:9/v1", api_key="k")
    rlm = RLM("m", endpoint=Endpoint(client=own, call_options={"top_k": 5}))
    assert rlm.settings.endpoint.call_options == {"top_k": 5}
