"""``KernelREPL``: root code runs in an isolated ipykernel subprocess (the default sandbox).

Same ``REPL`` protocol and the same helpers as ``LocalREPL``; the difference is where
the code runs. The kernel holds no API keys (the host makes every model call over the
bridge), has resource limits and a step timeout, and is replaced, with a plain note to
the root, when it crashes or will not stop. What is isolated depends on whether
bubblewrap is installed: see ``KernelPool.isolation`` and docs/security.md.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from ..errors import SandboxError
from .base import CAPTURE_CHARS, ContextInfo, ExecResult, Host, load_context, tool_names
from .contexts import load_value
from .document_context import checked_info
from .sandbox.config import SandboxConfig
from .sandbox.exchange import Payload, payload
from .sandbox.kernel_process import KernelLost, SandboxKernel
from .sandbox.pool import KernelPool

RESTARTED = ("The sandbox was restarted: every variable was lost; `context` and the helper "
             "functions are loaded again.")


class KernelREPL:
    """Runs root code in a pooled sandbox kernel; state persists across steps of one completion.

    Example::

        repl = KernelREPL(KernelPool())
        await repl.start("some context", host)
        result = await repl.execute("print(len(context))")
        await repl.close()

    The kernel is acquired in the background by ``start`` so its start-up overlaps the
    root model's first reply.
    """

    def __init__(self, pool: KernelPool | None = None, *, step_timeout: float = 600.0,
                 max_capture_chars: int | None = None) -> None:
        self._owns_pool = pool is None
        self.pool = pool if pool is not None else KernelPool(SandboxConfig())
        self.step_timeout = step_timeout
        #: Per REPL, not per kernel: engines that share a pool (``Engine.sibling``) may differ; None
        #: takes the pool's deprecated ``max_capture_chars``, else ``CAPTURE_CHARS``.
        self.max_capture_chars = max_capture_chars or self.pool.config.max_capture_chars or CAPTURE_CHARS
        self._context: Payload | None = None
        self._query = ""
        self._host: Host | None = None
        self._ready: asyncio.Future[SandboxKernel] | None = None
        #: A session's later values, loaded again into a kernel that had to be restarted.
        self._puts: dict[str, Payload] = {}
        #: The kernel's last reply to loading the context (untrusted): for documents, their description.
        self._told: dict[str, Any] = {}

    async def start(self, context: Any, host: Host, query: str = "") -> ContextInfo | None:
        """Checks the context here, so one the kernel cannot take fails before any model call.

        Nothing is copied: the payload writes the context into the kernel's run directory
        when the kernel is ready (or hands it a user's file), and again after a restart.
        Documents are read in the kernel: then this waits for the kernel, and returns what
        it wrote about them (the root's description), checked.
        """
        self._context = await asyncio.to_thread(payload, load_context(context))
        self._host = host
        self._query = query
        self._ready = asyncio.ensure_future(self._prepare())
        if self._context.kind != "bundle":
            return None
        await self.kernel()
        return checked_info(self._told)

    async def _prepare(self) -> SandboxKernel:
        kernel = await self.pool.acquire()
        try:
            await self._fill(kernel)
        except KernelLost:
            # A warm kernel that died while it waited: start another.
            await self.pool.discard(kernel)
            kernel = await self.pool.acquire()
            try:
                await self._fill(kernel)
            except BaseException:
                await self.pool.discard(kernel)
                raise
        except BaseException:
            await self.pool.discard(kernel)
            raise
        return kernel

    async def _fill(self, kernel: SandboxKernel) -> None:
        assert self._context is not None
        self._told = await kernel.load(self._context, self._query,
                                       tool_names(self._host) if self._host is not None else ())
        for name, value_payload in self._puts.items():
            await kernel.put(name, value_payload)

    async def rebind(self, host: Host, query: str) -> None:
        """A session's next question: its host (its own trace and budget) and ``query``."""
        self._host = host
        self._query = query
        await self.put("query", query)

    async def put(self, name: str, value: Any) -> ContextInfo | None:
        """Set a variable in the kernel (a session's added context, ``answers``); for documents, what the kernel
        wrote of them."""
        if not name.isidentifier():
            raise ValueError(f"not a variable name: {name!r}")
        value_payload = await asyncio.to_thread(payload, load_value(value))
        self._puts[name] = value_payload
        kernel = await self.kernel()
        try:
            told = await kernel.put(name, value_payload)
        except KernelLost:
            await self.pool.discard(kernel)
            self._ready = asyncio.ensure_future(self._prepare())
            await self.kernel()
            return None
        return checked_info(told) if value_payload.kind == "bundle" else None

    async def kernel(self) -> SandboxKernel:
        """The kernel of this completion, once it is ready (raises ``SandboxError`` if it cannot start)."""
        if self._ready is None:
            raise RuntimeError("KernelREPL used before start()")
        return await asyncio.shield(self._ready)

    async def execute(self, code: str) -> ExecResult:
        kernel = await self.kernel()
        assert self._host is not None
        started = time.perf_counter()
        try:
            return await kernel.run_step(code, self._host, self.step_timeout, self.max_capture_chars)
        except KernelLost as lost:
            note = f"{lost} {RESTARTED}"
        await self.pool.discard(kernel)
        self._ready = asyncio.ensure_future(self._prepare())
        try:
            await self.kernel()
        except SandboxError as exc:
            note = f"{note} (The restart failed too: {exc})"
        return ExecResult("", "", note, time.perf_counter() - started)

    async def get_variable(self, name: str) -> str:
        kernel = await self.kernel()
        try:
            data = await kernel.call("get", repr(str(name)), self.pool.config.interrupt_grace + 5.0)
        except KernelLost as lost:
            await self.pool.discard(kernel)
            self._ready = asyncio.ensure_future(self._prepare())
            raise KeyError(f"{name!r}: {lost} {RESTARTED}") from None
        if "value" in data and isinstance(data["value"], str):
            return data["value"]
        raise KeyError(f"no variable named {data.get('missing', name)!r} in the REPL")

    async def close(self) -> None:
        ready, self._ready = self._ready, None
        self._context = None
        self._puts.clear()
        if ready is not None:
            if ready.done():
                if not ready.cancelled() and ready.exception() is None:
                    self.pool.release(ready.result())
            else:
                ready.cancel()
                await asyncio.wait([ready], timeout=5.0)
        if self._owns_pool:
            await self.pool.aclose()
