"""One adaptive limiter per RLM: concurrency with AIMD on 429s, optional RPM/TPM caps.

Every model call of an RLM (root calls, ``llm_query``, every ``llm_batch`` item and
every recursive child's calls) takes a slot here for the HTTP request only. Nothing
waits on other calls while holding a slot, so batches nested inside batches can
never deadlock it, and however calls nest, at most ``limit`` are in flight.

Why AIMD and why gentle: over-shooting an endpoint's capacity costs only a cheap
429 and a retry while the admitted calls keep the endpoint busy, but under-shooting
leaves capacity idle. So a 429 cuts the limit by ``decrease`` (default 0.9, not
TCP's 0.5) at most once per round trip (only a call started after the last cut can
cut again), and each success adds ``1/limit``: about one slot per round trip back up.
Measured against a server admitting 16 (docs/performance.md), 0.5 kept 78 % of the
admitted throughput, 0.75 88 % and 0.9 93 %, with no item lost in any.

An exhausted quota (``x-ratelimit-remaining-* == 0``) pauses every new call until it
resets, but never longer than ``max_pause`` (RLM passes its retry policy's
``max_server_delay``): a daily quota resetting in hours is not waited out, the calls
go on and fail with their 429s, just as the retry policy gives up on such a hint.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import math
import time
from dataclasses import dataclass
from types import TracebackType

from ..errors import ConfigError, LMRateLimited, LMResponseError, check_int, check_positive
from .retry import quota_reset

log = logging.getLogger("rlm")


@dataclass
class _Waiter:
    future: asyncio.Future[None]
    tokens: float


class _Bucket:
    """A token bucket that may go into debt, so one request larger than the burst still runs."""

    def __init__(self, per_minute: float) -> None:
        self.rate = per_minute / 60.0
        self.capacity = max(1.0, self.rate)  # one second's worth of burst
        self.level = self.capacity
        self._at = time.monotonic()

    def refill(self, now: float) -> None:
        self.level = min(self.capacity, self.level + (now - self._at) * self.rate)
        self._at = now

    def wait_for(self, amount: float) -> float:
        """Seconds until ``amount`` (capped at the burst) is available; 0 if it is now."""
        need = min(amount, self.capacity) - self.level
        return 0.0 if need <= 1e-9 else need / self.rate


class Slot:
    """One request's hold on the limiter: ``async with limiter.slot(tokens) as slot``.

    Leaving the block releases the slot and tells the limiter how the call went: a
    ``LMRateLimited`` cuts the limit, a success lets it grow back.
    """

    __slots__ = ("_held", "_limiter", "started", "tokens")

    def __init__(self, limiter: AdaptiveLimiter, tokens: float) -> None:
        self._limiter = limiter
        self.started = 0.0
        self.tokens = tokens
        self._held = False

    def used(self, tokens: float) -> None:
        """Charge the real token count against the TPM cap (the estimate was charged up front)."""
        self._limiter._charge_tokens(tokens - self.tokens)
        self.tokens = tokens

    async def __aenter__(self) -> Slot:
        await self._limiter._acquire(self.tokens)
        self.started = time.monotonic()
        self._held = True
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._held:
            self._held = False
            self._limiter._release(self, exc)


class AdaptiveLimiter:
    """Caps concurrent requests (adapting to 429s) and, optionally, requests and tokens per minute.

    Example::

        limiter = AdaptiveLimiter(64, rpm=3000)
        async with limiter.slot(tokens=1200) as slot:
            completion = await client.complete(messages, model="gpt-5-mini")
            slot.used(completion.usage.total_tokens)

    Waiters are served first come, first served. All use must be on one event loop
    (rlm's runtime loop); the loop is bound on first use. A quota pause longer than
    ``max_pause`` seconds is not taken at all (``math.inf``: no cap).
    """

    def __init__(
        self,
        max_concurrent: int,
        *,
        min_concurrent: int = 1,
        adaptive: bool = True,
        decrease: float = 0.9,
        rpm: float | None = None,
        tpm: float | None = None,
        max_pause: float = 120.0,
    ) -> None:
        check_int("max_concurrent", max_concurrent)
        if not 1 <= min_concurrent <= max_concurrent:
            raise ConfigError(f"min_concurrent must be between 1 and max_concurrent, got {min_concurrent!r}")
        if not 0.0 < decrease < 1.0:
            raise ConfigError(f"decrease must be between 0 and 1, got {decrease!r}")
        for name, value in (("rpm", rpm), ("tpm", tpm)):
            if value is not None:
                check_positive(name, value)
        if not max_pause >= 0:
            raise ConfigError(f"max_pause must be >= 0, got {max_pause!r}")
        self.max_concurrent = max_concurrent
        self.min_concurrent = min_concurrent
        self.adaptive = adaptive
        self.decrease = decrease
        self.max_pause = max_pause
        self._limit = float(max_concurrent)
        self._in_flight = 0
        self._waiters: collections.deque[_Waiter] = collections.deque()
        self._requests = _Bucket(rpm) if rpm else None
        self._tokens = _Bucket(tpm) if tpm else None
        self._paused_until = 0.0
        self._last_cut = -math.inf
        self._timer: asyncio.TimerHandle | None = None
        self.stats = {"granted": 0, "rate_limited": 0, "cuts": 0, "peak_in_flight": 0, "lowest_limit": max_concurrent,
                      "pauses_refused": 0}

    @property
    def limit(self) -> int:
        """How many requests may be in flight right now."""
        return max(self.min_concurrent, int(self._limit))

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @property
    def waiting(self) -> int:
        return sum(1 for w in self._waiters if not w.future.done())

    @property
    def paused_for(self) -> float:
        """Seconds until new requests may start after an exhausted quota (0 when not paused)."""
        return max(0.0, self._paused_until - time.monotonic())

    def slot(self, tokens: float = 0.0) -> Slot:
        """A slot to hold for one request; ``tokens`` is its estimated size for the TPM cap."""
        return Slot(self, tokens)

    def pause(self, seconds: float) -> bool:
        """Start nothing new for ``seconds`` (an exhausted quota that resets then); False if over ``max_pause``.

        A longer wait would stall the whole run on one header (a daily quota says "2h"),
        so it is refused: calls keep failing fast with their own errors instead.
        """
        if seconds > self.max_pause:
            self.stats["pauses_refused"] += 1
            level = logging.WARNING if self.stats["pauses_refused"] == 1 else logging.DEBUG  # once, not per call
            log.log(
                level, "rate-limit quota resets in %.0f s, over max_pause=%g s: not pausing", seconds, self.max_pause
            )
            return False
        until = time.monotonic() + max(0.0, seconds)
        if until > self._paused_until:
            self._paused_until = until
            log.info("rate-limit quota exhausted: pausing new requests for %.2f s", seconds)
        return True

    # -- internals; everything below runs on the limiter's one loop -----------------------

    async def _acquire(self, tokens: float) -> None:
        if not self._waiters and self._try_take(tokens, time.monotonic()):
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiter = _Waiter(future, tokens)
        self._waiters.append(waiter)
        self._wake()
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                # Granted and cancelled in the same tick: hand the slot on.
                self._in_flight -= 1
            self._discard(waiter)
            self._wake()
            raise

    def _discard(self, waiter: _Waiter) -> None:
        try:
            self._waiters.remove(waiter)
        except ValueError:
            pass

    def _delay(self, tokens: float, now: float) -> float:
        """Seconds until a request of ``tokens`` may start, ignoring concurrency."""
        delay = self._paused_until - now
        if self._requests is not None:
            self._requests.refill(now)
            delay = max(delay, self._requests.wait_for(1.0))
        if self._tokens is not None and tokens > 0:
            self._tokens.refill(now)
            delay = max(delay, self._tokens.wait_for(tokens))
        return max(0.0, delay)

    def _try_take(self, tokens: float, now: float) -> bool:
        if self._in_flight >= self.limit or self._delay(tokens, now) > 0:
            return False
        if self._requests is not None:
            self._requests.level -= 1.0
        if self._tokens is not None:
            self._tokens.level -= tokens
        self._in_flight += 1
        self.stats["granted"] += 1
        self.stats["peak_in_flight"] = max(self.stats["peak_in_flight"], self._in_flight)
        return True

    def _wake(self) -> None:
        """Grant slots to waiters in order; if time (not concurrency) blocks the head, set a timer."""
        now = time.monotonic()
        while self._waiters:
            head = self._waiters[0]
            if head.future.done():
                self._waiters.popleft()
                continue
            if not self._try_take(head.tokens, now):
                if self._in_flight < self.limit:
                    self._arm(self._delay(head.tokens, now))
                return
            self._waiters.popleft()
            head.future.set_result(None)

    def _arm(self, delay: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = asyncio.get_running_loop().call_later(delay, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._wake()

    def _charge_tokens(self, amount: float) -> None:
        if self._tokens is not None:
            self._tokens.level -= amount

    def _release(self, slot: Slot, error: BaseException | None) -> None:
        self._in_flight -= 1
        if isinstance(error, LMResponseError):
            reset = quota_reset(error.headers)
            if reset is not None:
                self.pause(reset)  # before waking anyone: the quota is spent for every call
        if isinstance(error, LMRateLimited):
            self._on_rate_limited(slot)
        elif error is None and self.adaptive and self._limit < self.max_concurrent:
            self._limit = min(float(self.max_concurrent), self._limit + 1.0 / self._limit)
        self._wake()

    def _on_rate_limited(self, slot: Slot) -> None:
        self.stats["rate_limited"] += 1
        if not self.adaptive or slot.started < self._last_cut:
            return  # this call was sent before the last cut took effect: already accounted for
        self._last_cut = time.monotonic()
        self._limit = max(float(self.min_concurrent), self._limit * self.decrease)
        self.stats["cuts"] += 1
        self.stats["lowest_limit"] = min(self.stats["lowest_limit"], self.limit)
        log.debug("429: concurrency limit cut to %d", self.limit)

    def __repr__(self) -> str:
        return f"AdaptiveLimiter(limit={self.limit}/{self.max_concurrent}, in_flight={self._in_flight})"
