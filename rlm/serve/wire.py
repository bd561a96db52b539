"""The OpenAI chat completion objects this server sends: whole, and as stream chunks.

Beyond OpenAI's fields: ``usage.cost`` (dollars, as OpenRouter reports it, None when a
model has no price) and an ``rlm`` object (model calls, iterations, why the run
stopped, seconds, cost by model, the trace's URL on this server). Progress streams as
``delta.reasoning_content``, the field vLLM, DeepSeek and LiteLLM use for reasoning.
"""

from __future__ import annotations

import json
import os
import time
from typing import TYPE_CHECKING, Any

from ..core.result import RLMResult

if TYPE_CHECKING:
    from .chat import ChatRequest
    from .runs import Finished

#: Why a run stopped -> OpenAI's finish_reason (a failed sub-call's text is never sent as an answer).
FINISH = {"final": "stop", "max_iterations": "stop", "cut_off": "length"}


def completion_id(request_id: str) -> str:
    return f"chatcmpl-{request_id}"


def answer_text(result: RLMResult) -> str:
    """The answer as message content: the text, or the typed answer as JSON."""
    if isinstance(result.answer, str):
        return result.answer
    return json.dumps(result.answer, ensure_ascii=False)


def usage(result: RLMResult) -> dict[str, Any]:
    """Tokens of every root and sub-call (children included), and their cost."""
    report = result.usage
    return {"prompt_tokens": report.prompt_tokens, "completion_tokens": report.completion_tokens,
            "total_tokens": report.total_tokens,
            "prompt_tokens_details": {"cached_tokens": report.cached_prompt_tokens},
            "cost": report.cost_usd}


def extension(finished: Finished) -> dict[str, Any]:
    """The ``rlm`` object: what the run did, beyond OpenAI's usage."""
    result = finished.result
    return {"calls": result.usage.calls, "iterations": result.iterations, "stopped": result.stopped,
            "seconds": round(result.seconds, 3), "cost_usd": result.usage.cost_usd,
            "by_model": {m: {"calls": u.calls, "prompt_tokens": u.prompt_tokens,
                             "completion_tokens": u.completion_tokens, "cost_usd": u.cost_usd}
                         for m, u in result.usage.by_model.items()},
            "trace": f"/v1/traces/{os.path.basename(finished.trace)}" if finished.trace else None}


def completion_body(chat: ChatRequest, finished: Finished, request_id: str) -> dict[str, Any]:
    result = finished.result
    return {"id": completion_id(request_id), "object": "chat.completion", "created": int(time.time()),
            "model": chat.model, "system_fingerprint": None,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": answer_text(result), "refusal": None},
                         "finish_reason": FINISH.get(result.stopped, "stop"), "logprobs": None}],
            "usage": usage(result), "rlm": extension(finished)}


def chunk(chat: ChatRequest, request_id: str, delta: dict[str, Any] | None = None, finish: str | None = None,
          **extra: Any) -> dict[str, Any]:
    """One ``chat.completion.chunk``; with no delta and no finish, the usage chunk (empty choices)."""
    choices = [] if delta is None and finish is None else [
        {"index": 0, "delta": delta or {}, "finish_reason": finish, "logprobs": None}]
    return {"id": completion_id(request_id), "object": "chat.completion.chunk", "created": int(time.time()),
            "model": chat.model, "system_fingerprint": None, "choices": choices, **extra}


def sse(data: dict[str, Any] | str) -> bytes:
    """One server-sent event: ``data: <json>`` and a blank line."""
    text = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
    return f"data: {text}\n\n".encode()
