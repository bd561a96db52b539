"""Plain data passed between the LM layer and the rest of rlm."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

#: One chat message as the OpenAI API takes it (``{"role": ..., "content": ...}``).
Message = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Usage:
    """Token and call counts and their cost; add two with ``+``.

    ``cost_usd`` is None when no price is known for the model (never a made-up $0);
    a sum is None only if every part is. ``cached_calls`` counts answers served from
    the cache or shared with an identical call in flight: they cost no model call.
    ``cached_prompt_tokens`` are the part of ``prompt_tokens`` the provider served from
    its prefix cache (priced at the model's cached rate). ``hedged_calls`` counts the
    duplicate requests hedging sent (see ``rlm.lm.hedge``), included in ``calls``.
    """

    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float | None = None
    cached_calls: int = 0
    cached_prompt_tokens: int = 0
    hedged_calls: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: Usage) -> Usage:
        if self.cost_usd is None and other.cost_usd is None:
            cost = None
        else:
            cost = (self.cost_usd or 0.0) + (other.cost_usd or 0.0)
        return Usage(
            self.calls + other.calls,
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            cost,
            self.cached_calls + other.cached_calls,
            self.cached_prompt_tokens + other.cached_prompt_tokens,
            self.hedged_calls + other.hedged_calls,
        )


def _get(obj: Any, name: str) -> Any:
    """A field of a JSON object or of the SDK's model of it."""
    return obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def reported_usage(usage: Any, response: Any = None) -> Usage:
    """One reply's ``Usage`` from its ``usage`` object (a dict or the SDK's model).

    Providers report prompt-cache hits under different names: OpenAI, vLLM and most
    others as ``usage.prompt_tokens_details.cached_tokens``, DeepSeek as
    ``usage.prompt_cache_hit_tokens``, llama.cpp's server as ``timings.cache_n`` beside
    the usage (``response``).
    """
    prompt = _count(_get(usage, "prompt_tokens"))
    cached = (_count(_get(_get(usage, "prompt_tokens_details"), "cached_tokens"))
              or _count(_get(usage, "prompt_cache_hit_tokens"))
              or _count(_get(_get(response, "timings"), "cache_n")))
    return Usage(calls=1, prompt_tokens=prompt, completion_tokens=_count(_get(usage, "completion_tokens")),
                 cached_prompt_tokens=min(cached, prompt))


@dataclass(frozen=True, slots=True)
class Completion:
    """One model reply. ``text`` is "" when the endpoint sent no content.

    ``quota_wait``: seconds until a quota this reply exhausted resets, from its
    ``x-ratelimit-remaining-*``/``x-ratelimit-reset-*`` headers (None when not exhausted).
    """

    text: str
    model: str
    usage: Usage
    seconds: float
    finish_reason: str | None = None
    quota_wait: float | None = None
    #: How many tool calls the reply made instead of (or beside) its text.
    tool_calls: int = 0


@dataclass
class UsageMeter:
    """Usage accumulated per model; safe to update from several threads."""

    by_model: dict[str, Usage] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, model: str, usage: Usage) -> None:
        with self._lock:
            self.by_model[model] = self.by_model.get(model, Usage()) + usage

    def snapshot(self) -> dict[str, Usage]:
        with self._lock:
            return dict(self.by_model)

    @property
    def total(self) -> Usage:
        total = Usage()
        for usage in self.snapshot().values():
            total = total + usage
        return total
