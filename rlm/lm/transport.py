"""A lean ``LMClient``: one aiohttp POST per call, the openai SDK's wire format and errors.

Why: the SDK's CPU cost per call (request transforms, response models, HTTP layers)
caps a client's call rate far below what an endpoint serves to a batch of hundreds of
sub-calls (measured in docs/performance.md). This transport sends the same JSON body to
the same ``/chat/completions`` URL, reads the same fields back, and maps every failure
through the same function as ``OpenAIClient``: results, errors and retries are identical
(tested against one server).

Request options are read as the SDK reads them (``rlm.lm.options``). Given
``on_delta=`` it streams (server-sent events, read by ``rlm.lm.stream`` as the SDK
path reads them). It speaks only bearer-key auth: anything fancier belongs to the SDK
(``Endpoint(transport="openai")``). The SDK's telemetry headers (``User-Agent``,
``X-Stainless-*``) are not sent.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import json
import logging
import os
import threading
import time
import urllib.parse
import urllib.request
from typing import Any

import aiohttp
import yarl
from openai import NotGiven, Omit

from ..errors import ConfigError, LMConnectionError, LMError, LMTimeout
from .client import close_on_loop
from .endpoint import is_openai_endpoint, resolve_endpoint, windows_of, wire_options
from .failures import connection_error, status_error
from .options import REQUEST_OPTIONS, merge_headers, query_string, snapshot
from .retry import quota_reset
from .stream import (
    OnDelta,
    SSEDecoder,
    StreamReader,
    broken_stream,
    is_event_stream,
    parse_completion,
    streamed,
    unless_refused,
    unusable,
    whole_reply,
)
from .types import Completion, Message

DEFAULT_BASE_URL = "https://api.openai.com/v1"
log = logging.getLogger("rlm")

# Every open session and its loop, held strongly until it is closed. Why strongly: a client
# collected in a garbage cycle would take its session into the same collection, whose own
# finalizer warns "Unclosed client session" before any close we queue could run.
_sessions: dict[aiohttp.ClientSession, asyncio.AbstractEventLoop] = {}
_atexit_lock = threading.Lock()
_atexit_registered = False


def _close_soon(session: aiohttp.ClientSession, loop: asyncio.AbstractEventLoop) -> None:
    """Close ``session`` on its own loop from any thread; if that loop is gone, let go of it quietly.

    Why: aiohttp complains ("Unclosed client session") when a session is collected
    open, and connections left to the garbage collector can stall other clients'
    requests (see ``close_on_loop``).
    """
    if session.closed:
        _sessions.pop(session, None)
        return
    if not close_on_loop(lambda: _close_and_forget(session), loop):
        session.detach()  # its sockets go with the process or the loop
        _sessions.pop(session, None)


async def _close_and_forget(session: aiohttp.ClientSession) -> None:
    try:
        await session.close()
    finally:
        _sessions.pop(session, None)


def env_proxy(url: str) -> str | None:
    """The proxy ``HTTP(S)_PROXY``/``NO_PROXY`` name for ``url``, as the SDK's httpx would use.

    Read once per client: aiohttp's ``trust_env`` would look it (and ~/.netrc) up on a
    worker thread for every request, two thread hops per call on the hot path.
    """
    parts = urllib.parse.urlsplit(url)
    if parts.hostname is None or urllib.request.proxy_bypass(parts.hostname):
        return None
    return urllib.request.getproxies().get(parts.scheme)


def _close_all_at_exit() -> None:
    """At interpreter exit, close the sessions still open on rlm's (still running) loop."""
    for session, loop in list(_sessions.items()):
        if session.closed:
            continue
        if loop.is_running() and not loop.is_closed():
            try:
                asyncio.run_coroutine_threadsafe(session.close(), loop).result(timeout=1.0)
                continue
            except (concurrent.futures.TimeoutError, RuntimeError, OSError):
                log.debug("closing an aiohttp session at exit failed; letting it go", exc_info=True)
        session.detach()


def _register_atexit() -> None:
    global _atexit_registered
    with _atexit_lock:
        if not _atexit_registered:
            atexit.register(_close_all_at_exit)
            _atexit_registered = True


_UNSET = (Omit, NotGiven)
_NOT_GIVEN = NotGiven()


def client_timeout(timeout: Any) -> aiohttp.ClientTimeout:
    """aiohttp's reading of an SDK timeout: seconds, ``None`` (no limit) or an httpx ``Timeout``.

    As with httpx, a number bounds connecting and each wait between bytes, not the
    whole request; of an httpx ``Timeout``, ``connect`` and ``read`` apply (aiohttp
    has no write or pool timeout; the pool here is unbounded).
    """
    if timeout is None or isinstance(timeout, (int, float)):
        return aiohttp.ClientTimeout(total=None, sock_connect=timeout, sock_read=timeout)
    return aiohttp.ClientTimeout(total=None, sock_connect=timeout.connect, sock_read=timeout.read)


def _error_message(status: int, text: str) -> tuple[str, Any]:
    """The SDK's wording of an error status, and the body it keeps (the ``error`` object)."""
    message = f"Error code: {status}"
    body: Any = text.strip()
    try:
        body = json.loads(body)
    except ValueError:
        return message, body
    error = body.get("error", body) if isinstance(body, dict) else None
    detail = error.get("message") if isinstance(error, dict) else None
    if isinstance(detail, str) and detail:
        message += f" - {detail}"
    return message, (body.get("error", body) if isinstance(body, dict) else body)


async def _read_events(response: aiohttp.ClientResponse, reader: StreamReader) -> None:
    """Feed ``reader`` every chunk of an event stream, up to ``[DONE]`` or the end of the body."""
    decoder = SSEDecoder()
    async for piece in response.content.iter_any():
        for data in decoder.feed(piece):
            if data.startswith("[DONE]"):
                return
            reader.add(json.loads(data))
    for data in decoder.close():
        if not data.startswith("[DONE]"):
            reader.add(json.loads(data))


class FastClient:
    """``LMClient`` over one pooled ``aiohttp.ClientSession``; no retries of its own.

    Example::

        client = FastClient(base_url="http://127.0.0.1:8000/v1", api_key="k")
        reply = await client.complete([{"role": "user", "content": "hi"}], model="gpt-5-mini")

    ``timeout`` is, as in the SDK, the longest wait for a connection or between bytes.
    The session belongs to the event loop that first used it (rlm's runtime loop); a
    call from another loop gets a session of its own.
    """

    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout: float = 120.0,
        headers: dict[str, str] | None = None,
        organization: str | None = None,
        project: str | None = None,
    ) -> None:
        key, url = resolve_endpoint(api_key, base_url)
        self.base_url = (url or DEFAULT_BASE_URL).rstrip("/")
        self._url = f"{self.base_url}/chat/completions"
        self._yarl_url = yarl.URL(self._url)
        # As the SDK: the argument, else the environment; None sends no header.
        self.organization = organization if organization is not None else os.environ.get("OPENAI_ORG_ID")
        self.project = project if project is not None else os.environ.get("OPENAI_PROJECT_ID")
        self._headers = merge_headers(
            {"Authorization": f"Bearer {key}", "Content-Type": "application/json", "Accept": "application/json"},
            {"OpenAI-Organization": self.organization if self.organization is not None else Omit()},
            {"OpenAI-Project": self.project if self.project is not None else Omit()},
            headers or {},
        )
        self._timeout = client_timeout(timeout)
        self._proxy = env_proxy(self._url)
        # (extra_headers, extra_query, timeout) by identity -> their snapshot and (url, headers, timeout).
        self._plans: dict[tuple[int, int, int], tuple[Any, Any, Any, Any, Any, tuple[Any, Any, Any]]] = {}
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        #: Whether to ask this endpoint to stream (when the dispatcher wants a reply streamed).
        self.streams = True

    def _session_here(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is None or self._loop is not loop or self._session.closed:
            if self._session is not None and self._loop is not None:
                _close_soon(self._session, self._loop)
            _register_atexit()
            # limit=0: the dispatcher's limiter is the one concurrency cap.
            connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300)
            self._session = aiohttp.ClientSession(connector=connector, timeout=self._timeout)
            self._loop = loop
            _sessions[self._session] = loop
        return self._session

    async def complete(
        self, messages: list[Message], *, model: str, on_delta: OnDelta | None = None, **opts: Any
    ) -> Completion:
        opts = wire_options(opts, self.base_url)
        if opts.get("stream"):
            raise ConfigError("FastClient streams when given on_delta=..., not with stream=True")
        if on_delta is not None and self.streams:
            done = await unless_refused(self, lambda: self._streamed(messages, model, on_delta, opts))
            if done is not None:
                return done
        url, headers, timeout, body = self._request(messages, model, opts)
        session = self._session_here()
        started = time.perf_counter()
        try:
            async with session.post(url, data=body, headers=headers, proxy=self._proxy, timeout=timeout) as response:
                raw = await response.read()
                status = response.status
                if status >= 400:
                    message, error_body = _error_message(status, raw.decode("utf-8", "replace"))
                    raise status_error(status, message, error_body, response.headers, model, self.base_url)
                quota_wait = quota_reset(response.headers)
        except LMError:
            raise
        except asyncio.TimeoutError as exc:
            raise LMTimeout(f"request to {model} timed out", model=model) from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise connection_error(exc, model, self.base_url) from exc
        return parse_completion(raw, model, time.perf_counter() - started, quota_wait)

    async def _streamed(
        self, messages: list[Message], model: str, on_delta: OnDelta, opts: dict[str, Any]
    ) -> Completion:
        """The reply as server-sent events; an error before the first byte is the whole-reply path's error."""
        url, headers, timeout, body = self._request(messages, model, streamed(opts))
        session = self._session_here()
        reader = StreamReader(model, on_delta)
        started = time.perf_counter()
        answered = False
        try:
            async with session.post(url, data=body, headers=headers, proxy=self._proxy, timeout=timeout) as response:
                if response.status >= 400:
                    text = (await response.read()).decode("utf-8", "replace")
                    message, error_body = _error_message(response.status, text)
                    raise status_error(response.status, message, error_body, response.headers, model, self.base_url)
                quota_wait = quota_reset(response.headers)
                answered = True
                if not is_event_stream(response.headers):
                    whole = await response.read()
                    return whole_reply(self, whole, model, time.perf_counter() - started, quota_wait, on_delta)
                await _read_events(response, reader)
        except LMError:
            raise
        except asyncio.TimeoutError as exc:
            raise LMTimeout(f"request to {model} timed out", model=model) from exc
        except (aiohttp.ClientError, OSError) as exc:
            if not answered:
                raise connection_error(exc, model, self.base_url) from exc
            raise broken_stream(exc, model, reader.chunks) from exc
        except ValueError as exc:  # a chunk that is not JSON
            raise unusable(exc, model) from exc
        return reader.finish(self, time.perf_counter() - started, quota_wait)

    def _request(self, messages: list[Message], model: str, opts: dict[str, Any]) -> tuple[Any, Any, Any, bytes]:
        """The URL, headers, timeout and JSON body of one call, as the SDK would send it."""
        fields: dict[str, Any] = {"messages": messages, "model": model}
        url, headers, timeout = self._yarl_url, self._headers, self._timeout
        if opts:
            shaped = False
            for name, value in opts.items():
                if name in REQUEST_OPTIONS:
                    shaped = True
                elif not isinstance(value, _UNSET):
                    fields[name] = value
            if shaped:
                url, headers, timeout = self._plan(
                    opts.get("extra_headers"), opts.get("extra_query"), opts.get("timeout", _NOT_GIVEN)
                )
                extra_body = opts.get("extra_body")
                if extra_body is not None:
                    for name, value in extra_body.items():
                        if isinstance(value, Omit):
                            fields.pop(name, None)
                        else:
                            fields[name] = value
        return url, headers, timeout, json.dumps(fields).encode()

    async def list_models(self) -> list[dict[str, Any]]:
        """The endpoint's ``/models`` entries as dicts, with any fields the server adds."""
        session = self._session_here()
        try:
            async with session.get(f"{self.base_url}/models", headers=self._headers, proxy=self._proxy) as response:
                raw = await response.read()
                if response.status >= 400:
                    message, body = _error_message(response.status, raw.decode("utf-8", "replace"))
                    raise status_error(response.status, message, body, response.headers, "/models")
                data = json.loads(raw).get("data")
        except LMError:
            raise
        except (asyncio.TimeoutError, aiohttp.ClientError, OSError, ValueError, AttributeError) as exc:
            raise LMConnectionError(f"cannot list the endpoint's models: {type(exc).__name__}: {exc}") from exc
        return [entry for entry in data if isinstance(entry, dict)] if isinstance(data, list) else []

    async def context_windows(self) -> dict[str, int]:
        """Model -> context window, as a non-OpenAI endpoint's ``/models`` lists them (OpenAI lists none)."""
        if is_openai_endpoint(self.base_url):
            return {}
        return windows_of(await self.list_models())

    def _plan(self, extra_headers: Any, extra_query: Any, timeout: Any) -> tuple[Any, Any, Any]:
        """The URL, headers and timeout for these request options, prepared once per distinct options.

        Keyed by identity (rlm passes the same ``call_options`` objects on every call) and
        checked against a snapshot, so options mutated in place are prepared afresh.
        """
        key = (id(extra_headers), id(extra_query), id(timeout))
        hit = self._plans.get(key)
        if (
            hit is not None
            and hit[0] is extra_headers
            and hit[1] is extra_query
            and hit[2] is timeout
            and hit[3] == extra_headers
            and hit[4] == extra_query
        ):
            return hit[5]
        url = self._yarl_url
        query = query_string(extra_query) if extra_query else ""
        if query:
            url = yarl.URL(f"{self._url}?{query}", encoded=True)
        for name, value in (extra_headers or {}).items():
            if not isinstance(value, (str, Omit)):  # the SDK fails on these too (TypeError)
                raise ConfigError(f"extra_headers[{name!r}] must be a str (or openai.omit), got {value!r}")
        headers = merge_headers(self._headers, extra_headers) if extra_headers else self._headers
        plan = (url, headers, self._timeout if isinstance(timeout, NotGiven) else client_timeout(timeout))
        if len(self._plans) >= 64:
            self._plans.clear()
        # The objects themselves are held, so their ids cannot be reused while cached.
        self._plans[key] = (
            extra_headers, extra_query, timeout, snapshot(extra_headers), snapshot(extra_query), plan
        )
        return plan

    async def aclose(self) -> None:
        if self._session is not None:
            await _close_and_forget(self._session)
        self._session = None

    def __del__(self) -> None:
        if self._session is not None and self._loop is not None:
            _close_soon(self._session, self._loop)
