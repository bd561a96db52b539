"""How ``ScriptedLM`` spends time: sleeps that shutdown cuts short, and the pace of streamed replies.

Why a module of its own: tests of streaming need to see text arrive before a reply
ends, deterministically. ``hold_streams()`` keeps every stream's last chunk back until
the test has seen what it waits for; ``stream_delay`` spaces chunks out for demos.
"""

from __future__ import annotations

import asyncio
import threading

from ..errors import check_int

#: How often a held stream looks whether it may go on.
_HOLD_POLL_S = 0.005


def _wake(future: asyncio.Future[bool], value: bool) -> None:
    """Resolve a sleeper once, whichever of timer and shutdown comes first."""
    if not future.done():
        future.set_result(value)


class Pacing:
    """Sleeps and stream pacing for ``ScriptedLM``; the server sets ``_closing`` when it stops."""

    #: Characters of reply text per streamed chunk.
    stream_chars: int
    #: Seconds between streamed chunks.
    stream_delay: float

    def _init_pacing(self, stream_chars: int, stream_delay: float) -> None:
        check_int("stream_chars", stream_chars)
        self.stream_chars = stream_chars
        self.stream_delay = stream_delay
        self._hold: threading.Event | None = None
        self._sleepers: set[asyncio.Future[bool]] = set()
        self._closing = False

    def hold_streams(self) -> threading.Event:
        """Hold each streamed reply before its last chunk until the returned event is set.

        Example::

            gate = lm.hold_streams()
            ...  # start a call, wait (with a deadline) until its first text arrived
            gate.set()  # now the replies end
        """
        self._hold = threading.Event()
        return self._hold

    def _wake_sleepers(self) -> None:
        """Release every sleeper (shutdown), so cleanup does not wait out a hang or a hold."""
        self._closing = True
        for future in list(self._sleepers):
            _wake(future, False)

    async def _sleep(self, seconds: float) -> bool:
        """Sleep without blocking other requests; False if the server stopped meanwhile."""
        if self._closing:
            return False
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bool] = loop.create_future()
        handle = loop.call_later(seconds, _wake, future, True)
        self._sleepers.add(future)
        try:
            return await future
        finally:
            handle.cancel()
            self._sleepers.discard(future)

    async def _pace(self, index: int, total: int) -> bool:
        """Wait before chunk ``index`` of ``total`` as configured; False if the server is stopping."""
        if index and self.stream_delay > 0 and not await self._sleep(self.stream_delay):
            return False
        hold = self._hold
        if index == total - 1 and hold is not None:
            while not hold.is_set():
                if not await self._sleep(_HOLD_POLL_S):
                    return False
        return True
