"""Stopping a running completion from another thread (the widget's Stop button).

Why not just cancel the future: a plain cancellation means "abandon", and the caller
gets nothing. A stop means "end here and keep what was done", so the run needs to
know it was asked to stop, in order to hand back the partial result and trace.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any


class RunControl:
    """A handle on one running completion. ``stop()`` is safe from any thread.

    The run calls ``bind()`` from inside its task; a stop that arrives before that is
    applied as soon as the run binds.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._task: asyncio.Task[object] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.stop_requested = False
        #: The run's result so far, once it was cancelled (Stop, Ctrl-C, a cancelled task).
        self.partial: Any = None

    def bind(self) -> None:
        """Attach to the current task; call from inside the run's coroutine."""
        with self._lock:
            self._task = asyncio.current_task()
            self._loop = asyncio.get_running_loop()
            pending = self.stop_requested
        if pending:
            self._cancel()

    def stop(self) -> bool:
        """Ask the run to stop; returns False if it was already asked."""
        with self._lock:
            if self.stop_requested:
                return False
            self.stop_requested = True
        self._cancel()
        return True

    def _cancel(self) -> None:
        with self._lock:
            task, loop = self._task, self._loop
        if task is not None and loop is not None and not task.done():
            loop.call_soon_threadsafe(task.cancel)
