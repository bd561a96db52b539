"""Hedged sub-calls: re-send a batch's stragglers once its slots would otherwise sit idle.

Endpoint latency has a heavy tail, so the last few calls of a batch decide how long it
takes. Once a batch has handed out its last item, a worker with nothing left to do
re-sends the in-flight call that has run longest past a latency percentile learned from
the batch so far (up to ``copies`` times per item: the quickest of three draws beats the
quickest of two); the first reply wins and the other requests are cancelled. A duplicate
can cost money, so hedging is off unless asked for (``Endpoint(hedge=True)``), and capped at
``max_extra`` of the batch's items. The defaults come from ``rlm bench hedge-sim``, a
simulation of the lognormal scenario (docs/performance.md): past the 70th percentile, two
copies, 1.37x on average for 6 % more requests, against 1.27x for 2 % with one copy past
the 90th.
"""

from __future__ import annotations

import asyncio
import bisect
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from ..errors import ConfigError, check_int

Answer = str | Exception


@dataclass(frozen=True, slots=True)
class Hedge:
    """When to re-send a sub-call of a batch.

    ``percentile``: a call is a straggler once it has run longer than this share of the
    batch's finished calls took (only idle workers hedge, so a low one costs requests,
    not slots). ``max_extra``: at most this share of the batch's items is re-sent.
    ``copies``: re-sends of one item at most. ``min_samples``: finished calls needed
    before the percentile is trusted (smaller batches are never hedged).
    """

    percentile: float = 0.7
    max_extra: float = 0.08
    min_samples: int = 20
    copies: int = 2

    def __post_init__(self) -> None:
        if not isinstance(self.percentile, (int, float)) or not 0.5 <= self.percentile < 1:
            raise ConfigError(f"Hedge.percentile must be in [0.5, 1), got {self.percentile!r}")
        if not isinstance(self.max_extra, (int, float)) or not 0 < self.max_extra <= 1:
            raise ConfigError(f"Hedge.max_extra must be in (0, 1] (a share of the batch), got {self.max_extra!r}")
        for name in ("min_samples", "copies"):
            check_int(f"Hedge.{name}", getattr(self, name))


def re_sends_allowed(policy: Hedge, items: int) -> int:
    """Re-sends a batch of ``items`` may make in all: ``max_extra`` of them, one at least."""
    return max(1, math.floor(policy.max_extra * items))


def straggler_threshold(policy: Hedge, finished: list[float]) -> float:
    """The latency past which a call is a straggler, from the finished calls' latencies, sorted."""
    return finished[min(len(finished) - 1, math.ceil(policy.percentile * len(finished)) - 1)]


def as_hedge(value: bool | Hedge | None) -> Hedge | None:
    """``Endpoint(hedge=...)``: True for the defaults, a ``Hedge``, or False/None for off."""
    if value is None or value is False:
        return None
    if value is True:
        return Hedge()
    if isinstance(value, Hedge):
        return value
    raise ConfigError(f"hedge must be True, False or a rlm.Hedge(...), got {value!r}")


class _Race:
    """One item's requests; the first good answer (or the last failure) settles it."""

    __slots__ = ("future", "hedges", "started", "tasks")

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.future: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self.tasks: list[asyncio.Task[Answer]] = []
        self.hedges = 0

    def add(self, task: asyncio.Task[Answer]) -> None:
        self.tasks.append(task)
        task.add_done_callback(self._settle)

    def _settle(self, task: asyncio.Task[Answer]) -> None:
        if self.future.done() or task.cancelled():
            return
        answer = task.result()
        if isinstance(answer, Exception) and any(not t.done() for t in self.tasks):
            return  # another request may still answer
        self.future.set_result(answer)
        for other in self.tasks:
            other.cancel()

    def cancel(self) -> None:
        for task in self.tasks:
            task.cancel()


class Hedger:
    """The hedging state of one batch: its latencies so far and the items in flight."""

    def __init__(self, policy: Hedge, items: int, on_hedge: Callable[[], None]) -> None:
        self.policy = policy
        self.allowed = re_sends_allowed(policy, items)
        self.sent = 0
        self._on_hedge = on_hedge
        self._latencies: list[float] = []
        self._racing: dict[int, _Race] = {}
        self._changed = asyncio.Event()

    async def run(self, index: int, send: Callable[[], Awaitable[Answer]]) -> Answer:
        """Item ``index``'s answer, from its own request or from a hedge of it."""
        race = _Race()
        self._racing[index] = race
        race.add(asyncio.ensure_future(send()))
        try:
            answer = await race.future
        except BaseException:
            race.cancel()
            raise
        finally:
            del self._racing[index]
            self._wake()
        bisect.insort(self._latencies, time.monotonic() - race.started)
        return answer

    async def _hedge_one(self, resend: Callable[[int], Awaitable[Answer]]) -> bool:
        """Re-send the longest-running straggler, if one is past the percentile, and wait for its race."""
        index = self._straggler(time.monotonic())
        if index is None:
            return False
        race = self._racing[index]
        race.hedges += 1
        self.sent += 1
        self._on_hedge()
        task = asyncio.ensure_future(resend(index))
        race.add(task)
        try:
            await asyncio.shield(race.future)
        except asyncio.CancelledError:
            task.cancel()
            raise
        return True

    async def help(self, resend: Callable[[int], Awaitable[Answer]]) -> None:
        """What a worker with no items left does: hedge stragglers until none can appear."""
        while self.sent < self.allowed and any(self._open(r) for r in self._racing.values()):
            if not await self._hedge_one(resend):
                await self._until_change(self._next_due(time.monotonic()))

    def _straggler(self, now: float) -> int | None:
        threshold = self._threshold()
        if threshold is None or self.sent >= self.allowed:
            return None
        late = [(r.started, i) for i, r in self._racing.items() if self._open(r) and now - r.started > threshold]
        return min(late)[1] if late else None

    def _next_due(self, now: float) -> float | None:
        """Seconds until a call in flight that may still be hedged passes the percentile (None: not known yet)."""
        threshold = self._threshold()
        if threshold is None:
            return None
        return min((r.started + threshold - now for r in self._racing.values() if self._open(r)), default=None)

    def _open(self, race: _Race) -> bool:
        """May ``race`` get another copy?"""
        return race.hedges < self.policy.copies

    def _threshold(self) -> float | None:
        if len(self._latencies) < self.policy.min_samples:
            return None
        return straggler_threshold(self.policy, self._latencies)

    def _wake(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def _until_change(self, wait: float | None) -> None:
        changed = self._changed
        try:
            await asyncio.wait_for(changed.wait(), None if wait is None else max(wait, 0.001))
        except asyncio.TimeoutError:
            pass
