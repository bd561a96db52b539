"""Fresh sandbox kernels for an ``RLM``: each completion gets one no earlier completion ran code in.

A pool keeps ``SandboxConfig.warm_kernels`` kernels started and unused, so a
completion rarely waits for a start-up; when a completion ends its kernel is killed,
never reset and lent again (nothing a kernel says about its own state is trusted).
Closing the pool, garbage-collecting it, or interpreter exit kills every kernel.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import weakref
from typing import TYPE_CHECKING, Any

from ... import runtime
from ...errors import SandboxError
from .config import Isolation, SandboxConfig
from .isolation import resolve
from .kernel_process import SandboxKernel
from .rundir import remove_stale

if TYPE_CHECKING:
    import zmq.asyncio

log = logging.getLogger("rlm")

#: Largest message the host accepts from a kernel over zmq (step output is capped far below).
MAX_MESSAGE_MB = 64
_warned: set[str] = set()


#: The longest any send to a kernel may wait (a live kernel's sockets queue without waiting).
SEND_TIMEOUT_MS = 5_000
_ctx: zmq.asyncio.Context | None = None
_ctx_lock = threading.Lock()


def zmq_context() -> zmq.asyncio.Context:
    """One zmq context for every sandbox socket of the process, never terminated.

    Why never: ``term()`` blocks until every socket is closed, and a pool collected
    together with its sockets would hang the thread that runs the garbage collector.
    Sockets are closed when kernels are discarded, or by their own finalizers.
    """
    global _ctx
    import zmq
    import zmq.asyncio

    with _ctx_lock:
        if _ctx is None:
            ctx = zmq.asyncio.Context()
            # A kernel runs hostile code: cap what one message from it may make us allocate.
            ctx.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE_MB * 2**20)
            ctx.setsockopt(zmq.LINGER, 0)
            # Never reconnect: the host connects once, before any model code runs, to the
            # sockets ipykernel bound; a socket root code replaces later is never followed.
            ctx.setsockopt(zmq.RECONNECT_IVL, -1)
            # So a socket whose kernel died is mute, and a send on it would wait for good, on rlm's
            # loop: no send may wait longer than this (zmq.Again instead).
            ctx.setsockopt(zmq.SNDTIMEO, SEND_TIMEOUT_MS)
            _ctx = ctx
        return _ctx


def _kill_all(kernels: set[SandboxKernel]) -> None:
    """Finalizer: must not reference the pool, and must work from any thread, at exit too."""
    for kernel in list(kernels):
        kernel.kill()
        runtime.call_soon(kernel.abandon)
    kernels.clear()


class KernelPool:
    """Starts, lends and kills sandbox kernels of one configuration; keeps a few warm.

    Example::

        pool = KernelPool(SandboxConfig(memory_mb=2048))
        kernel = await pool.acquire()
        ...
        pool.release(kernel)          # killed: the next acquire gets a fresh one
        await pool.aclose()
    """

    def __init__(self, config: SandboxConfig | None = None) -> None:
        self.config = config or SandboxConfig()
        self.started = 0
        self.warm_hits = 0
        #: Every request the kernels' bridges refused (wrong token, malformed, oversized), oldest first.
        self.refused: list[str] = []
        self._isolation: Isolation | None = None
        self._kernels: set[SandboxKernel] = set()
        self._warm: list[SandboxKernel] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._warmups: set[asyncio.Task[None]] = set()
        self._closed = False
        self._finalizer = weakref.finalize(self, _kill_all, self._kernels)

    @property
    def isolation(self) -> Isolation:
        """How kernels run here (resolved once; probes bubblewrap; raises ``SandboxError`` to fail closed)."""
        if self._isolation is None:
            self._isolation = resolve(self.config)
            level = logging.WARNING if self._isolation.mode == "none" else logging.INFO
            text = self._isolation.describe()
            if text not in _warned:
                _warned.add(text)
                hint = " Model code runs with your rights (see docs/security.md)." if level == logging.WARNING else ""
                log.log(level, "rlm kernel sandbox: %s.%s", text, hint)
        return self._isolation

    @property
    def kernels(self) -> list[SandboxKernel]:
        """Every live kernel of this pool, lent out or warm."""
        return list(self._kernels)

    async def acquire(self) -> SandboxKernel:
        """A kernel no completion has run code in: a warm one, one about to be, or a new one."""
        while not self._closed:
            if self._warm:
                self.warm_hits += 1
                kernel = self._warm.pop()
                break
            if not self._warmups:
                kernel = await self._start()
                break
            # Waiting for a warm-up already under way costs less than a second start-up.
            await asyncio.wait(list(self._warmups), return_when=asyncio.FIRST_COMPLETED)
        else:
            raise SandboxError("the kernel pool is closed; create a new RLM")
        self._refill()
        return kernel

    async def _start(self) -> SandboxKernel:
        if self._closed:
            raise SandboxError("the kernel pool is closed; create a new RLM")
        if not self.started:
            await asyncio.to_thread(remove_stale)
        isolation = await asyncio.to_thread(lambda: self.isolation)
        kernel = SandboxKernel(self.config, isolation, zmq_context(), refused=self.refused)
        self._kernels.add(kernel)
        try:
            await kernel.start()
        except BaseException:
            self._kernels.discard(kernel)
            raise
        self.started += 1
        return kernel

    def _refill(self) -> None:
        """Start kernels in the background until ``warm_kernels`` are ready or starting."""
        for _ in range(self.config.warm_kernels - len(self._warm) - len(self._warmups)):
            task = asyncio.ensure_future(self._warm_up())
            self._warmups.add(task)
            task.add_done_callback(self._warmups.discard)

    async def _warm_up(self) -> None:
        try:
            kernel = await self._start()
        except (SandboxError, OSError) as exc:
            if not self._closed and self._finalizer.alive:  # not when the pool is going away
                log.warning("rlm: a warm sandbox kernel failed to start: %s", exc)
            return
        if self._closed:
            await self.discard(kernel)
        else:
            self._warm.append(kernel)

    def _track(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def release(self, kernel: SandboxKernel) -> None:
        """A completion is done with ``kernel``: it is killed in the background, never lent again."""
        self._kernels.discard(kernel)
        kernel.kill_processes()
        self._track(kernel.aclose())

    async def discard(self, kernel: SandboxKernel) -> None:
        self._kernels.discard(kernel)
        await kernel.aclose()

    async def aclose(self) -> None:
        """Kill every kernel (warm or lent out) and release their sockets."""
        self._closed = True
        for task in list(self._warmups):
            task.cancel()
        self._warm.clear()
        for kernel in list(self._kernels):
            await self.discard(kernel)
        pending = [*self._tasks, *self._warmups]
        if pending:
            await asyncio.wait(pending, timeout=5.0)
        self._finalizer()

    def close(self) -> None:
        """Blocking ``aclose`` for any thread (on the runtime thread it only kills)."""
        if runtime.on_runtime_thread():
            self._closed = True
            self._finalizer()
            return
        runtime.run(self.aclose())

    def __repr__(self) -> str:
        return f"KernelPool(kernels={len(self._kernels)}, warm={len(self._warm)}, started={self.started})"

    def stats(self) -> dict[str, Any]:
        return {"started": self.started, "warm_hits": self.warm_hits, "live": len(self._kernels),
                "warm": len(self._warm)}
