"""Streamed chat completions, read the same way by both clients.

A streamed reply arrives as server-sent events (``data: {chunk}`` lines, then
``data: [DONE]``); ``StreamReader`` folds the chunks into the same ``Completion`` a
whole reply gives: text, finish reason, tool calls, and the usage of the endpoint's
own usage chunk (asked for with ``stream_options.include_usage``). Why one reader for
both clients: a root reply must come out the same whichever transport carried it,
as whole replies do (``tests/lm/test_streaming.py`` compares them on one server).

A client that can stream has ``streams = True`` and takes ``on_delta=`` in
``complete``; the ``Dispatcher`` decides call by call whether to pass it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from ..errors import LMConnectionError, LMError, LMResponseError
from .types import Completion, reported_usage

log = logging.getLogger("rlm")

#: Statuses with which servers refuse a request to stream (or its ``stream_options``).
_REFUSAL_STATUSES = frozenset({400, 422, 501})

OnDelta = Callable[[str], None]


def streamed(opts: dict[str, Any]) -> dict[str, Any]:
    """``opts`` asking for a stream that ends with its usage."""
    options = opts.get("stream_options")
    extra = dict(options) if isinstance(options, dict) else {}
    return {**opts, "stream": True, "stream_options": {**extra, "include_usage": True}}


def is_event_stream(headers: Any) -> bool:
    """Whether a 200 is an event stream, not a whole reply from a server that ignored ``stream``."""
    return str(headers.get("content-type", "")).startswith("text/event-stream")


def refuses_stream(exc: LMError) -> bool:
    """Whether ``exc`` is the endpoint saying it does not stream (so the call is worth sending whole)."""
    if not isinstance(exc, LMResponseError) or exc.status not in _REFUSAL_STATUSES:
        return False
    return "stream" in f"{exc} {exc.body}".lower()


def broken_stream(exc: BaseException, model: str, chunks: int) -> LMConnectionError:
    """A stream that stopped before its end: retried as a dropped connection is."""
    cause = exc.__cause__ or exc
    return LMConnectionError(
        f"the stream from the endpoint for {model} broke off after {chunks} chunks: {type(cause).__name__}: {cause}",
        model=model,
    )


def unusable(exc: BaseException, model: str) -> LMResponseError:
    """A body that cannot be read, worded as the whole-reply path words it."""
    return LMResponseError(f"unusable response for {model}: {type(exc).__name__}: {exc}", model=model)


def error_in_stream(error: Any, model: str) -> LMResponseError:
    """An ``{"error": ...}`` event mid-stream: the server failed while generating, so it may pass next time."""
    message = error.get("message") if isinstance(error, dict) else None
    if not isinstance(message, str) or not message:
        message = "An error occurred during streaming"
    return LMResponseError(
        f"the endpoint for {model} failed mid-stream: {message}", body=error, model=model, transient=True
    )


def parse_completion(raw: bytes, model: str, seconds: float, quota_wait: float | None = None) -> Completion:
    """A ``Completion`` from a 200 body, or the same ``LMResponseError`` the SDK path raises."""
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise LMResponseError(f"unusable response for {model}: {type(exc).__name__}: {exc}", model=model) from exc
    choices = data.get("choices") if isinstance(data, dict) else None
    if not choices:
        raise LMResponseError(f"the endpoint for {model} returned no choices", body=data, model=model, transient=True)
    choice = choices[0]
    message = choice.get("message") or {}
    usage = data.get("usage") or {}
    return Completion(
        text=message.get("content") or "",
        model=model,
        usage=reported_usage(usage, data),
        seconds=seconds,
        finish_reason=choice.get("finish_reason"),
        tool_calls=len(message.get("tool_calls") or ()) if isinstance(message, dict) else 0,
        quota_wait=quota_wait,
    )


class SSEDecoder:
    """Bytes of an event stream in, the ``data`` of each complete event out.

    Only ``data`` matters for chat completions; comments (``: keep-alive``) and other
    fields are skipped. Lines are split here, not by the HTTP library, so a chunk of any
    size is read whole.
    """

    def __init__(self) -> None:
        self._rest = b""
        self._data: list[str] = []

    def feed(self, piece: bytes) -> list[str]:
        lines = (self._rest + piece).split(b"\n")
        self._rest = lines.pop()
        out: list[str] = []
        for raw in lines:
            line = raw.rstrip(b"\r")
            if not line:
                if self._data:
                    out.append("\n".join(self._data))
                    self._data = []
            elif line.startswith(b"data:"):
                self._data.append(line[5:].removeprefix(b" ").decode())
        return out

    def close(self) -> list[str]:
        """The last event, if the stream ended without the blank line that closes it."""
        return self.feed(b"\n\n") if self._rest or self._data else []


class StreamReader:
    """Folds a stream's chunks (plain dicts) into one ``Completion``, calling ``on_delta`` with each piece of text."""

    def __init__(self, model: str, on_delta: OnDelta) -> None:
        self.model = model
        self.on_delta = on_delta
        self.chunks = 0
        self.usage: dict[str, Any] | None = None
        self._timings: Any = None
        self._parts: list[str] = []
        self._choice = False
        self._finish: str | None = None
        self._tool_calls: set[int] = set()

    def add(self, chunk: Any) -> None:
        if not isinstance(chunk, dict):
            raise unusable(TypeError(f"a stream chunk is {type(chunk).__name__}, not an object"), self.model)
        self.chunks += 1
        if chunk.get("error"):
            raise error_in_stream(chunk["error"], self.model)
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            self.usage = usage  # servers that report usage on every chunk: the last one counts
        if chunk.get("timings") is not None:
            self._timings = chunk["timings"]  # llama.cpp: its prompt-cache hits (cache_n) are here
        for choice in chunk.get("choices") or ():
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            self._choice = True
            delta = choice.get("delta") or {}
            text = delta.get("content")
            if isinstance(text, str) and text:
                self._parts.append(text)
                self.on_delta(text)
            for call in delta.get("tool_calls") or ():
                self._tool_calls.add(call.get("index", 0) if isinstance(call, dict) else 0)
            if choice.get("finish_reason"):
                self._finish = choice["finish_reason"]

    def finish(self, client: Any, seconds: float, quota_wait: float | None) -> Completion:
        """The reply; a client whose endpoint streamed no usage stops streaming (its later calls go whole)."""
        completion = self.completion(seconds, quota_wait)
        if self.usage is None:
            stop_streaming(client, "the endpoint streamed no usage")
        return completion

    def completion(self, seconds: float, quota_wait: float | None) -> Completion:
        """The reply; without choices, the same transient error a whole reply without choices gives."""
        if not self._choice:
            raise LMResponseError(
                f"the endpoint for {self.model} returned no choices", body={"chunks": self.chunks},
                model=self.model, transient=True,
            )
        usage = self.usage or {}
        if self.usage is None:
            log.warning("rlm: the endpoint streamed no usage for %s although asked to (stream_options.include_usage); "
                        "this call counts 0 tokens, as a whole reply without usage does, and this client stops "
                        "streaming", self.model)
        return Completion(
            text="".join(self._parts),
            model=self.model,
            usage=reported_usage(usage, {"timings": self._timings}),
            seconds=seconds,
            finish_reason=self._finish,
            tool_calls=len(self._tool_calls),
            quota_wait=quota_wait,
        )


def stop_streaming(client: Any, why: str) -> None:
    """Send this client's later calls whole: its endpoint refused to stream, or streamed without usage."""
    client.streams = False
    log.info("rlm: %s: %s; its replies are read whole from now on", getattr(client, "base_url", client), why)


async def unless_refused(client: Any, stream: Callable[[], Awaitable[Completion]]) -> Completion | None:
    """The streamed reply, or None when the endpoint refused to stream: the call is then sent whole.

    The client stops asking to stream (``stop_streaming``); any other error is the call's.
    """
    try:
        return await stream()
    except LMResponseError as exc:
        if not refuses_stream(exc):
            raise
        stop_streaming(client, f"the endpoint refused to stream ({exc})")
        return None


def whole_reply(
    client: Any, body: bytes, model: str, seconds: float, quota_wait: float | None, on_delta: OnDelta
) -> Completion:
    """A whole reply to a request to stream (a server or proxy that ignores ``stream``): read it as one."""
    completion = parse_completion(body, model, seconds, quota_wait)
    stop_streaming(client, "the endpoint answered a request to stream with a whole reply")
    if completion.text:
        on_delta(completion.text)
    return completion
