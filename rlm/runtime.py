"""One private event loop on a daemon thread; the sync API submits coroutines to it.

Why a thread and not ``asyncio.run`` or nest-asyncio: a Jupyter kernel already runs a
loop on the main thread, so ``asyncio.run`` fails there; nest-asyncio breaks under uvloop
and leaves sub-calls running after an interrupt (measured, see docs/architecture.md).
A loop of our own works the same in a script, a notebook cell and inside a coroutine,
and it outlives every call, so pooled HTTP connections stay valid between completions.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

#: How long an interrupted call waits for its cancelled work to unwind.
CANCEL_GRACE_S = 1.0
#: How often a blocked caller wakes to let Ctrl-C through.
POLL_S = 0.1

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_thread: threading.Thread | None = None


def get_loop() -> asyncio.AbstractEventLoop:
    """The runtime loop, started on first use."""
    global _loop, _thread
    with _lock:
        if _loop is None or _thread is None or not _thread.is_alive():
            loop = asyncio.new_event_loop()
            ready = threading.Event()

            def _run() -> None:
                asyncio.set_event_loop(loop)
                loop.call_soon(ready.set)
                loop.run_forever()

            _thread = threading.Thread(target=_run, name="rlm-runtime", daemon=True)
            _thread.start()
            ready.wait()
            _loop = loop
        return _loop


def on_runtime_thread() -> bool:
    """True when called from the runtime loop's own thread."""
    return _thread is not None and threading.current_thread() is _thread


def call_soon(fn: Callable[[], object]) -> None:
    """Run ``fn`` on the runtime loop, from any thread (finalizers too); here if no loop runs."""
    loop = _loop
    if loop is None or loop.is_closed() or not loop.is_running() or on_runtime_thread():
        fn()
        return
    try:
        loop.call_soon_threadsafe(fn)
    except RuntimeError:  # closed between the check and the call
        fn()


def submit(coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
    """Schedule ``coro`` on the runtime loop from any thread."""
    return asyncio.run_coroutine_threadsafe(coro, get_loop())


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on the runtime loop and block until it finishes.

    On KeyboardInterrupt the coroutine is cancelled and we wait up to
    ``CANCEL_GRACE_S`` for it to unwind (in-flight sub-calls are cancelled with it)
    before re-raising, so the caller's objects are left in a usable state.
    """
    if on_runtime_thread():
        coro.close()
        raise RuntimeError(
            "rlm's blocking API was called on its own event-loop thread, where it would "
            "deadlock; use the async API (await rlm.acompletion(...)) there instead"
        )
    finished = threading.Event()

    async def _tracked() -> T:
        try:
            return await coro
        finally:
            finished.set()

    future = submit(_tracked())
    try:
        while True:
            # Poll rather than block: a signal that lands on another thread only
            # reaches the main thread's handler when it runs bytecode again.
            try:
                return future.result(timeout=POLL_S)
            except concurrent.futures.TimeoutError:
                continue
    except KeyboardInterrupt:
        future.cancel()
        finished.wait(CANCEL_GRACE_S)
        raise

# Stopping a running completion from another thread (the widget's Stop button). Why not just
# cancel the future: a plain cancellation means "abandon", and the caller gets nothing. A stop
# means "end here and keep what was done", so the run needs to know it was asked to stop, in
# order to hand back the partial result and trace.


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
