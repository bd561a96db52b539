"""What root code sees inside the sandbox kernel, and the calls the host makes into it.

Copied into the kernel's run directory as ``_rlm_in_kernel.py`` and imported there after
start-up, beside ``_rlm_steps.py`` (``rlm.repl.steps``: the step runner and everything
root code sees that LocalREPL shares, with ``_rlm_checks.py`` and ``_rlm_plain.py``)
and ``_rlm_confine.py``; standard library only, because rlm itself is not importable
in the sandbox. It binds ``llm_query``,
``llm_batch``, ``rlm_query`` and ``budget`` to the bridge; ``chunk`` and ``count_tokens``
run here (``_rlm_chunking.py``, ``_rlm_counter.py``), where the context is.
Each call the host makes (``install``, ``load``, ``put``, ``step``, ``get``) leaves its result in
``last``, which the host reads as a ``user_expressions`` entry of the same request.
"""

from __future__ import annotations

import base64
import builtins
import json
import os
import select
import socket
import struct
import sys
import threading
import time
from typing import Any

try:  # inside rlm, for the type checker and the host's own tests
    from ...lm import counter
    from ...lm import images as image_codec
    from .. import checks, chunking, plain, reading, steps
    from ..documents import load as documents
    from . import confine
except ImportError:  # in the kernel: the copies beside this file
    import _rlm_checks as checks  # type: ignore[no-redef]
    import _rlm_chunking as chunking  # type: ignore[no-redef]
    import _rlm_confine as confine  # type: ignore[no-redef]
    import _rlm_counter as counter  # type: ignore[no-redef]
    import _rlm_documents.load as documents  # type: ignore[no-redef]
    import _rlm_images as image_codec  # type: ignore[no-redef]
    import _rlm_plain as plain  # type: ignore[no-redef]
    import _rlm_reading as reading  # type: ignore[no-redef]
    import _rlm_steps as steps  # type: ignore[no-redef]

_REPLY_HEADER = struct.Struct(">I")

#: The result of the host's last call into this module, base64 of JSON (one line, any size).
last = ""


class BudgetReport:
    """What the completion spent against its budget (the host's ``BudgetReport``, as data)."""

    def __init__(self, data: dict[str, Any]) -> None:
        fields = dict(data.get("fields") or {})
        self.budget = type("Budget", (), dict(fields.pop("budget", {}) or {}))()
        for key, value in fields.items():
            setattr(self, key, value)
        self.spent = data.get("spent") or {}
        self.remaining = data.get("remaining") or {}
        self._text = str(data.get("text", ""))

    def __str__(self) -> str:
        return self._text

    __repr__ = __str__


_error_classes: dict[str, type[BaseException]] = {}


def _error_class(name: str, base: str) -> type[BaseException]:
    """The host's exception type by name: the builtin itself, or a look-alike subclass of its builtin base."""
    found = getattr(builtins, name, None)
    if isinstance(found, type) and issubclass(found, Exception):
        return found
    key = f"{name}:{base}"
    if key not in _error_classes:
        parent = getattr(builtins, base, Exception)
        if not (isinstance(parent, type) and issubclass(parent, Exception)):
            parent = Exception
        _error_classes[key] = type(str(name), (parent,), {"__module__": "rlm.errors"})
    return _error_classes[key]


def _make_error(data: dict[str, Any]) -> BaseException:
    cls = _error_class(str(data.get("type", "RuntimeError")), str(data.get("base", "Exception")))
    exc = cls(str(data.get("message", "")))
    for attr, value in (data.get("attrs") or {}).items():
        try:
            setattr(exc, str(attr), value)
        except AttributeError:
            pass
    return exc


def _decode(item: dict[str, Any]) -> str:
    if "failed" in item:
        return steps.FailedCall(_make_error(item.get("error") or {}))
    return str(item["text"])


class _Bridge:
    """The kernel end of the callback channel: one unix-socket connection per thread."""

    def __init__(self, path: str, token: str, max_frame: int) -> None:
        self._path = path
        self._token = bytes.fromhex(token)
        self._max = max_frame
        self._local = threading.local()

    def _conn(self) -> socket.socket:
        sock = getattr(self._local, "sock", None)
        if sock is None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.connect(self._path)
            self._local.sock = sock
        return sock

    def _drop(self) -> None:
        sock = getattr(self._local, "sock", None)
        self._local.sock = None
        if sock is not None:
            sock.close()

    def call(self, op: str, args: dict[str, Any]) -> Any:
        body = json.dumps({"op": op, "args": args}).encode()
        if len(body) > self._max:
            raise ValueError(
                f"{op}: the request is {len(body) // 2**20} MiB, over the bridge limit of "
                f"{self._max // 2**20} MiB; send fewer or shorter prompts per call"
            )
        try:
            sock = self._conn()
            sock.sendall(plain.REQUEST_HEADER.pack(self._token, len(body)) + body)
            reply = json.loads(_recv_frame(sock, 1 << 31))
        except BaseException:
            self._drop()  # an interrupt mid-call leaves the stream out of step: start afresh
            raise
        if "error" in reply:
            raise _make_error(reply["error"])
        return reply["result"]

    def take_fd(self, offer: str) -> int:
        """The descriptor the host offered under ``offer``; it arrives with the reply (SCM_RIGHTS)."""
        body = json.dumps({"op": "take_fd", "args": {"id": offer}}).encode()
        sock = self._conn()
        try:
            sock.sendall(plain.REQUEST_HEADER.pack(self._token, len(body)) + body)
            data, fds, _flags, _addr = socket.recv_fds(sock, 1 << 16, 1)
            if len(data) < _REPLY_HEADER.size:
                data += _recv_exact(sock, _REPLY_HEADER.size - len(data))
            want = _REPLY_HEADER.size + _REPLY_HEADER.unpack(data[: _REPLY_HEADER.size])[0]
            if len(data) < want:
                data += _recv_exact(sock, want - len(data))
        except BaseException:
            self._drop()
            raise
        reply = json.loads(data[_REPLY_HEADER.size :])
        if "error" in reply or not fds:
            for fd in fds:
                os.close(fd)
            raise _make_error(reply.get("error") or {"message": "no descriptor came"})
        return fds[0]


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    chunks, got = [], 0
    while got < n:
        # Wake up every 0.2 s: a SIGINT delivered to another thread only raises
        # KeyboardInterrupt here when this thread runs Python again. Without this an
        # interrupted step could finish later, outside the cell, and lose its reply.
        if not select.select([sock], [], [], 0.2)[0]:
            continue
        chunk = sock.recv(min(n - got, 1 << 20))
        if not chunk:
            raise ConnectionError("the rlm host closed the bridge")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def _recv_frame(sock: socket.socket, limit: int) -> bytes:
    (size,) = _REPLY_HEADER.unpack(_recv_exact(sock, _REPLY_HEADER.size))
    if size > limit:
        raise ConnectionError("bridge frame too large")
    return _recv_exact(sock, size)


class _Runtime:
    """The names root code sees, bound to one bridge and one namespace."""

    def __init__(self, ns: dict[str, Any], bridge: _Bridge) -> None:
        self.ns = ns
        self.bridge = bridge
        self.step_no = 0
        self.helpers: dict[str, Any] = {}

    def names(self, tools: list[str]) -> dict[str, Any]:
        """rlm's helpers and the host's tools (restored after a step that reassigns one), the scaffolds' names."""
        helpers: dict[str, Any] = {
            "llm_query": self.llm_query,
            "llm_batch": self.llm_batch,
            "rlm_query": self.rlm_query,
            "FINAL": steps.final,
            "FINAL_VAR": lambda name: steps.final_var(self.ns, name),
            "FailedCall": steps.FailedCall,
            "budget": self.budget,
            "chunk": chunking.chunk,
            "count_tokens": counter.count_tokens,
        }
        helpers.update({name: steps.tool_function(name, self.tool) for name in tools if name.isidentifier()})
        helpers.update(steps.scaffold_helpers(helpers, self.ns, self.rlm_batch))
        self.helpers = helpers
        return helpers

    def budget(self) -> BudgetReport:
        return BudgetReport(self.bridge.call("budget", {}))

    def llm_query(self, prompt: str, model: str | None = None, images: Any = None, detail: str | None = None) -> str:
        raw = checks.check_query(prompt, model, images, detail)
        args: dict[str, Any] = {"prompt": prompt, "model": model}
        if raw:
            args.update(images=image_codec.encode(raw), detail=detail)
        return _decode(self.bridge.call("llm_query", args))

    def llm_batch(self, prompts: list[str], max_concurrent: int = 10, model: str | None = None, images: Any = None,
                  detail: str | None = None) -> list[str]:
        items = checks.check_batch(prompts, max_concurrent, model)
        entries = checks.check_batch_images(images, items, detail)
        args: dict[str, Any] = {"prompts": items, "max_concurrent": max_concurrent, "model": model}
        if entries is not None:
            args.update(images=image_codec.encode_batch(entries), detail=detail)
        return [_decode(r) for r in self.bridge.call("llm_batch", args)]

    def rlm_query(self, query: str, context: Any = None) -> str:
        checks.check_rlm_query(query)
        sent = plain.encode_plain(context, "rlm_query(query, context): context")
        return _decode(self.bridge.call("rlm_query", {"query": query, "context": sent}))

    def rlm_batch(self, queries: list[str], contexts: list[Any] | None = None,
                  max_concurrent: int | None = None) -> list[str]:
        items, given = checks.check_rlm_batch(queries, contexts, max_concurrent)
        sent = plain.encode_plain(given, "rlm_query_batched(queries, contexts): contexts")
        args = {"queries": items, "contexts": sent, "max_concurrent": max_concurrent}
        return [_decode(r) for r in self.bridge.call("rlm_batch", args)]

    def tool(self, name: str, args: list[Any], kwargs: dict[str, Any]) -> Any:
        return plain.decode_plain(self.bridge.call("tool", {"name": name, "args": args, "kwargs": kwargs}))

    def run(self, code: str, cap: int) -> dict[str, Any]:
        """One step, as LocalREPL runs it: every outcome becomes a result dict, its output kept to ``cap``."""
        self.step_no += 1
        out, err = steps.Capture(cap), steps.Capture(cap)
        saved = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = out, err
        started = time.perf_counter()
        try:
            error, final = steps.run_code(code, self.ns, out, f"<repl-{self.step_no}>")
        except KeyboardInterrupt:  # arrived while an error was being formatted
            error, final = "KeyboardInterrupt", None
        finally:
            sys.stdout, sys.stderr = saved
        restored = steps.restore(self.ns, self.helpers)
        if final is None:
            final = steps.ready_answer(self.ns)
        return {
            "stdout": out.getvalue(), "stderr": err.getvalue(), "error": error,
            "final": final, "seconds": time.perf_counter() - started, "restored": restored,
        }


def _exit(code: Any = None) -> None:
    raise SystemExit(code)


_runtime: _Runtime | None = None


def _shell() -> Any:
    from IPython import get_ipython

    return get_ipython()


def _reply(data: dict[str, Any]) -> None:
    """Leave a result for the host's ``user_expressions`` (no iopub traffic, no payload)."""
    global last
    last = base64.b64encode(json.dumps(data).encode()).decode("ascii")


def install(bridge_path: str, token: str, max_frame: int, no_network: bool = False) -> None:
    """Bind the helpers to this kernel's bridge; called once, right after start-up, before any model code."""
    global _runtime
    if no_network:
        confine.no_network()
    ns = _shell().user_ns
    # IPython's exit/quit only ask a frontend to close the kernel; ours raise SystemExit
    # as the builtins do in LocalREPL.
    ns["exit"] = ns["quit"] = _exit
    _runtime = _Runtime(ns, _Bridge(bridge_path, token, max_frame))
    # Start-up errors went to the host's log file; from now on raw fd 2 writes go nowhere.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)
    _reply({"ok": True})


def _read(offer: str, kind: str, name: str = "context") -> tuple[Any, dict[str, Any]]:
    """The value the host offered on the bridge under ``offer`` (a pipe, or a descriptor of the user's file),
    and for documents, read here, what the host is told about them."""
    assert _runtime is not None
    fd = _runtime.bridge.take_fd(offer)
    try:
        value = reading.read_value(fd, kind)
    finally:
        os.close(fd)
    if kind != "bundle":
        return value, {}
    header, files = value
    loaded = documents.from_bundle(header, files, counter.count_tokens, name)
    return loaded.value, {"description": loaded.description, "summary": loaded.summary}


def load(offer: str, kind: str, query: str = "", tools: tuple[str, ...] = ()) -> None:
    """Make the context the host handed over root code's ``context``."""
    assert _runtime is not None
    started = time.perf_counter()
    try:
        value, told = _read(offer, kind)
    except Exception as exc:  # noqa: BLE001 - e.g. a class the kernel cannot import
        _reply({"error": f"{type(exc).__name__}: {exc}"})
        return
    _runtime.ns.update(_runtime.names(list(tools)))
    if kind == "bundle":
        _runtime.helpers["page_image"] = _runtime.ns["page_image"] = documents.page_image_helper(_runtime.ns)
    _runtime.ns.update(steps.scaffold_data(query, value))
    _runtime.ns["context"] = value
    _reply({"ok": True, "seconds": time.perf_counter() - started, **told})


def put(offer: str, kind: str, name: str) -> None:
    """A session's later value (another context, ``answers``, the new ``query``) under ``name``."""
    assert _runtime is not None
    if not name.isidentifier():
        _reply({"error": f"not a name: {name!r}"})
        return
    try:
        _runtime.ns[name], told = _read(offer, kind, name)
    except Exception as exc:  # noqa: BLE001 - e.g. a class the kernel cannot import
        _reply({"error": f"{type(exc).__name__}: {exc}"})
        return
    _reply({"ok": True, **told})


def step(code: str, cap: int) -> None:
    assert _runtime is not None
    _reply(_runtime.run(code, cap))


def get(name: str) -> None:
    assert _runtime is not None
    try:
        _reply({"value": steps.get_variable(_runtime.ns, name)})
    except KeyError:
        _reply({"missing": name.strip().strip("'\"")})
