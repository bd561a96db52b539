"""What a completion returns: plain, frozen dataclasses."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ..lm.types import Usage
from ..repl.base import ExecResult
from ..trace.events import Event

StopReason = Literal["final", "max_iterations"]


@dataclass(frozen=True, slots=True)
class UsageReport:
    """Calls and tokens per model, and their totals.

    Example: ``result.usage.calls``, ``result.usage.by_model["gpt-5-mini"].prompt_tokens``.
    """

    by_model: dict[str, Usage] = field(default_factory=dict)

    @property
    def total(self) -> Usage:
        total = Usage()
        for usage in self.by_model.values():
            total = total + usage
        return total

    @property
    def calls(self) -> int:
        return self.total.calls

    @property
    def prompt_tokens(self) -> int:
        return self.total.prompt_tokens

    @property
    def completion_tokens(self) -> int:
        return self.total.completion_tokens

    @property
    def total_tokens(self) -> int:
        return self.total.total_tokens

    def __str__(self) -> str:
        rows = ", ".join(
            f"{m}: {u.calls} calls, {u.prompt_tokens:,}+{u.completion_tokens:,} tokens"
            for m, u in self.by_model.items()
        )
        return f"{self.calls} calls, {self.total_tokens:,} tokens ({rows})" if rows else "0 calls"


@dataclass(frozen=True, slots=True)
class Step:
    """One root turn: the model's reply and what each of its code blocks did."""

    iteration: int
    reply: str
    code: tuple[str, ...]
    outputs: tuple[ExecResult, ...]


@dataclass(frozen=True, slots=True)
class RLMResult:
    """The answer and how it was reached.

    ``fallback`` is True when the root ran out of iterations and was asked to answer
    at once: the answer is then a best effort, not one the root chose to give.
    """

    answer: str
    iterations: int
    usage: UsageReport
    steps: tuple[Step, ...]
    trace: tuple[Event, ...]
    stopped: StopReason = "final"
    fallback: bool = False
    seconds: float = 0.0

    def __str__(self) -> str:
        return self.answer
