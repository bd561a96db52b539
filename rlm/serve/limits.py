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
import concurrent.futures
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

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
        self._patient: set[asyncio.Future[None]] = set()
        self._mean_s = 10.0

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    def _retry_after(self) -> float:
        return min(60.0, max(1.0, self._mean_s * (self.waiting + 1) / self.max_runs))

    @asynccontextmanager
    async def slot(self, patient: bool = False) -> AsyncIterator[None]:
        """Hold one run slot for the body; raises 429 when the queue is full or the wait too long.

        ``patient``: wait as long as it takes, outside the queue's limit (a map's items: the
        map has at most ``max_runs`` of them waiting, and refusing one would fail it).
        """
        await self._acquire(patient)
        started = time.monotonic()
        try:
            yield
        finally:
            self._mean_s += _SMOOTHING * (time.monotonic() - started - self._mean_s)
            self._release()

    async def _acquire(self, patient: bool) -> None:
        if self.running < self.max_runs and not self._waiters:
            self.running += 1
            self.admitted += 1
            return
        if not patient and len(self._waiters) - len(self._patient) >= self.max_queue:
            self.rejected += 1
            raise RequestError(429, f"this server is running {self.running} requests and {self.waiting} are "
                                    "waiting, its limit; retry later", code="server_busy",
                               retry_after=self._retry_after())
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        if patient:
            self._patient.add(waiter)
        try:
            await asyncio.wait_for(asyncio.shield(waiter), None if patient else self.timeout_s)
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
        finally:
            self._patient.discard(waiter)
        self.admitted += 1

    def _release(self) -> None:
        """Hand the slot to the next live waiter, or free it."""
        while self._waiters:
            waiter = self._waiters.popleft()
            self._patient.discard(waiter)
            if not waiter.done():
                waiter.set_result(None)
                return
        self.running -= 1


def slot_across(admission: Admission,
                loop: asyncio.AbstractEventLoop) -> Callable[[], AbstractAsyncContextManager[None]]:
    """A patient run slot of ``admission`` (which lives on ``loop``) for code running on another loop (rlm's).

    The slot is taken and given back by one task on ``loop``, which holds it until it is
    cancelled: however the caller leaves (done, failed, cancelled while waiting), cancelling
    that task gives the slot back or gives up the place in the queue, never both, never neither.
    """

    @asynccontextmanager
    async def slot() -> AsyncIterator[None]:
        entered: concurrent.futures.Future[None] = concurrent.futures.Future()

        async def hold() -> None:
            async with admission.slot(patient=True):
                with contextlib.suppress(concurrent.futures.InvalidStateError):  # the caller gave up meanwhile
                    entered.set_result(None)
                await asyncio.Event().wait()  # until cancelled: that is the release

        def ended(holder: concurrent.futures.Future[None]) -> None:
            if not entered.done():
                with contextlib.suppress(concurrent.futures.InvalidStateError):
                    entered.set_exception(RuntimeError("the server stopped before a run slot was free"))

        holding = asyncio.run_coroutine_threadsafe(hold(), loop)
        holding.add_done_callback(ended)
        try:
            await asyncio.wrap_future(entered)
            yield
        finally:
            holding.cancel()

    return slot
