"""A pool of sandbox kernels per ``RLM``: reuse saves the start-up of a kernel per completion.

A released kernel is reset (variables, files and stray processes gone) in the
background and kept if the reset worked; one that misbehaved is killed instead.
Closing the pool, garbage-collecting it, or interpreter exit kills every kernel.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import weakref
from typing import Any

import zmq
import zmq.asyncio

from .. import runtime
from ..errors import SandboxError
from .sandbox_env import Isolation, SandboxConfig, resolve
from .sandbox_kernel import SandboxKernel, remove_stale_rundirs

log = logging.getLogger("rlm")

#: A kernel serves at most this many completions before a fresh one replaces it.
MAX_USES = 50
#: Largest message the host accepts from a kernel over zmq (step output is capped far below).
MAX_MESSAGE_MB = 64
_warned: set[str] = set()


_ctx: zmq.asyncio.Context | None = None
_ctx_lock = threading.Lock()


def _context() -> zmq.asyncio.Context:
    """One zmq context for every sandbox socket of the process, never terminated.

    Why never: ``term()`` blocks until every socket is closed, and a pool collected
    together with its sockets would hang the thread that runs the garbage collector.
    Sockets are closed when kernels are discarded, or by their own finalizers.
    """
    global _ctx
    with _ctx_lock:
        if _ctx is None:
            ctx = zmq.asyncio.Context()
            # A kernel runs hostile code: cap what one message from it may make us allocate.
            ctx.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE_MB * 2**20)
            ctx.setsockopt(zmq.LINGER, 0)
            _ctx = ctx
        return _ctx


def _kill_all(kernels: set[SandboxKernel]) -> None:
    """Finalizer: must not reference the pool, and must work from any thread, at exit too."""
    for kernel in list(kernels):
        kernel.kill()
    kernels.clear()


class KernelPool:
    """Starts, lends, resets and kills sandbox kernels of one configuration.

    Example::

        pool = KernelPool(SandboxConfig(memory_mb=2048))
        kernel = await pool.acquire()
        ...
        pool.release(kernel)
        await pool.aclose()
    """

    def __init__(self, config: SandboxConfig | None = None) -> None:
        self.config = config or SandboxConfig()
        self.started = 0
        self.reused = 0
        self._isolation: Isolation | None = None
        self._kernels: set[SandboxKernel] = set()
        self._idle: list[SandboxKernel] = []
        self._resets: set[asyncio.Task[None]] = set()
        self._closed = False
        self._finalizer = weakref.finalize(self, _kill_all, self._kernels)

    @property
    def isolation(self) -> Isolation:
        """How kernels run here (resolved once; probes bubblewrap)."""
        if self._isolation is None:
            self._isolation = resolve(self.config)
            level = logging.WARNING if self._isolation.mode == "none" else logging.INFO
            text = self._isolation.describe()
            if text not in _warned:
                _warned.add(text)
                hint = " Install bubblewrap for full isolation (see docs/security.md)." if level == logging.WARNING else ""
                log.log(level, "rlm kernel sandbox: %s.%s", text, hint)
        return self._isolation

    @property
    def kernels(self) -> list[SandboxKernel]:
        """Every live kernel of this pool, lent out or idle."""
        return list(self._kernels)

    async def acquire(self, *, fresh: bool = False) -> SandboxKernel:
        """An idle reset kernel, one whose reset is about to finish, or (``fresh``) a new one."""
        while not fresh and not self._closed:
            if self._idle:
                self.reused += 1
                kernel = self._idle.pop()
                kernel.uses += 1
                return kernel
            if not self._resets:
                break
            await asyncio.wait(list(self._resets), return_when=asyncio.FIRST_COMPLETED)
            if not self._idle:
                break
        if self._closed:
            raise SandboxError("the kernel pool is closed; create a new RLM")
        if not self.started:
            await asyncio.to_thread(remove_stale_rundirs)
        isolation = await asyncio.to_thread(lambda: self.isolation)
        kernel = SandboxKernel(self.config, isolation, _context())
        self._kernels.add(kernel)
        try:
            await kernel.start()
        except BaseException:
            self._kernels.discard(kernel)
            raise
        self.started += 1
        kernel.uses = 1
        return kernel

    def release(self, kernel: SandboxKernel) -> None:
        """Give a kernel back; it is reset in the background, or killed if that fails."""
        task = asyncio.ensure_future(self._recycle(kernel))
        self._resets.add(task)
        task.add_done_callback(self._resets.discard)

    async def _recycle(self, kernel: SandboxKernel) -> None:
        keep = (not self._closed and kernel.uses < MAX_USES
                and len(self._idle) < self.config.max_idle_kernels and await kernel.reset())
        if keep and not self._closed:
            self._idle.append(kernel)
        else:
            await self.discard(kernel)

    async def discard(self, kernel: SandboxKernel) -> None:
        self._kernels.discard(kernel)
        await kernel.aclose()

    async def aclose(self) -> None:
        """Kill every kernel (idle or lent out) and release the zmq context."""
        self._closed = True
        for task in list(self._resets):
            task.cancel()
        self._idle.clear()
        for kernel in list(self._kernels):
            await self.discard(kernel)
        self._finalizer()

    def close(self) -> None:
        """Blocking ``aclose`` for any thread (on the runtime thread it only kills)."""
        if runtime.on_runtime_thread():
            self._closed = True
            self._finalizer()
            return
        runtime.run(self.aclose())

    def __repr__(self) -> str:
        return f"KernelPool(kernels={len(self._kernels)}, idle={len(self._idle)}, started={self.started})"

    def stats(self) -> dict[str, Any]:
        return {"started": self.started, "reused": self.reused, "live": len(self._kernels), "idle": len(self._idle)}
