"""The server's own admission limit: so many runs at once, so many waiting, 429 for the rest.

Why a queue and not only a limit: a short burst should wait its turn rather than fail,
but an unbounded queue turns overload into timeouts for everyone. Waiters are served
first come, first served; one that waits past ``timeout_s``, or whose client leaves,
gives its place up. ``Retry-After`` on a 429 is the time a queue's worth of runs has
recently taken.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from .errors import RequestError

#: Weight of the latest run in the running mean of run times.
_SMOOTHING = 0.2


class Admission:
    """At most ``max_runs`` runs hold a slot; ``max_queue`` more wait; beyond that ``RequestError(429)``.

    Use from one event loop (the server's)::

        async with admission.slot():
            ...  # the run
    """

    def __init__(self, max_runs: int, max_queue: int, timeout_s: float) -> None:
        self.max_runs = max_runs
        self.max_queue = max_queue
        self.timeout_s = timeout_s
        self.running = 0
        self.rejected = 0
        self.admitted = 0
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._mean_s = 10.0

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    def _retry_after(self) -> float:
        return min(60.0, max(1.0, self._mean_s * (self.waiting + 1) / self.max_runs))

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one run slot for the body; raises 429 when the queue is full or the wait too long."""
        await self._acquire()
        started = time.monotonic()
        try:
            yield
        finally:
            self._mean_s += _SMOOTHING * (time.monotonic() - started - self._mean_s)
            self._release()

    async def _acquire(self) -> None:
        if self.running < self.max_runs and not self._waiters:
            self.running += 1
            self.admitted += 1
            return
        if len(self._waiters) >= self.max_queue:
            self.rejected += 1
            raise RequestError(429, f"this server is running {self.running} requests and {self.waiting} are "
                                    "waiting, its limit; retry later", code="server_busy",
                               retry_after=self._retry_after())
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await asyncio.wait_for(asyncio.shield(waiter), self.timeout_s)
        except BaseException as exc:
            if waiter.done() and not waiter.cancelled():
                self._release()  # the slot was handed over as we gave up: pass it on
            else:
                waiter.cancel()
                self._waiters.remove(waiter)
            if isinstance(exc, asyncio.TimeoutError):
                self.rejected += 1
                raise RequestError(429, f"this request waited {self.timeout_s:g} s for a free run slot; retry later",
                                   code="server_busy", retry_after=self._retry_after()) from None
            raise
        self.admitted += 1

    def _release(self) -> None:
        """Hand the slot to the next live waiter, or free it."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self.running -= 1
