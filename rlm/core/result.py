"""What a completion returns: plain, frozen dataclasses."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Protocol

from ..lm.budget import BudgetReport
from ..lm.types import Usage
from ..repl.base import ExecResult
from ..trace.endings import StopReason as StopReason
from ..trace.events import Subscriber
from ..trace.trace import Trace


@dataclass(frozen=True, slots=True)
class UsageReport:
    """Calls, tokens and cost per model, and their totals.

    Example: ``result.usage.calls``, ``result.usage.cost_usd``,
    ``result.usage.by_model["gpt-5-mini"].prompt_tokens``. ``cost_usd`` sums the
    models with a known price (None if none has one); ``unpriced`` lists the others.
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

    @property
    def cost_usd(self) -> float | None:
        return self.total.cost_usd

    @property
    def cached_calls(self) -> int:
        return self.total.cached_calls

    @property
    def cached_prompt_tokens(self) -> int:
        """Prompt tokens the providers served from their prefix caches (billed at the cached rate)."""
        return self.total.cached_prompt_tokens

    @property
    def hedged_calls(self) -> int:
        """Duplicate requests sent by hedging; they are in ``calls``."""
        return self.total.hedged_calls

    @property
    def unpriced(self) -> list[str]:
        """Models that made calls but have no price, so their cost is not in ``cost_usd``."""
        return [m for m, u in self.by_model.items() if u.calls and u.cost_usd is None]

    def __str__(self) -> str:
        rows = ", ".join(
            f"{m}: {u.calls} calls, {u.prompt_tokens:,}+{u.completion_tokens:,} tokens"
            + (f", ${u.cost_usd:.4f}" if u.cost_usd is not None else "")
            for m, u in self.by_model.items()
        )
        if not rows:
            return "0 calls"
        cost = "" if self.cost_usd is None else f", ${self.cost_usd:.4f}"
        unpriced = f" (no price for {', '.join(self.unpriced)})" if self.cost_usd is not None and self.unpriced else ""
        cached = f", {self.cached_calls} cached" if self.cached_calls else ""
        hedged = f", {self.hedged_calls} hedged" if self.hedged_calls else ""
        hits = f" ({self.cached_prompt_tokens:,} prompt tokens cached)" if self.cached_prompt_tokens else ""
        return f"{self.calls} calls{cached}{hedged}, {self.total_tokens:,} tokens{hits}{cost}{unpriced} ({rows})"


@dataclass(frozen=True, slots=True)
class Step:
    """One root turn: the model's reply and what each of its code blocks did."""

    iteration: int
    reply: str
    code: tuple[str, ...]
    outputs: tuple[ExecResult, ...]


class Forker(Protocol):
    """What can run a fork of a finished run (``rlm.engine.Engine``)."""

    def fork(self, source: Any, *, at: int, code: str, context: Any, schema: Any = None,
             subscribers: list[Subscriber] | None = None, view: bool | None = None) -> RLMResult:
        """``source`` branched at step ``at``, ``code`` run there; see ``RLM.fork``."""
        ...


@dataclass(frozen=True, slots=True)
class Origin:
    """What ``result.fork`` needs beyond the result's own trace: the engine that ran it, and its context."""

    engine: Forker
    context: Any = field(repr=False)


@dataclass(frozen=True, slots=True)
class RLMResult:
    """The answer and how it was reached.

    ``stopped`` says why the run ended: ``"final"`` (the root answered; ``ok`` is True),
    ``"max_iterations"`` (out of turns, the root was asked to answer at once: a best
    effort, ``fallback`` is True), ``"cut_off"`` (that forced answer was cut at its
    output cap: incomplete), ``"fallback"`` (asked twice, the root still gave no answer:
    ``answer`` lists what its variables held), ``"failed_call"`` (the answer is a failed
    sub-call's error text; ``error`` says which). A run that raised (``"budget"``, ``"error"``,
    ``"cancelled"``, Ctrl-C) has its partial result on the exception's ``.partial``.
    ``budget`` is what the run spent against its ``Budget`` and which limit, if any,
    stopped it.
    """

    #: The answer: its text, or with ``schema=`` the validated instance.
    answer: Any
    iterations: int
    usage: UsageReport
    steps: tuple[Step, ...]
    trace: Trace
    stopped: StopReason = "final"
    fallback: bool = False
    seconds: float = 0.0
    budget: BudgetReport | None = None
    error: str | None = None
    #: The answer as the root wrote it (the same as ``answer`` without a schema).
    text: str = ""
    #: The engine and context that produced it, so ``fork`` can branch it: None for a resumed map
    #: item, and after pickling (an engine lives in one process; a Ray worker's result gets its driver's).
    origin: Origin | None = field(default=None, repr=False, compare=False)

    def fork(self, *, at: int, code: str, **options: Any) -> RLMResult:
        """This run branched at step ``at``: steps before it replayed from the trace, ``code`` as step ``at``.

        See ``RLM.fork``; ``options`` are its ``schema``, ``subscribers`` and ``view``.
        """
        if self.origin is None:
            from ..errors import ConfigError

            raise ConfigError("this result has no run to fork (a resumed map item?); use rlm.fork(log_path, ...)")
        return self.origin.engine.fork(self, at=at, code=code, context=self.origin.context, **options)

    def __getstate__(self) -> list[Any]:
        return [None if f.name == "origin" else getattr(self, f.name) for f in fields(self)]

    def __setstate__(self, state: list[Any]) -> None:
        for f, value in zip(fields(self), state, strict=True):
            object.__setattr__(self, f.name, value)

    @property
    def ok(self) -> bool:
        """True when the root itself gave the answer from a complete reply."""
        return self.stopped == "final"

    def __str__(self) -> str:
        return self.text
