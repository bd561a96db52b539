"""The model client: ``openai.AsyncOpenAI`` against any OpenAI-compatible endpoint.

Everything rlm sends to a model goes through an object with the one-method
``LMClient`` protocol, so a caller can pass their own (``Endpoint(client=...)``). A client
that can stream a reply as it is generated also has ``streams = True`` and takes
``on_delta=`` (``rlm.lm.stream``); the dispatcher asks only such clients to stream.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from collections.abc import Callable, Coroutine
from typing import Any, Protocol, runtime_checkable

from ..errors import (
    ConfigError,
    LMConnectionError,
    LMError,
    LMRateLimited,
    LMResponseError,
    LMTimeout,
)
from .retry import quota_reset, retry_after
from .stream import (
    OnDelta,
    StreamReader,
    broken_stream,
    error_in_stream,
    is_event_stream,
    parse_completion,
    refuses_stream,
    streamed,
)
from .types import Completion, reported_usage

Message = dict[str, Any]
log = logging.getLogger("rlm")

_closing: set[asyncio.Task[Any]] = set()
_open_sdk_clients: dict[int, Any] = {}


async def _close_sdk_client(client: Any) -> None:
    try:
        await client.close()
    finally:
        _open_sdk_clients.pop(id(client), None)


def close_on_loop(aclose: Callable[[], Coroutine[Any, Any, Any]], loop: asyncio.AbstractEventLoop | None) -> bool:
    """Run ``aclose()`` on ``loop`` from any thread (a finalizer, say); False if that loop is gone.

    Why: an HTTP client dropped unclosed leaves its connections to the garbage collector,
    which may run on any thread. Measured here, that stalls requests of *other* clients on
    the same loop until their read timeout (docs/performance.md), so clients close
    themselves on the loop they ran on.
    """
    if loop is None or loop.is_closed() or not loop.is_running():
        return False

    def spawn() -> None:
        task = loop.create_task(aclose())
        _closing.add(task)
        task.add_done_callback(_closing.discard)

    try:
        loop.call_soon_threadsafe(spawn)
    except RuntimeError:  # closed in the meantime
        return False
    return True


@runtime_checkable
class LMClient(Protocol):
    """Anything that can answer a chat request."""

    async def complete(self, messages: list[Message], *, model: str, **opts: Any) -> Completion:
        """Return the model's reply or raise an ``LMError``.

        A streaming client (``streams = True``) also takes ``on_delta: Callable[[str], None]``,
        called with each piece of text as it arrives; the ``Completion`` is the same.
        """
        ...


def stop_streaming(client: Any, why: str) -> None:
    """Send this client's later calls whole: its endpoint refused to stream, or streamed without usage."""
    client.streams = False
    log.info("rlm: %s: %s; its replies are read whole from now on", getattr(client, "base_url", client), why)


def whole_reply(
    client: Any, body: bytes, model: str, seconds: float, quota_wait: float | None, on_delta: OnDelta
) -> Completion:
    """A whole reply to a request to stream (a server or proxy that ignores ``stream``): read it as one."""
    completion = parse_completion(body, model, seconds, quota_wait)
    stop_streaming(client, "the endpoint answered a request to stream with a whole reply")
    if completion.text:
        on_delta(completion.text)
    return completion


def resolve_endpoint(api_key: str | None, base_url: str | None) -> tuple[str, str | None]:
    """Pick the key and URL from the arguments or the environment.

    A base URL without a key is allowed (local servers rarely check keys); with
    neither, there is nothing we could talk to, so say what to set.
    """
    api_key = api_key or os.environ.get("OPENAI_API_KEY") or None
    base_url = base_url or os.environ.get("OPENAI_BASE_URL") or None
    if api_key is None and base_url is None:
        raise no_endpoint()
    return api_key or "not-needed", base_url


def no_endpoint() -> ConfigError:
    """The error for a model call with neither a key nor a URL, saying what to set."""
    return ConfigError(
        "no model endpoint configured: set OPENAI_API_KEY (and OPENAI_BASE_URL for a "
        "non-OpenAI server), or pass RLM(api_key=..., base_url=...). For a local "
        "OpenAI-compatible server (vLLM, llama.cpp, Ollama) base_url alone is enough."
    )


def has_endpoint(api_key: str | None, base_url: str | None) -> bool:
    """Whether the arguments or the environment name something to call."""
    return bool(api_key or base_url or os.environ.get("OPENAI_API_KEY") or os.environ.get("OPENAI_BASE_URL"))


class NoEndpoint:
    """The client of an ``RLM`` given no key and no URL: it is built and can ``estimate``; a call says what to set.

    Why not fail at ``RLM(...)``: estimating a run's cost, or configuring one in a notebook
    before the key is at hand, needs no endpoint. Every run checks first (``require_endpoint``),
    so nothing starts (no kernel) before the error.
    """

    base_url: str | None = None
    streams = False

    async def complete(self, messages: list[Message], *, model: str, **opts: Any) -> Completion:
        raise no_endpoint()


def require_endpoint(client: LMClient) -> None:
    """Raise the ``ConfigError`` that says what to set, before a run starts, if there is nothing to call."""
    if isinstance(client, NoEndpoint):
        raise no_endpoint()


def is_openai_endpoint(base_url: str | None) -> bool:
    """Whether requests go to OpenAI's own API (no ``base_url`` means the SDK's default, OpenAI)."""
    return base_url is None or "api.openai.com" in base_url


#: The neutral option a caller caps a reply with; each client sends it under its endpoint's name.
MAX_OUTPUT_TOKENS = "max_output_tokens"
#: Where OpenAI-compatible servers put a model's context window in ``/models``:
#: vLLM's ``max_model_len``, OpenRouter's and LM Studio's ``context_length``, others'.
WINDOW_FIELDS = ("max_model_len", "context_length", "context_window", "max_context_length")


def wire_options(opts: dict[str, Any], base_url: str | None) -> dict[str, Any]:
    """``opts`` with ``max_output_tokens`` under the name this endpoint takes.

    OpenAI's reasoning models reject ``max_tokens`` and want ``max_completion_tokens``;
    local OpenAI-compatible servers (llama.cpp, Ollama, older vLLM) know only ``max_tokens``.
    """
    if MAX_OUTPUT_TOKENS not in opts:
        return opts
    shaped = dict(opts)
    cap = shaped.pop(MAX_OUTPUT_TOKENS)
    shaped["max_completion_tokens" if is_openai_endpoint(base_url) else "max_tokens"] = cap
    return shaped


def sdk_arguments(model: str, messages: list[Message], opts: dict[str, Any]) -> Any:
    """``create()``'s arguments, with the messages riding in ``extra_body``.

    Why: ``create()`` walks ``messages`` against every TypedDict of the message union before
    sending (18 ms for an 81-message history here), and a root call's history grows every
    turn. ``extra_body`` is merged into the request body as given, so the same JSON goes out
    without that walk; ``wire_options`` has already checked the options. A caller's own
    ``extra_body`` still wins, as it does in the SDK.
    """
    return {
        **opts,
        "model": model,
        "messages": [],
        "extra_body": {"messages": messages, **(opts.get("extra_body") or {})},
    }


def listed_window(entry: dict[str, Any]) -> int | None:
    """The context window a ``/models`` entry reports, if it reports one."""
    for name in WINDOW_FIELDS:
        value = entry.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def windows_of(entries: list[dict[str, Any]]) -> dict[str, int]:
    return {str(e["id"]): w for e in entries if "id" in e and (w := listed_window(e)) is not None}


def status_error(
    status: int, message: str, body: Any, headers: Any, model: str, base_url: str | None = None,
) -> LMResponseError:
    """The typed error for an HTTP error status; every transport maps statuses through here.

    ``message`` is the server's text as the openai SDK words it ("Error code: 429 - ...").
    A 404 at a ``base_url`` without ``/v1`` says to add it: the commonest slip with local servers.
    """
    if status == 404 and base_url and not base_url.rstrip("/").endswith("/v1") and "/v1/" not in base_url:
        message += f". OpenAI-compatible servers serve under /v1: try base_url={base_url.rstrip('/') + '/v1'!r}"
    kept = {k.lower(): v for k, v in headers.items()} if headers is not None else None
    if status == 429:
        return LMRateLimited(
            f"rate limited by the endpoint for {model}: {message}",
            retry_after=retry_after(kept),
            body=body,
            model=model,
            headers=kept,
        )
    return LMResponseError(
        f"HTTP {status} from the endpoint for {model}: {message}", status=status, body=body, model=model, headers=kept
    )


def connection_error(exc: BaseException, model: str, url: str | None) -> LMConnectionError:
    """``LMConnectionError`` naming the URL, and saying so when nothing listens there."""
    refused = _refused(exc)
    where = f" at {url}" if url else ""
    why = "connection refused: is the server running there?" if refused else f"{type(exc).__name__}: {exc}"
    error = LMConnectionError(f"cannot reach the endpoint for {model}{where}: {why}", model=model)
    error.refused = refused
    return error


def _refused(exc: BaseException | None) -> bool:
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, ConnectionRefusedError) or "Connection refused" in str(exc):
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


def translate_error(exc: Exception, model: str, base_url: str | None = None) -> LMError:
    """Map an ``openai`` exception onto rlm's tree, keeping status and body."""
    import openai

    if isinstance(exc, LMError):
        return exc
    if isinstance(exc, openai.APITimeoutError):
        return LMTimeout(f"request to {model} timed out", model=model)
    if isinstance(exc, openai.APIConnectionError):
        return connection_error(exc, model, base_url or "https://api.openai.com/v1")
    if isinstance(exc, openai.APIStatusError):
        return status_error(exc.status_code, exc.message, exc.body, exc.response.headers, model, base_url)
    if isinstance(exc, openai.APIError) and not isinstance(exc, openai.APIResponseValidationError) \
            and exc.body is not None:  # an error event in a stream: the SDK raises a bare APIError
        return error_in_stream(exc.body, model)
    if isinstance(exc, openai.APIResponseValidationError):
        return LMResponseError(
            f"unusable response for {model}: {exc.message}",
            status=exc.status_code,
            body=exc.body,
            model=model,
        )
    return LMResponseError(f"unusable response for {model}: {type(exc).__name__}: {exc}", model=model)


class OpenAIClient:
    """``LMClient`` over ``openai.AsyncOpenAI``: the reference path.

    The SDK's own retries are off by default (``max_retries=0``): rlm's dispatcher
    retries every call with one policy (``rlm.lm.retry``), whatever the transport.

    Example::

        client = OpenAIClient(base_url="http://127.0.0.1:8000/v1")
        reply = await client.complete([{"role": "user", "content": "hi"}], model="gpt-5-mini")
    """

    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout: float = 120.0,
        max_retries: int = 0,
        **client_kwargs: Any,
    ) -> None:
        import openai  # here, not at import: it is most of `import rlm`'s time otherwise

        key, url = resolve_endpoint(api_key, base_url)
        self.base_url = url
        self._client = openai.AsyncOpenAI(
            api_key=key, base_url=url, timeout=timeout, max_retries=max_retries, **client_kwargs
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        #: Whether to ask this endpoint to stream (when the dispatcher wants a reply streamed).
        self.streams = True
        # Held here until closed, so a collection of this wrapper (in a garbage cycle, on any
        # thread) can never finalize the SDK's connections before our close runs on their loop.
        _open_sdk_clients[id(self._client)] = self._client

    async def complete(
        self, messages: list[Message], *, model: str, on_delta: OnDelta | None = None, **opts: Any
    ) -> Completion:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        if on_delta is not None and self.streams:
            try:
                return await self._streamed(messages, model, on_delta, opts)
            except LMResponseError as exc:
                if not refuses_stream(exc):
                    raise
                stop_streaming(self, f"the endpoint refused to stream ({exc})")
        started = time.perf_counter()
        try:
            # The raw response too: its x-ratelimit-* headers say when a quota runs out.
            raw = await self._client.chat.completions.with_raw_response.create(
                **sdk_arguments(model, messages, wire_options(opts, self.base_url))
            )
            response = raw.parse()
        except (_sdk_error(), ValueError) as exc:  # the SDK lets a bad JSON body through as ValueError
            raise translate_error(exc, model, self.base_url) from exc
        seconds = time.perf_counter() - started
        choices = getattr(response, "choices", None)
        if not choices:
            raise LMResponseError(
                f"the endpoint for {model} returned no choices", body=_dump(response), model=model, transient=True
            )
        choice = choices[0]
        usage = reported_usage(getattr(response, "usage", None), response)
        return Completion(
            text=choice.message.content or "",
            model=model,
            usage=usage,
            seconds=seconds,
            finish_reason=choice.finish_reason,
            tool_calls=len(getattr(choice.message, "tool_calls", None) or ()),
            quota_wait=quota_reset(raw.headers),
        )

    async def _streamed(
        self, messages: list[Message], model: str, on_delta: OnDelta, opts: dict[str, Any]
    ) -> Completion:
        """The reply as the SDK streams it; an error before the first byte is the whole-reply path's error."""
        import openai

        started = time.perf_counter()
        reader = StreamReader(model, on_delta)
        try:
            raw = await self._client.chat.completions.with_raw_response.create(
                **sdk_arguments(model, messages, streamed(wire_options(opts, self.base_url)))
            )
        except (_sdk_error(), ValueError) as exc:
            raise translate_error(exc, model, self.base_url) from exc
        quota_wait = quota_reset(raw.headers)
        if not is_event_stream(raw.headers):
            try:
                body = await raw.http_response.aread()
            except _http_errors() as exc:
                raise _cut(exc, model, 0) from exc
            return whole_reply(self, body, model, time.perf_counter() - started, quota_wait, on_delta)
        stream: Any = raw.parse()  # an AsyncStream of chunks: the request asked to stream
        try:
            async for chunk in stream:
                reader.add(chunk.to_dict())
        except openai.APIConnectionError as exc:
            raise _cut(exc, model, reader.chunks) from exc
        except (_sdk_error(), ValueError) as exc:  # a chunk that is not JSON, or an error event
            raise translate_error(exc, model, self.base_url) from exc
        except _http_errors() as exc:  # older SDKs let a broken stream's read error out unwrapped
            raise _cut(exc, model, reader.chunks) from exc
        finally:
            await stream.close()
        completion = reader.completion(time.perf_counter() - started, quota_wait)
        if reader.usage is None:
            stop_streaming(self, "the endpoint streamed no usage")
        return completion

    async def list_models(self) -> list[dict[str, Any]]:
        """The endpoint's ``/models`` entries as dicts, with any fields the server adds."""
        try:
            page = await self._client.models.list()
        except _sdk_error() as exc:
            raise translate_error(exc, "/models") from exc
        return [m.model_dump() for m in page.data]

    async def context_windows(self) -> dict[str, int]:
        """Model -> context window, as a non-OpenAI endpoint's ``/models`` lists them (OpenAI lists none)."""
        if is_openai_endpoint(self.base_url):
            return {}
        return windows_of(await self.list_models())

    async def aclose(self) -> None:
        await _close_sdk_client(self._client)

    def __del__(self) -> None:
        client = getattr(self, "_client", None)
        if client is None:
            return
        if client.is_closed() or not close_on_loop(lambda: _close_sdk_client(client), getattr(self, "_loop", None)):
            _open_sdk_clients.pop(id(client), None)  # never used on a loop, or that loop is gone


def _http_errors() -> tuple[type[Exception], ...]:
    """The transport errors of the SDK's HTTP library (httpx, or httpx2 in newer SDKs) once it is loaded."""
    return tuple(m.TransportError for m in (sys.modules.get("httpx"), sys.modules.get("httpx2")) if m is not None)


def _cut(exc: Exception, model: str, chunks: int) -> LMError:
    """A stream that stopped early: a timeout if it went quiet, else a broken connection (both retried)."""
    if "Timeout" in type(exc).__name__ or "Timeout" in type(exc.__cause__).__name__:
        return LMTimeout(f"request to {model} timed out", model=model)
    return broken_stream(exc, model, chunks)


def _sdk_error() -> type[Exception]:
    import openai

    return openai.OpenAIError


def _dump(response: Any) -> Any:
    try:
        return response.model_dump()
    except AttributeError:
        return response
