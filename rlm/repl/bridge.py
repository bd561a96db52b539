"""The host end of the sandbox's callback channel for ``llm_query``/``llm_batch``/``rlm_query``.

The kernel holds no keys: its helpers send a request over a unix socket in its run
directory and the host's ``Dispatcher`` makes the call, so the limiter, budgets and
trace see every call. Frames are a 4-byte big-endian length and UTF-8 JSON (never
pickle). Every request carries the kernel's secret token; anything malformed, too
large, unauthenticated or outside a running step is refused and counted, and
answering it never costs a model call.
"""

from __future__ import annotations

import asyncio
import builtins
import hmac
import json
import logging
import os
import secrets
import struct
from typing import Any

from ..lm.types import FailedCall
from .base import Host
from .helpers import PURE_HELPERS, budget_view

log = logging.getLogger("rlm")

_HEADER = struct.Struct(">I")
_OPS: dict[str, dict[str, tuple[type, ...]]] = {
    "llm_query": {"prompt": (str,), "model": (str, type(None))},
    "llm_batch": {"prompts": (list,), "max_concurrent": (int,), "model": (str, type(None))},
    "rlm_query": {"query": (str,), "context": (str, list, dict, type(None))},
    "budget": {},
    "helper": {"name": (str,), "args": (list,), "kwargs": (dict,)},
}
_ERROR_ATTRS = ("status", "retry_after", "model")


class BridgeRefused(Exception):
    """A request the bridge will not serve; the message goes back to the kernel."""


def encode_frame(obj: Any) -> bytes:
    body = json.dumps(obj).encode()
    return _HEADER.pack(len(body)) + body


def _builtin_base(exc: BaseException) -> str:
    for cls in type(exc).__mro__:
        if getattr(builtins, cls.__name__, None) is cls:
            return str(cls.__name__)
    return "Exception"


def encode_error(exc: BaseException) -> dict[str, Any]:
    """An exception as data the kernel turns back into a look-alike of the same type."""
    attrs = {}
    for name in _ERROR_ATTRS:
        value = getattr(exc, name, None)
        if isinstance(value, (str, int, float, bool)):
            attrs[name] = value
    return {"type": type(exc).__name__, "base": _builtin_base(exc), "message": str(exc), "attrs": attrs}


def encode_text(value: str) -> dict[str, Any]:
    if isinstance(value, FailedCall):
        error = value.error if value.error is not None else RuntimeError(str(value))
        return {"failed": str(value), "error": encode_error(error)}
    return {"text": str(value)}


class Bridge:
    """One kernel's callback server. ``open_step(host)`` lets calls through while a step runs."""

    def __init__(self, path: str, *, max_frame: int, max_connections: int = 64) -> None:
        self.path = path
        self.token = secrets.token_urlsafe(32)
        self.max_frame = max_frame
        self.max_connections = max_connections
        self.calls = 0
        self.refused: list[str] = []
        self._host: Host | None = None
        self._server: asyncio.AbstractServer | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self._calls: set[asyncio.Task[Any]] = set()

    async def start(self, owner: int | None) -> None:
        self._server = await asyncio.start_unix_server(self._serve, path=self.path, limit=1 << 16)
        os.chmod(self.path, 0o600)
        if owner is not None:
            os.chown(self.path, owner, owner)

    @property
    def step_open(self) -> bool:
        """True while a step runs, the only time calls are served."""
        return self._host is not None

    def open_step(self, host: Host) -> None:
        self._host = host

    def close_step(self) -> None:
        """The step is over: calls still in flight are cancelled, new ones refused."""
        self._host = None
        for task in list(self._calls):
            task.cancel()

    async def close(self) -> None:
        self.close_step()
        if self._server is not None:
            self._server.close()
            self._server = None
        for task in list(self._handlers):
            task.cancel()
        if self._handlers:
            await asyncio.wait(list(self._handlers), timeout=1.0)
        try:
            os.unlink(self.path)
        except OSError:
            pass

    def _refuse(self, why: str) -> None:
        self.refused.append(why)
        log.warning("rlm sandbox bridge refused a request: %s", why)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            if len(self._handlers) > self.max_connections:
                self._refuse("too many connections")
                return
            while True:
                try:
                    header = await reader.readexactly(_HEADER.size)
                except asyncio.IncompleteReadError:
                    return
                (size,) = _HEADER.unpack(header)
                if size > self.max_frame:
                    # Never read it: answer and hang up, so a huge length costs nothing.
                    self._refuse(f"frame of {size} bytes over the {self.max_frame}-byte limit")
                    await self._send(writer, {"error": encode_error(ValueError(
                        f"bridge message of {size // 2**20} MiB is over the {self.max_frame // 2**20} MiB limit"))})
                    return
                body = await reader.readexactly(size)
                try:
                    op, args = self._check(body)
                except BridgeRefused as exc:
                    self._refuse(str(exc))
                    await self._send(writer, {"error": encode_error(PermissionError(f"rlm bridge: {exc}"))})
                    return
                await self._send(writer, await self._answer(op, args))
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            return
        finally:
            self._handlers.discard(task)
            writer.close()

    @staticmethod
    async def _send(writer: asyncio.StreamWriter, obj: Any) -> None:
        writer.write(encode_frame(obj))
        await writer.drain()

    def _check(self, body: bytes) -> tuple[str, dict[str, Any]]:
        """Authenticate and validate one request; only the three helpers, only their arguments."""
        try:
            request = json.loads(body)
        except (UnicodeDecodeError, ValueError):
            raise BridgeRefused("not a JSON request (the bridge never unpickles)") from None
        if not isinstance(request, dict):
            raise BridgeRefused("request is not an object")
        token = request.get("token")
        if not isinstance(token, str) or not hmac.compare_digest(token.encode(), self.token.encode()):
            raise BridgeRefused("missing or wrong token")
        op, args = request.get("op"), request.get("args")
        if op not in _OPS or not isinstance(args, dict):
            raise BridgeRefused(f"unknown operation {op!r}")
        spec = _OPS[op]
        for name, value in args.items():
            if name not in spec or not isinstance(value, spec[name]) or isinstance(value, bool):
                raise BridgeRefused(f"{op}: bad argument {name!r}")
        return op, args

    async def _answer(self, op: str, args: dict[str, Any]) -> dict[str, Any]:
        host = self._host
        if host is None:
            return {"error": encode_error(RuntimeError(
                f"{op} is only available while a REPL step runs (not from a thread left running after it)"))}
        self.calls += 1
        if op == "helper":
            return await _helper(args)
        if op == "llm_query":
            coro: Any = host.llm_query(args["prompt"], args.get("model"))
        elif op == "llm_batch":
            coro = host.llm_batch(args["prompts"], args.get("max_concurrent", 10), args.get("model"))
        elif op == "budget":
            coro = host.budget()
        else:
            coro = host.rlm_query(args["query"], args.get("context"))
        task = asyncio.ensure_future(coro)
        self._calls.add(task)
        try:
            result = await task
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - any failure goes back to root code as its error
            return {"error": encode_error(exc)}
        finally:
            self._calls.discard(task)
        if op == "llm_batch":
            return {"result": [encode_text(r) for r in result]}
        if op == "budget":
            report = budget_view(result)
            return {"result": {"fields": report.to_dict(), "spent": report.spent,
                               "remaining": report.remaining, "text": str(report)}}
        return {"result": encode_text(result)}


async def _helper(args: dict[str, Any]) -> dict[str, Any]:
    """``chunk``/``count_tokens`` run on the host: the tokenizer lives there, not in the sandbox."""
    func = PURE_HELPERS.get(args["name"])
    if func is None:
        return {"error": encode_error(NameError(f"no helper named {args['name']!r}"))}
    kwargs = args["kwargs"]
    if not all(isinstance(k, str) for k in kwargs):
        return {"error": encode_error(TypeError("helper keyword names must be strings"))}
    try:
        # Tokenizing a large text is CPU work: keep it off the event loop.
        return {"result": await asyncio.to_thread(func, *args["args"], **kwargs)}
    except Exception as exc:  # noqa: BLE001 - a helper's error is root code's error
        return {"error": encode_error(exc)}
