"""The model client: ``openai.AsyncOpenAI`` against any OpenAI-compatible endpoint.

Everything rlm sends to a model goes through an object with the one-method
``LMClient`` protocol, so a caller can pass their own (``Endpoint(client=...)``). A client
that can stream a reply as it is generated also has ``streams = True`` and takes
``on_delta=`` (``rlm.lm.stream``); the dispatcher asks only such clients to stream.
What both clients share lives beside them: the endpoint and its wire names
(``rlm.lm.endpoint``), the errors (``rlm.lm.failures``), streams (``rlm.lm.stream``).
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable, Coroutine
from typing import Any, Protocol, runtime_checkable

from ..errors import LMError, LMResponseError, LMTimeout
from .endpoint import is_openai_endpoint, resolve_endpoint, windows_of, wire_options
from .failures import translate_error
from .retry import quota_reset
from .stream import OnDelta, StreamReader, broken_stream, is_event_stream, streamed, unless_refused, whole_reply
from .types import Completion, Message, reported_usage

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
            done = await unless_refused(self, lambda: self._streamed(messages, model, on_delta, opts))
            if done is not None:
                return done
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
        return reader.finish(self, time.perf_counter() - started, quota_wait)

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
