"""The host end of the sandbox's callback channel for ``llm_query``/``llm_batch``/``rlm_query``.

The kernel holds no keys: its helpers send a request over a unix socket in its run
directory and the host's ``Dispatcher`` makes the call, so the limiter, budgets and
trace see every call. A request frame starts with a fixed 36-byte header, the
kernel's 32-byte secret token and the body's length; the host checks the token
before it reads a byte of the body, then the length, then reads UTF-8 JSON (never
pickle). Connections, bytes in flight and batch sizes are capped. ``chunk`` and
``count_tokens`` run in the kernel, so the context never comes this way.
A malformed, oversized or unauthenticated request is refused and counted, and costs
no model call; a bad argument from root code is a ``TypeError`` in root code and the
connection stays usable.
"""

from __future__ import annotations

import asyncio
import builtins
import hmac
import json
import logging
import os
import secrets
import socket
import struct
from typing import Any

from ...lm import images as image_codec
from ..base import Host
from ..checks import check_rlm_batch
from ..plain import REQUEST_HEADER, decode_plain, encode_plain
from ..steps import FailedCall

log = logging.getLogger("rlm")

_REPLY_HEADER = struct.Struct(">I")
_ERROR_ATTRS = ("status", "retry_after", "model")
#: How long a new connection may take to send its first header, and any body to arrive.
AUTH_TIMEOUT_S = 10.0
BODY_TIMEOUT_S = 60.0

_ARGS: dict[str, dict[str, tuple[type, ...]]] = {
    "llm_query": {"prompt": (str,), "model": (str, type(None)), "images": (list,), "detail": (str, type(None))},
    "llm_batch": {"prompts": (list,), "max_concurrent": (int,), "model": (str, type(None)), "images": (list,),
                  "detail": (str, type(None))},
    "rlm_query": {"query": (str,), "context": (object,)},
    "rlm_batch": {"queries": (list,), "contexts": (list,), "max_concurrent": (int, type(None))},
    "tool": {"name": (str,), "args": (list,), "kwargs": (dict,)},
    "budget": {},
    "take_fd": {"id": (str,)},
}


class BridgeRefused(Exception):
    """A request the bridge will not serve; the message goes back to the kernel."""


def encode_frame(obj: Any) -> bytes:
    body = json.dumps(obj).encode()
    return _REPLY_HEADER.pack(len(body)) + body


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


class _Bytes:
    """Bytes of request bodies held by the host at once, across a kernel's connections."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._freed = asyncio.Condition()

    async def take(self, n: int, timeout: float) -> None:
        async with self._freed:
            await asyncio.wait_for(self._freed.wait_for(lambda: self.used + n <= self.limit), timeout)
            self.used += n

    async def give(self, n: int) -> None:
        async with self._freed:
            self.used -= n
            self._freed.notify_all()


class Bridge:
    """One kernel's callback server. ``open_step(host)`` lets calls through while a step runs."""

    def __init__(
        self, path: str, *, max_frame: int, max_batch: int = 20_000, max_connections: int = 32,
        refused: list[str] | None = None,
    ) -> None:
        self.path = path
        self.token = secrets.token_bytes(32)
        self.max_frame = max_frame
        self.max_batch = max_batch
        self.max_connections = max_connections
        self.calls = 0
        #: Bytes of request bodies read and of replies sent: what crossed, for tests and benchmarks.
        self.bytes_in = 0
        self.bytes_out = 0
        #: Why each refused request was refused; a pool passes one list for all its kernels.
        self.refused: list[str] = refused if refused is not None else []
        self._host: Host | None = None
        self._server: asyncio.AbstractServer | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self._calls: set[asyncio.Task[Any]] = set()
        self._bytes: _Bytes | None = None
        #: Descriptors of user files the host offers the kernel, by a random id, until taken or withdrawn.
        self._offers: dict[str, int] = {}

    async def start(self) -> None:
        self._bytes = _Bytes(2 * self.max_frame)
        self._server = await asyncio.start_unix_server(self._serve, path=self.path, limit=1 << 16)

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

    def abandon(self) -> None:
        """Stop serving now, without awaiting (on the loop, or where no loop runs any more)."""
        self.close_step()
        if self._server is not None:
            self._server.close()
            self._server = None
        for task in list(self._handlers):
            task.cancel()
        for offer in list(self._offers):
            self.withdraw_fd(offer)

    async def close(self) -> None:
        handlers = list(self._handlers)
        self.abandon()
        if handlers:
            await asyncio.wait(handlers, timeout=1.0)

    def offer_fd(self, fd: int) -> str:
        """Let the kernel take ``fd`` (one request, ``take_fd``, in or out of a step); the bridge owns it now."""
        offer = secrets.token_hex(8)
        self._offers[offer] = fd
        return offer

    def withdraw_fd(self, offer: str) -> None:
        fd = self._offers.pop(offer, None)
        if fd is not None:
            os.close(fd)

    def _refuse(self, why: str) -> None:
        self.refused.append(why)
        log.warning("rlm sandbox bridge refused a request: %s", why)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        if len(self._handlers) >= self.max_connections:
            self._refuse(f"more than {self.max_connections} connections")
            writer.close()
            return
        self._handlers.add(task)
        try:
            await self._session(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.TimeoutError, asyncio.CancelledError):
            return
        finally:
            self._handlers.discard(task)
            writer.close()

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Frames of one connection until it closes or breaks a rule (then it is dropped)."""
        authenticated = False
        while True:
            read = reader.readexactly(REQUEST_HEADER.size)
            try:
                header = await (read if authenticated else asyncio.wait_for(read, AUTH_TIMEOUT_S))
            except asyncio.IncompleteReadError:
                return
            token, size = REQUEST_HEADER.unpack(header)
            if not hmac.compare_digest(token, self.token):
                self._refuse("missing or wrong token")  # the body is never read
                await self._send(writer, {"error": encode_error(PermissionError("rlm bridge: missing or wrong token"))})
                return
            authenticated = True
            if size > self.max_frame:
                self._refuse(f"frame of {size} bytes over the {self.max_frame}-byte limit")
                await self._send(writer, {"error": encode_error(ValueError(
                    f"bridge message of {size // 2**20} MiB is over the {self.max_frame // 2**20} MiB limit"))})
                return
            assert self._bytes is not None
            await self._bytes.take(size, BODY_TIMEOUT_S)
            try:
                body = await asyncio.wait_for(reader.readexactly(size), BODY_TIMEOUT_S)
                self.bytes_in += size
                reply, fd = await self._handle(body)
                del body
            finally:
                await self._bytes.give(size)
            try:
                await self._send(writer, reply, fd)
            finally:
                if fd is not None:
                    os.close(fd)

    async def _send(self, writer: asyncio.StreamWriter, obj: Any, fd: int | None = None) -> None:
        """One reply frame; with ``fd``, the descriptor travels with it (SCM_RIGHTS), after everything before it."""
        frame = encode_frame(obj)
        self.bytes_out += len(frame)
        if fd is None:
            writer.write(frame)
        else:
            await asyncio.wait_for(writer.drain(), BODY_TIMEOUT_S)
            raw = writer.get_extra_info("socket")
            with socket.socket(fileno=os.dup(raw.fileno())) as sock:  # same connection; its buffer is empty
                socket.send_fds(sock, [frame], [fd])
        await asyncio.wait_for(writer.drain(), BODY_TIMEOUT_S)

    async def _handle(self, body: bytes) -> tuple[dict[str, Any], int | None]:
        """The reply, and a descriptor to send with it (only for ``take_fd``)."""
        try:
            op, args = self._parse(body)
        except BridgeRefused as exc:
            self._refuse(str(exc))
            return {"error": encode_error(PermissionError(f"rlm bridge: {exc}"))}, None
        except TypeError as exc:
            return {"error": encode_error(exc)}, None
        if op == "take_fd":
            fd = self._offers.pop(args.get("id", ""), None)
            if fd is None:
                return {"error": encode_error(LookupError("no such file on offer"))}, None
            return {"result": {"fd": True}}, fd
        return await self._answer(op, args), None

    def _parse(self, body: bytes) -> tuple[str, dict[str, Any]]:
        """An authenticated request: JSON with a known operation; wrong argument types are root code's TypeError."""
        try:
            request = json.loads(body)
        except (UnicodeDecodeError, ValueError, RecursionError):
            raise BridgeRefused("not a JSON request, or nested too deep (the bridge never unpickles)") from None
        if not isinstance(request, dict) or not isinstance(request.get("args"), dict):
            raise BridgeRefused("request is not an object with args")
        op, args = request.get("op"), request["args"]
        if not isinstance(op, str) or op not in _ARGS:
            raise BridgeRefused(f"unknown operation {op!r}")
        spec = _ARGS[op]
        for name, value in args.items():
            if name not in spec:
                raise TypeError(f"{op}() got an unexpected keyword argument {name!r}")
            if not isinstance(value, spec[name]) or (isinstance(value, bool) and bool not in spec[name]):
                raise TypeError(f"{op}({name}=...) must be {' or '.join(t.__name__ for t in spec[name])}, "
                                f"got {type(value).__name__}")
        return op, args

    async def _answer(self, op: str, args: dict[str, Any]) -> dict[str, Any]:
        host = self._host
        if host is None:
            return {"error": encode_error(RuntimeError(
                f"{op} is only available while a REPL step runs (not from a thread left running after it)"))}
        self.calls += 1
        try:
            coro = self._call(host, op, args)
        except (TypeError, ValueError) as exc:
            return {"error": encode_error(exc)}
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
        if op in ("llm_batch", "rlm_batch"):
            return {"result": [encode_text(r) for r in result]}
        if op == "tool":
            return {"result": encode_plain(result, "a tool's result")}
        if op == "budget":
            return {"result": {"fields": result.to_dict(), "spent": result.spent,
                               "remaining": result.remaining, "text": str(result)}}
        return {"result": encode_text(result)}

    def _call(self, host: Host, op: str, args: dict[str, Any]) -> Any:
        if op == "llm_query":
            if "images" not in args:
                return host.llm_query(args["prompt"], args.get("model"))
            return host.llm_query(args["prompt"], args.get("model"), image_codec.decode(args["images"]),
                                  args.get("detail"))
        if op == "llm_batch":
            prompts = args["prompts"]
            if len(prompts) > self.max_batch:
                raise ValueError(f"llm_batch: {len(prompts):,} prompts in one call is over the sandbox's limit of "
                                 f"{self.max_batch:,} (SandboxConfig.max_batch); send them in several calls")
            if "images" not in args:
                return host.llm_batch(prompts, args.get("max_concurrent", 10), args.get("model"))
            entries = image_codec.decode_batch(args["images"], len(prompts))
            return host.llm_batch(prompts, args.get("max_concurrent", 10), args.get("model"), entries,
                                  args.get("detail"))
        if op == "budget":
            return host.budget()
        if op == "rlm_batch":
            limit = args.get("max_concurrent")
            queries, contexts = check_rlm_batch(args["queries"], decode_plain(args["contexts"]), limit)
            if len(queries) > self.max_batch:
                raise ValueError(f"rlm_query_batched: {len(queries):,} queries is over the sandbox's limit of "
                                 f"{self.max_batch:,}")
            return host.rlm_batch(queries, contexts, limit)
        if op == "tool":
            kwargs = decode_plain(args["kwargs"])
            if not isinstance(kwargs, dict) or not all(isinstance(k, str) for k in kwargs):
                raise TypeError("a tool's keyword argument names must be strings")
            call = getattr(host, "tool", None)
            if call is None:
                raise NameError(f"no tool named {args['name']!r}")
            return call(args["name"], list(decode_plain(args["args"])), kwargs)
        return host.rlm_query(args["query"], decode_plain(args.get("context")))
