"""OpenAI chat-completions wire format, rendered with plain ``json.dumps``.

Kept free of server state so the hot path is a few dict literals per request:
the scripted server has to sustain benchmark load on a couple of cores.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

SSE_DONE = b"data: [DONE]\n\n"
SSE_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
# A body cut off mid-object: what a truncating proxy hands back.
MALFORMED_BODY = b'{"id": "chatcmpl-malformed", "object": "chat.completion", "choices": [{"index": 0, "mess'

# OpenAI's ``error.type`` for the statuses clients care about; anything else
# falls back on its 4xx/5xx family so clients still classify it.
_ERROR_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}
_ERROR_CODES: dict[int, str] = {429: "rate_limit_exceeded"}


def message_text(content: object) -> str:
    """Flatten string or multi-part message content, the two shapes OpenAI accepts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def estimate_tokens(text: str) -> int:
    """A rough token count, good enough for usage accounting in tests."""
    return max(1, len(text) // 4)


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    """The ``{"error": {...}}`` response the openai client turns into typed exceptions."""
    kind = _ERROR_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    error = {"message": message, "type": kind, "param": None, "code": _ERROR_CODES.get(status)}
    body = json.dumps({"error": error}).encode()
    return web.Response(status=status, body=body, content_type="application/json", headers=headers)


def malformed_response(stream: bool) -> tuple[web.StreamResponse, bytes]:
    """A 200 that cannot be parsed, in the framing the client expects, plus its unsent tail."""
    if not stream:
        return web.Response(body=MALFORMED_BODY, content_type="application/json"), b""
    return web.StreamResponse(headers=SSE_HEADERS), b"data: " + MALFORMED_BODY + b"\n\n" + SSE_DONE


def error_event_response(stream: bool, message: str) -> tuple[web.StreamResponse, bytes]:
    """A server failing while it generates: an ``error`` event mid-stream, or a 500 for a whole reply."""
    if not stream:
        return error_response(500, message), b""
    error = {"error": {"message": message, "type": "server_error", "param": None, "code": None}}
    first = {"id": "chatcmpl-error", "object": "chat.completion.chunk", "created": 0, "model": "scripted",
             "choices": [{"index": 0, "delta": {"role": "assistant", "content": "par"}, "finish_reason": None}]}
    events = b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in (first, error))
    return web.StreamResponse(headers=SSE_HEADERS), events + SSE_DONE


def retry_after_headers(seconds: float) -> dict[str, str]:
    """Headers of a 429: both retry spellings clients read, and an empty quota."""
    return {
        "Retry-After": f"{seconds:g}",
        "retry-after-ms": str(round(seconds * 1000)),
        "x-ratelimit-remaining-requests": "0",
    }


def cap_reply(content: str | None, body: dict[str, Any]) -> tuple[str | None, str]:
    """Cut a reply to the request's ``max_completion_tokens``/``max_tokens``, as an endpoint does.

    Returns the reply and its finish reason: ``"length"`` when it was cut. Tokens are
    the server's own estimate (4 characters each), so usage and the cut agree.
    """
    caps = [body.get(k) for k in ("max_completion_tokens", "max_tokens")]
    cap = next((c for c in caps if isinstance(c, int) and c > 0), None)
    if content is None or cap is None or estimate_tokens(content) <= cap:
        return content, "stop"
    return content[: cap * 4], "length"


def _usage(messages: list[dict[str, Any]], content: str | None, cached: int = 0, images: int = 0) -> dict[str, Any]:
    """Estimated usage over every message's text, its ``images``' tokens and the reply; ``cached`` as OpenAI says."""
    prompt = estimate_tokens("".join(message_text(m.get("content")) for m in messages)) + images
    completion = estimate_tokens(content) if content else 0
    usage: dict[str, Any] = {"prompt_tokens": prompt, "completion_tokens": completion,
                             "total_tokens": prompt + completion}
    if cached:
        usage["prompt_tokens_details"] = {"cached_tokens": min(cached, prompt)}
    return usage


def _tool_calls(name: str) -> list[dict[str, Any]]:
    return [{"index": 0, "id": "call_scripted", "type": "function", "function": {"name": name, "arguments": "{}"}}]


def completion(
    request_id: str,
    model: str,
    messages: list[dict[str, Any]],
    content: str | None,
    *,
    has_choice: bool = True,
    finish_reason: str = "stop",
    tool_call: str | None = None,
    cached: int = 0,
    images: int = 0,
) -> bytes:
    """A ``chat.completion`` body; ``has_choice=False`` gives ``choices: []``; ``tool_call`` a call, no text."""
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if tool_call is not None:
        message["tool_calls"] = [{k: v for k, v in call.items() if k != "index"} for call in _tool_calls(tool_call)]
        finish_reason = "tool_calls"
    choices = [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason}] if has_choice else []
    body = {
        "id": request_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": choices,
        "usage": _usage(messages, content, cached, images),
    }
    return json.dumps(body).encode()


def completion_events(
    request_id: str,
    model: str,
    messages: list[dict[str, Any]],
    content: str | None,
    *,
    has_choice: bool = True,
    include_usage: bool = False,
    finish_reason: str = "stop",
    chunk_chars: int = 8,
    tool_call: str | None = None,
    cached: int = 0,
    images: int = 0,
) -> list[bytes]:
    """SSE events of a streamed completion, ``chunk_chars`` characters of text each, without the closing ``[DONE]``."""
    head: dict[str, Any] = {
        "id": request_id,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
    }
    if include_usage:
        head["usage"] = None
    events = [
        b"data: " + json.dumps({**head, "choices": choices}).encode() + b"\n\n"
        for choices in _stream_choices(content, has_choice, finish_reason, chunk_chars, tool_call)
    ]
    if include_usage:
        usage = _usage(messages, content, cached, images)
        events.append(b"data: " + json.dumps({**head, "choices": [], "usage": usage}).encode() + b"\n\n")
    return events


def _stream_choices(
    content: str | None, has_choice: bool, finish_reason: str, chunk_chars: int, tool_call: str | None
) -> list[list[dict[str, Any]]]:
    """The ``choices`` of each chunk: the role, the content deltas (or a tool call), then the finish."""
    if not has_choice:
        return [[]]
    if tool_call is not None:
        delta = {"role": "assistant", "content": None, "tool_calls": _tool_calls(tool_call)}
        return [[{"index": 0, "delta": delta, "logprobs": None, "finish_reason": "tool_calls"}]]
    if content is None:
        return [
            [{"index": 0, "delta": {"role": "assistant", "content": None}, "logprobs": None, "finish_reason": "stop"}]
        ]
    step = chunk_chars
    deltas: list[dict[str, Any]] = [{"role": "assistant", "content": ""}]
    deltas += [{"content": content[i : i + step]} for i in range(0, len(content), step)]
    choices: list[list[dict[str, Any]]] = [
        [{"index": 0, "delta": d, "logprobs": None, "finish_reason": None}] for d in deltas
    ]
    choices.append([{"index": 0, "delta": {}, "logprobs": None, "finish_reason": finish_reason}])
    return choices


async def render(
    request: web.Request, index: int, model: str, messages: list[dict[str, Any]], body: dict[str, Any],
    stream: bool, content: str | None, *, has_choice: bool, headers: dict[str, str], tool_call: str | None = None,
    chunk_chars: int = 8, pace: Callable[[int, int], Awaitable[bool]] | None = None, cut_after: int | None = None,
    cached: int = 0, images: int = 0,
) -> tuple[web.StreamResponse, bytes | None]:
    """A chat.completion, or its SSE events when the client asked to stream, minus its last bytes.

    ``pace(i, n)`` is awaited before each of a stream's ``n`` events (False: stop there).
    With ``cut_after`` only that many events (of a whole reply, half its body) are sent,
    and the last bytes are None: the caller drops the connection instead. ``images``: the
    prompt tokens of the request's images, counted into its usage.
    """
    request_id = f"chatcmpl-scripted-{index}"
    content, finish = cap_reply(content, body)
    if not stream:
        text = completion(request_id, model, messages, content, has_choice=has_choice, finish_reason=finish,
                          tool_call=tool_call, cached=cached, images=images)
        if cut_after is None:
            return web.Response(body=text, content_type="application/json", headers=headers), b""
        cut = web.StreamResponse(headers={**headers, "Content-Type": "application/json"})
        cut.content_length = len(text)
        await cut.prepare(request)
        await cut.write(text[: len(text) // 2])
        return cut, None
    options = body.get("stream_options")
    include_usage = isinstance(options, dict) and bool(options.get("include_usage"))
    response = web.StreamResponse(headers={**SSE_HEADERS, **headers})
    await response.prepare(request)
    events = completion_events(
        request_id, model, messages, content, has_choice=has_choice, include_usage=include_usage,
        finish_reason=finish, chunk_chars=chunk_chars, tool_call=tool_call, cached=cached, images=images,
    )
    for i, event in enumerate(events):
        if (cut_after is not None and i >= cut_after) or (pace is not None and not await pace(i, len(events))):
            return response, None
        await response.write(event)
    return response, SSE_DONE
