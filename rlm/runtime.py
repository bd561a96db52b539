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
