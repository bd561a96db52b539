"""Budgets: limits on calls, tokens, dollars and seconds for one completion and its children.

Budget is *reserved* before a call is dispatched, so calls in flight count: 64
parallel calls cannot together overshoot it. A call reserves one call, its prompt
tokens and an allowance for its reply: the request's ``max_tokens`` /
``max_completion_tokens`` if the caller set one, else ``Budget.output_tokens_per_call``,
which is then sent with the request as its output cap. Why send it: a reply longer
than its reservation is the one way parallel calls could overshoot a token or dollar
limit (a 20-call batch of 8k-token replies once spent 9x a 20k limit), and only the
endpoint can stop a reply. When a call returns, its reservation is replaced by what
it really used. A call that does not fit waits while other calls are in flight
(their unused allowance may come back); once none is, a call whose cap is ours takes
whatever is left (at least ``MIN_REPLY_TOKENS``), and otherwise it is refused with
``BudgetExceeded``. Once one limit refuses a call, every later call is refused too:
the run stops.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from typing import Any

from ..errors import BudgetExceeded, ConfigError, check_int, check_positive
from .endpoint import MAX_OUTPUT_TOKENS
from .pricing import Pricing
from .types import Usage

LIMITS = ("max_calls", "max_tokens", "max_cost_usd", "max_time_s")

#: The smallest reply cap worth sending: below it a call is refused instead.
MIN_REPLY_TOKENS = 16
#: Float slack on dollar sums, far below anything a price can charge.
_CENT_FRACTION = 1e-12
#: The request options that cap a reply, in the order they are honoured: the wire names a
#: caller may set in ``call_options``, then the neutral one the clients translate.
OUTPUT_CAP_KEYS = ("max_completion_tokens", "max_tokens", MAX_OUTPUT_TOKENS)


@dataclass(frozen=True, slots=True)
class Budget:
    """Limits for one completion, its sub-calls and its recursive children together.

    Example::

        RLM("gpt-5", "gpt-5-mini", budget=Budget(max_cost_usd=0.50, max_time_s=120))

    ``max_tokens`` counts prompt plus completion tokens of every call. Cache hits
    are free. A failed call counts as a call but uses no tokens. ``max_time_s``
    is wall time from the start of the completion; it cuts calls in flight (a
    step doing pure computation is bounded by ``step_timeout`` instead).
    ``output_tokens_per_call``: with a token or dollar limit, each call's reply is
    capped at this (reasoning tokens included) unless ``call_options`` sets a cap.
    """

    max_calls: int | None = None
    max_tokens: int | None = None
    max_cost_usd: float | None = None
    max_time_s: float | None = None
    output_tokens_per_call: int = 8192

    def __post_init__(self) -> None:
        for name in ("max_calls", "max_tokens"):
            if getattr(self, name) is not None:
                check_int(f"Budget({name}=...)", getattr(self, name))
        for name in ("max_cost_usd", "max_time_s"):
            if getattr(self, name) is not None:
                check_positive(f"Budget({name}=...)", getattr(self, name))
        check_int("Budget(output_tokens_per_call=...)", self.output_tokens_per_call)

    @property
    def limited(self) -> bool:
        return any(getattr(self, name) is not None for name in LIMITS)


@dataclass(frozen=True, slots=True)
class BudgetReport:
    """What a completion spent against its budget; ``str()`` reads well in the REPL.

    ``exceeded`` names the limit that stopped the run, if one did. ``remaining``
    maps each set limit to what is left of it.
    """

    budget: Budget
    calls: int = 0
    tokens: int = 0
    cost_usd: float = 0.0
    seconds: float = 0.0
    in_flight: int = 0
    exceeded: str | None = None
    unpriced_calls: int = 0

    @property
    def spent(self) -> dict[str, float]:
        return {
            "max_calls": self.calls,
            "max_tokens": self.tokens,
            "max_cost_usd": self.cost_usd,
            "max_time_s": self.seconds,
        }

    @property
    def remaining(self) -> dict[str, float]:
        spent = self.spent
        return {
            name: max(0, limit - spent[name])
            for name in LIMITS
            if (limit := getattr(self.budget, name)) is not None
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-able, for the trace and for a sandbox on the other side of a socket."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BudgetReport:
        known = {f.name for f in fields(Budget)}
        budget = Budget(**{k: v for k, v in data.get("budget", {}).items() if k in known})
        return cls(**{**{k: v for k, v in data.items() if k != "budget"}, "budget": budget})

    def __str__(self) -> str:
        b = self.budget
        parts = [
            _line("calls", f"{self.calls:,}", b.max_calls, lambda v: f"{v:,}"),
            _line("tokens", f"{self.tokens:,}", b.max_tokens, lambda v: f"{v:,}"),
            self._cost_line(),
            _line("time", f"{self.seconds:.1f} s", b.max_time_s, lambda v: f"{v:.1f} s"),
        ]
        head = f"budget exceeded: {self.exceeded}" if self.exceeded else "budget"
        tail = f" ({self.in_flight} calls in flight)" if self.in_flight else ""
        return f"{head}{tail}\n" + "\n".join(parts)

    def __repr__(self) -> str:
        return str(self)

    def _cost_line(self) -> str:
        """Dollars spent; calls to a model with no price are counted, never shown as $0.

        (A dollar limit needs every model priced, so unpriced calls come with no limit.)
        """
        if not self.unpriced_calls:
            return _line("cost", f"${self.cost_usd:.4f}", self.budget.max_cost_usd, lambda v: f"${v:.4f}")
        unknown = f"{self.unpriced_calls:,} calls to models with no price"
        if not self.cost_usd:
            return f"  cost: unknown ({unknown}; Endpoint(pricing=...) adds prices)"
        return f"  cost: ${self.cost_usd:.4f} used + {unknown} (no limit)"


def _line(label: str, spent: str, limit: float | None, fmt: Any) -> str:
    if limit is None:
        return f"  {label}: {spent} used (no limit)"
    return f"  {label}: {spent} of {fmt(limit)} used"


@dataclass(slots=True)
class Reservation:
    """What one dispatched call holds until it returns."""

    model: str
    tokens: int
    cost: float
    reply_tokens: int


class BudgetLedger:
    """The spend of one completion and its children; lives on the runtime loop.

    Every method is called from the runtime loop thread, so plain attributes are
    safe; ``reserve`` is the only one that awaits.
    """

    def __init__(
        self, budget: Budget | None, pricing: Pricing, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.budget = budget or Budget()
        self.pricing = pricing
        self._clock = clock
        self.started = clock()
        self.calls = self.tokens = self.unpriced_calls = 0
        self.cost = 0.0
        self._reserved_calls = self._reserved_tokens = 0
        self._reserved_cost = 0.0
        self.exceeded: str | None = None
        self._exceeded_error: BudgetExceeded | None = None
        self._waiters: list[asyncio.Future[None]] = []

    # -- reading --------------------------------------------------------------------

    def elapsed(self) -> float:
        return self._clock() - self.started

    def time_left(self) -> float | None:
        """Seconds until ``max_time_s``, or None without a time limit."""
        limit = self.budget.max_time_s
        return None if limit is None else limit - self.elapsed()

    def report(self) -> BudgetReport:
        return BudgetReport(
            self.budget, self.calls, self.tokens, round(self.cost, 10), round(self.elapsed(), 3),
            self._reserved_calls, self.exceeded, self.unpriced_calls,
        )

    @property
    def needs_prompt_tokens(self) -> bool:
        """Whether reservations need a token count (only token and cost limits do)."""
        return self.budget.max_tokens is not None or self.budget.max_cost_usd is not None

    @staticmethod
    def requested_cap(options: dict[str, Any]) -> int | None:
        """The reply cap the caller's request options already set, if any."""
        for key in OUTPUT_CAP_KEYS:
            cap = options.get(key)
            if isinstance(cap, int) and cap > 0:
                return cap
        return None

    # -- reserving --------------------------------------------------------------------

    async def reserve(self, model: str, prompt_tokens: int, reply_cap: int | None = None) -> Reservation:
        """Hold budget for one call, waiting for calls in flight if that could make it fit.

        ``reply_cap`` is the cap the request already carries; without one the reply
        allowance is ``Budget.output_tokens_per_call``, lowered to what is left once no
        other call is in flight, and the caller must send ``reservation.reply_tokens``
        as the request's cap. Raises ``BudgetExceeded`` when the call cannot fit, and
        ``ConfigError`` when a dollar limit is set but ``model`` has no price.
        """
        ours = reply_cap is None
        wanted = self.budget.output_tokens_per_call if reply_cap is None else reply_cap
        # Refused only if even the smallest reply we may shrink it to could never fit.
        least = MIN_REPLY_TOKENS if ours else wanted
        while True:
            self._check_fixed(prompt_tokens + least, self._cost(model, prompt_tokens, least))
            reply = wanted
            if ours and self._reserved_calls == 0:
                reply = max(least, min(wanted, self._room_for_reply(model, prompt_tokens)))
            tokens, cost = prompt_tokens + reply, self._cost(model, prompt_tokens, reply)
            if self._fits(tokens, cost):
                break
            await self._wait_for_change()
        self._reserved_calls += 1
        self._reserved_tokens += tokens
        self._reserved_cost += cost
        return Reservation(model, tokens, cost, reply)

    def _cost(self, model: str, prompt_tokens: int, reply_tokens: int) -> float:
        if self.budget.max_cost_usd is None:
            return 0.0
        estimate = self.pricing.estimate(model, prompt_tokens, reply_tokens)
        if estimate is None:
            raise ConfigError(
                f"Budget(max_cost_usd=...) is set but there is no price for model {model!r}; "
                f"pass RLM(endpoint=Endpoint(pricing={{{model!r}: ModelInfo(input_per_mtok=..., "
                "output_per_mtok=...)}}))"
            )
        return estimate

    def _room_for_reply(self, model: str, prompt_tokens: int) -> int:
        """The longest reply that still fits every token and dollar limit after this prompt."""
        b = self.budget
        room = math.inf
        if b.max_tokens is not None:
            room = b.max_tokens - self.tokens - self._reserved_tokens - prompt_tokens
        if b.max_cost_usd is not None:
            per_token = self._cost(model, 0, 1_000_000) / 1_000_000
            if per_token > 0:
                left = b.max_cost_usd - self.cost - self._reserved_cost - self._cost(model, prompt_tokens, 0)
                room = min(room, left / per_token)
        return int(room) if math.isfinite(room) else self.budget.output_tokens_per_call

    def _check_fixed(self, tokens: int, cost: float) -> None:
        """Refuse what cannot fit whatever the calls in flight turn out to use."""
        if self._exceeded_error is not None:
            raise self._refusal(self._exceeded_error.budget)
        b = self.budget
        left = self.time_left()
        if left is not None and left <= 0:
            raise self.exceed("max_time_s")
        if b.max_calls is not None and self.calls + self._reserved_calls + 1 > b.max_calls:
            raise self.exceed("max_calls")
        if b.max_tokens is not None and self.tokens + tokens > b.max_tokens:
            raise self.exceed("max_tokens")
        if b.max_cost_usd is not None and self.cost + cost > b.max_cost_usd + _CENT_FRACTION:
            raise self.exceed("max_cost_usd")

    def _fits(self, tokens: int, cost: float) -> bool:
        b = self.budget
        if b.max_tokens is not None and self.tokens + self._reserved_tokens + tokens > b.max_tokens:
            return False
        return b.max_cost_usd is None or self.cost + self._reserved_cost + cost <= b.max_cost_usd + _CENT_FRACTION

    async def _wait_for_change(self) -> None:
        """Sleep until a call in flight settles. No await sits between the failed check
        and queueing the waiter, so on the one loop thread no wake-up can be missed."""
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        left = self.time_left()
        try:
            await asyncio.wait_for(waiter, None if left is None else max(left, 0.0))
        except asyncio.TimeoutError:
            raise self.exceed("max_time_s") from None

    def _notify(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    # -- settling ---------------------------------------------------------------------

    def settle(self, reservation: Reservation, usage: Usage) -> None:
        """Replace a reservation by what the call used (``usage.cost_usd`` priced already)."""
        self._unreserve(reservation)
        self.calls += 1
        self.tokens += usage.total_tokens
        if usage.cost_usd is None:
            self.unpriced_calls += 1
        else:
            self.cost += usage.cost_usd
        self._notify()

    def release(self, reservation: Reservation) -> None:
        """A call that failed or was cut: it counts as a call and used no tokens."""
        self._unreserve(reservation)
        self.calls += 1
        self._notify()

    def _unreserve(self, reservation: Reservation) -> None:
        self._reserved_calls -= 1
        self._reserved_tokens -= reservation.tokens
        self._reserved_cost -= reservation.cost
        if self._reserved_calls == 0:
            self._reserved_cost = 0.0  # no float residue may block a call with nothing in flight

    # -- stopping ---------------------------------------------------------------------

    def exceed(self, name: str) -> BudgetExceeded:
        """Mark ``name`` as the limit that stopped the run and return the error to raise."""
        if self._exceeded_error is None:
            self.exceeded = name
            self._exceeded_error = self._refusal(name)
            self._notify()
        return self._refusal(name)

    def _refusal(self, name: str) -> BudgetExceeded:
        report = self.report()
        limit = getattr(self.budget, name)
        spent = report.spent[name]
        cost = f", ${report.cost_usd:.4f}" if report.cost_usd or self.budget.max_cost_usd is not None else ""
        return BudgetExceeded(
            f"budget {name}={_fmt(name, limit)} reached: spent {_fmt(name, spent)} "
            f"(in all {report.calls:,} calls, {report.tokens:,} tokens{cost}, {report.seconds:.1f} s). "
            f"No more model calls are made in this run; raise the limit in Budget({name}=...) "
            "to go further.",
            budget=name, spent=spent, limit=limit,
        )


def _fmt(name: str, value: float) -> str:
    if name == "max_cost_usd":
        return f"${value:.4f}"
    if name == "max_time_s":
        return f"{value:.1f} s"
    return f"{int(value):,}" if math.isfinite(value) else str(value)
