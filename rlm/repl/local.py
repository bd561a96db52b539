"""In-process REPL: fast, and NOT a security sandbox.

Root code runs with full builtins in this Python process, so it can read your files,
your environment (including API keys) and the network. Use it for trusted models and
quick experiments; ``RLM(sandbox="kernel")`` runs root code in an isolated subprocess.
"""

from __future__ import annotations

import asyncio
import builtins
import concurrent.futures
import ctypes
import itertools
import sys
import threading
import time
import types
from collections.abc import Coroutine
from typing import Any, TypeVar

# Stdlib-only pieces shared with the code that runs inside the sandbox kernel.
from . import checks, plain, steps
from .base import CAPTURE_CHARS, ContextInfo, ExecResult, Host, load_context, tool_names
from .contexts import load_value, value_of
from .document_context import DocumentContext, read_here
from .documents.load import page_image_helper
from .helpers import PURE_HELPERS

T = TypeVar("T")

_step_numbers = itertools.count(1)
_repl_numbers = itertools.count(1)

#: How long an interrupted step gets to notice the interruption.
INTERRUPT_GRACE_S = 2.0


#: Injected into the step's thread to stop it (timeout or cancel).
_Interrupt = steps.Interrupted

_local = threading.local()
_router_lock = threading.Lock()
_router_users = 0


class _Router:
    """Sends writes from a REPL step's thread to its capture, others to the real stream.

    ``contextlib.redirect_stdout`` swaps ``sys.stdout`` for every thread, which would
    steal a notebook's own output while a step runs in the background.
    """

    def __init__(self, name: str, fallback: Any) -> None:
        self._name = name
        self.fallback = fallback

    def write(self, text: str) -> int:
        target = getattr(_local, self._name, None)
        return int((target if target is not None else self.fallback).write(text))

    def flush(self) -> None:
        target = getattr(_local, self._name, None)
        (target if target is not None else self.fallback).flush()

    def __getattr__(self, attr: str) -> Any:
        target = getattr(_local, self._name, None)
        return getattr(target if target is not None else self.fallback, attr)


def _install_router() -> None:
    global _router_users
    with _router_lock:
        _router_users += 1
        if not isinstance(sys.stdout, _Router):
            sys.stdout = _Router("stdout", sys.stdout)
        if not isinstance(sys.stderr, _Router):
            sys.stderr = _Router("stderr", sys.stderr)


def _uninstall_router() -> None:
    global _router_users
    with _router_lock:
        _router_users -= 1
        if _router_users == 0:
            if isinstance(sys.stdout, _Router):
                sys.stdout = sys.stdout.fallback
            if isinstance(sys.stderr, _Router):
                sys.stderr = sys.stderr.fallback


class LocalREPL:
    """Runs root code in this process, one step at a time on a dedicated thread.

    Not a security sandbox: root code has full builtins, files, environment and network.
    Fast: no process start-up, and the context is shared, not copied.

    Example::

        repl = LocalREPL()
        await repl.start("some context", host)
        result = await repl.execute("print(len(context))")
    """

    def __init__(self, *, step_timeout: float | None = None, max_capture_chars: int = CAPTURE_CHARS) -> None:
        self.step_timeout = step_timeout
        self._cap = max_capture_chars
        self.namespace: dict[str, Any] = {}
        self._module: types.ModuleType | None = None
        self._helpers: dict[str, Any] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._host: Host | None = None
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._thread_id: int | None = None
        self._step_lock = threading.Lock()
        self._inflight: set[concurrent.futures.Future[Any]] = set()
        self._aborted = False

    async def start(self, context: Any, host: Host, query: str = "") -> ContextInfo | None:
        """Documents are read here, in worker processes of this one (not a sandbox: docs/security.md)."""
        self._loop = asyncio.get_running_loop()
        self._host = host
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="rlm-repl")
        self._aborted = False
        # A real module in sys.modules: classes root code defines then work with
        # @dataclass, pickle and typing, as they do in the kernel's __main__.
        self._module = types.ModuleType(f"__rlm_repl_{next(_repl_numbers)}__")
        sys.modules[self._module.__name__] = self._module
        self.namespace = self._module.__dict__
        helpers: dict[str, Any] = {
            "llm_query": self._llm_query,
            "llm_batch": self._llm_batch,
            "rlm_query": self._rlm_query,
            "FINAL": steps.final,
            "FINAL_VAR": lambda name: steps.final_var(self.namespace, name),
            "FailedCall": steps.FailedCall,
            "budget": self._budget,
            **PURE_HELPERS,
        }
        helpers.update({name: steps.tool_function(name, self._tool) for name in tool_names(host)})
        helpers.update(steps.scaffold_helpers(helpers, self.namespace, self._rlm_batch))
        given = load_context(context)
        info = None
        if isinstance(given, DocumentContext):
            loaded, info = await asyncio.to_thread(read_here, given)
            helpers["page_image"] = page_image_helper(self.namespace)
        else:
            loaded = value_of(given)
        self._helpers = helpers
        self.namespace.update({"__builtins__": builtins, **helpers, **steps.scaffold_data(query, loaded),
                               "context": loaded})
        return info

    # -- functions root code calls -------------------------------------------------

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run a host coroutine on the completion's loop and wait for it from the step thread."""
        if self._aborted or self._loop is None:
            coro.close()
            raise _Interrupt("the run was stopped")
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        self._inflight.add(future)
        try:
            return future.result()
        except concurrent.futures.CancelledError:
            raise _Interrupt("the run was stopped") from None
        finally:
            self._inflight.discard(future)

    def _llm_query(self, prompt: str, model: str | None = None, images: Any = None, detail: str | None = None) -> str:
        assert self._host is not None
        raw = checks.check_query(prompt, model, images, detail)
        extra: dict[str, Any] = {"images": raw, "detail": detail} if raw else {}
        return self._call(self._host.llm_query(prompt, model, **extra))

    def _llm_batch(
        self, prompts: list[str], max_concurrent: int = 10, model: str | None = None, images: Any = None,
        detail: str | None = None,
    ) -> list[str]:
        assert self._host is not None
        items = checks.check_batch(prompts, max_concurrent, model)
        entries = checks.check_batch_images(images, items, detail)
        extra: dict[str, Any] = {"images": entries, "detail": detail} if entries is not None else {}
        return self._call(self._host.llm_batch(items, max_concurrent, model, **extra))

    def _rlm_query(self, query: str, context: Any = None) -> str:
        assert self._host is not None
        checks.check_rlm_query(query)
        return self._call(self._host.rlm_query(query, context))

    def _rlm_batch(self, queries: list[str], contexts: list[Any] | None = None,
                   max_concurrent: int | None = None) -> list[str]:
        assert self._host is not None
        items, given = checks.check_rlm_batch(queries, contexts, max_concurrent)
        return self._call(self._host.rlm_batch(items, given, max_concurrent))

    def _tool(self, name: str, args: list[Any], kwargs: dict[str, Any]) -> Any:
        """A host tool, with the same plain-data copies both ways as over the kernel's bridge."""
        assert self._host is not None
        call = self._host.tool  # type: ignore[attr-defined]  # only a host with tools defines tool functions
        return self._call(call(name, plain.decode_plain(args), plain.decode_plain(kwargs)))

    def _budget(self) -> Any:
        assert self._host is not None
        return self._call(self._host.budget())

    # -- stepping --------------------------------------------------------------------

    def _run(self, code: str) -> ExecResult:
        """One step on the REPL thread; an interrupt can reach only the step it was meant for.

        ``_interrupt`` injects only while ``_thread_id`` names this thread, under the same
        lock that clears it here, and an interrupt still pending when the step ends is
        withdrawn before the next step can start.
        """
        with self._step_lock:
            self._thread_id = threading.get_ident()
        try:
            return self._run_step(code)
        except _Interrupt as stop:  # landed after the step's own handlers
            return ExecResult("", "", f"Interrupted: {stop}", 0.0)
        finally:
            with self._step_lock:
                if self._thread_id == threading.get_ident():  # a thread left behind must not clear a newer step's
                    self._thread_id = None
                ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(threading.get_ident()), None)

    def _run_step(self, code: str) -> ExecResult:
        out, err = steps.Capture(self._cap), steps.Capture(self._cap)
        _install_router()
        _local.stdout, _local.stderr = out, err
        started = time.perf_counter()
        try:
            error, final = steps.run_code(code, self.namespace, out, f"<repl-{next(_step_numbers)}>")
        finally:
            _local.stdout = _local.stderr = None
            _uninstall_router()
        restored = steps.restore(self.namespace, self._helpers)
        if final is None:
            final = steps.ready_answer(self.namespace)
        return ExecResult(out.getvalue(), err.getvalue(), error, time.perf_counter() - started, final,
                          tuple(restored))

    def _interrupt(self, reason: str) -> None:
        """Stop the running step: cancel its sub-calls and raise inside its thread."""
        for future in list(self._inflight):
            future.cancel()
        with self._step_lock:
            if self._thread_id is not None:
                ctypes.pythonapi.PyThreadState_SetAsyncExc(
                    ctypes.c_ulong(self._thread_id), ctypes.py_object(_Interrupt)
                )

    async def execute(self, code: str) -> ExecResult:
        if self._executor is None or self._loop is None:
            raise RuntimeError("LocalREPL.execute() called before start()")
        future = self._loop.run_in_executor(self._executor, self._run, code)
        try:
            return await asyncio.wait_for(asyncio.shield(future), self.step_timeout)
        except asyncio.TimeoutError:
            self._interrupt("timeout")
            message = (
                f"Step timed out after {self.step_timeout:g} s and was interrupted; "
                "variables assigned before the interruption are kept. Split the work "
                "into smaller steps."
            )
            try:
                result = await asyncio.wait_for(asyncio.shield(future), INTERRUPT_GRACE_S)
            except asyncio.TimeoutError:
                # Blocked in native code, where no exception can reach it: leave the
                # thread behind and give later steps a fresh one.
                self._executor.shutdown(wait=False)
                self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="rlm-repl")
                return ExecResult("", "", message + " (It was blocked in native code and "
                                  "may still be running in the background.)", float(self.step_timeout or 0))
            return ExecResult(result.stdout, result.stderr, message, result.seconds)
        except asyncio.CancelledError:
            self._aborted = True
            self._interrupt("cancelled")
            raise

    async def get_variable(self, name: str) -> str:
        return steps.get_variable(self.namespace, name)

    async def rebind(self, host: Host, query: str) -> None:
        """A session's next question: its host (its own trace and budget) and ``query``."""
        self._host = host
        self._aborted = False  # a cancelled question leaves the REPL usable for the next
        self.namespace["query"] = query

    async def put(self, name: str, value: Any) -> ContextInfo | None:
        """Set a variable (a session's added context, ``answers``); documents are read as ``start`` reads them."""
        if not name.isidentifier():
            raise ValueError(f"not a variable name: {name!r}")
        given = load_value(value)
        if isinstance(given, DocumentContext):
            self.namespace[name], info = await asyncio.to_thread(read_here, given, name)
            return info
        self.namespace[name] = value_of(given)
        return None

    async def close(self) -> None:
        self._aborted = True
        self._interrupt("closed")
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
        if self._module is not None:
            sys.modules.pop(self._module.__name__, None)
            self._module = None
        self.namespace = {}
