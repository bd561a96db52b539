"""Fault descriptions for :class:`rlm.testing.ScriptedLM`.

A ``Fault`` is pure data and the server decides how to render it, so tests can
build fault rules without touching server internals.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["Fault"]


@dataclass(frozen=True)
class Fault:
    """One way a request can go wrong; build it with the ``Fault.*`` constructors."""

    kind: str
    status: int = 200
    message: str = ""
    seconds: float = 0.0
    #: The 429's headers instead of the usual retry hints (a provider's quota headers, say).
    headers: Mapping[str, str] | None = field(default=None, compare=False)
    #: How many events of a streamed reply a ``cut`` sends before the connection drops.
    after: int = 0

    @classmethod
    def http(cls, status: int, message: str = "ScriptedLM injected error") -> Fault:
        """Answer with ``status`` and an OpenAI-style error body."""
        return cls("http", status=status, message=message)

    @classmethod
    def rate_limit(cls, retry_after: float = 1.0, headers: Mapping[str, str] | None = None) -> Fault:
        """Answer 429 with the retry hints real providers send, or with exactly ``headers``."""
        return cls("rate_limit", status=429, message="ScriptedLM: rate limit reached", seconds=retry_after,
                   headers=dict(headers) if headers is not None else None)

    @classmethod
    def hang(cls, seconds: float) -> Fault:
        """Stall before a normal answer, to push a client past its timeout."""
        return cls("hang", seconds=seconds)

    @classmethod
    def cut(cls, after: int = 3) -> Fault:
        """Drop the connection mid-reply: after ``after`` events of a stream, or half of a whole body."""
        return cls("cut", after=after)

    @classmethod
    def error_event(cls, message: str = "ScriptedLM: the model failed while generating") -> Fault:
        """Fail mid-reply: an ``error`` event after the first text of a stream (a 500 for a whole reply)."""
        return cls("error_event", status=500, message=message)

    @classmethod
    def malformed(cls) -> Fault:
        """Answer 200 with a body that is not valid JSON."""
        return cls("malformed")

    @classmethod
    def empty_choices(cls) -> Fault:
        """Answer 200 with a well-formed completion whose ``choices`` is empty."""
        return cls("empty_choices")

    @classmethod
    def tool_call(cls, name: str = "search") -> Fault:
        """Answer 200 with a tool call and no text, as a model trained to call tools does."""
        return cls("tool_call", message=name)

    @classmethod
    def null_content(cls) -> Fault:
        """Answer 200 with ``choices[0].message.content = null``."""
        return cls("null_content")
