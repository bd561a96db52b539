"""What root code sees inside the sandbox kernel, and the step runner the host calls.

Copied into the kernel's run directory as ``_rlm_kernel.py`` and imported there after
start-up; standard library only, because rlm itself is not importable in the sandbox.
It provides ``context``, ``llm_query``, ``llm_batch``, ``rlm_query``, ``FINAL``,
``FINAL_VAR``, ``FailedCall``, ``budget``, ``chunk`` and ``count_tokens``. The bridge
client mirrors the framing in ``rlm.repl.bridge`` (4-byte big-endian length, then UTF-8
JSON); it is duplicated because this file must stand alone.
"""

from __future__ import annotations

import ast
import builtins
import collections
import ctypes
import json
import linecache
import os
import pickle
import re
import select
import socket
import struct
import sys
import threading
import time
import traceback
from typing import Any

#: Kernel -> host frames: the 32-byte token and the body's length, checked before the body is read.
REQUEST_HEADER = struct.Struct(">32sI")
_REPLY_HEADER = struct.Struct(">I")
_TAG = "__rlm__"
_SURROGATES = re.compile("[\ud800-\udfff]")
_PLAIN = (str, int, float, bool, type(None))


def encode_plain(value: Any, what: str = "value") -> Any:
    """Plain data as JSON that keeps tuples and non-string dict keys (``decode_plain`` undoes it)."""
    try:
        return _encode(value, what)
    except RecursionError:
        raise TypeError(f"{what} is nested too deeply to send") from None


def _encode(value: Any, what: str) -> Any:
    if isinstance(value, _PLAIN):
        return value
    if isinstance(value, list):
        return [_encode(v, what) for v in value]
    if isinstance(value, tuple):
        return {_TAG: "tuple", "items": [_encode(v, what) for v in value]}
    if isinstance(value, dict):
        if all(isinstance(k, str) and k != _TAG for k in value):
            return {k: _encode(v, what) for k, v in value.items()}
        return {_TAG: "dict", "items": [[_encode(k, what), _encode(v, what)] for k, v in value.items()]}
    raise TypeError(f"{what} must be plain data (str, int, float, bool, None, list, tuple, dict), "
                    f"not {type(value).__name__}")


def decode_plain(value: Any) -> Any:
    """The value ``encode_plain`` sent; builds nothing but plain types, so the host may call it on kernel data."""
    try:
        return _decode_plain(value)
    except RecursionError:
        raise TypeError("the value is nested too deeply") from None


def _decode_plain(value: Any) -> Any:
    if isinstance(value, list):
        return [_decode_plain(v) for v in value]
    if not isinstance(value, dict):
        return value
    tag = value.get(_TAG)
    if tag is None:
        return {k: _decode_plain(v) for k, v in value.items()}
    items = value.get("items")
    if not isinstance(items, list):
        raise TypeError("a tagged value without items")
    if tag == "tuple":
        return tuple(_decode_plain(v) for v in items)
    if tag == "dict":
        out = {}
        for pair in items:
            if not isinstance(pair, list) or len(pair) != 2:
                raise TypeError("a dict item is not a [key, value] pair")
            key = _decode_plain(pair[0])
            try:
                out[key] = _decode_plain(pair[1])
            except TypeError:
                raise TypeError(f"unhashable dict key of type {type(key).__name__}") from None
        return out
    raise TypeError(f"unknown tag {tag!r}")


# -- what root code sees -----------------------------------------------------------


class _FinalAnswer(BaseException):
    """Raised by FINAL/FINAL_VAR; a BaseException so ``except Exception`` cannot swallow it."""

    def __init__(self, answer: str) -> None:
        super().__init__(answer)
        self.answer = answer


class FailedCall(str):
    """The text a failed sub-call returns: a ``str``, detectable by type, error in ``.error``."""

    error: BaseException | None

    def __new__(cls, text: str, error: BaseException | None = None) -> FailedCall:  # noqa: PYI034
        self = super().__new__(cls, text)
        self.error = error
        return self


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
        return FailedCall(str(item["failed"]), _make_error(item.get("error") or {}))
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
            sock.sendall(REQUEST_HEADER.pack(self._token, len(body)) + body)
            reply = json.loads(_recv_frame(sock, 1 << 31))
        except BaseException:
            self._drop()  # an interrupt mid-call leaves the stream out of step: start afresh
            raise
        if "error" in reply:
            raise _make_error(reply["error"])
        return reply["result"]


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


class _BinaryCapture:
    """``sys.stdout.buffer``: bytes written here land in the text capture, decoded leniently."""

    def __init__(self, text: _Capture) -> None:
        self._text = text

    def write(self, data: bytes | bytearray | memoryview) -> int:
        raw = bytes(data)
        self._text.write(raw.decode("utf-8", "replace"))
        return len(raw)

    def flush(self) -> None:
        """Nothing to flush."""


class _Capture:
    """A text sink that keeps the head and the tail past ``cap`` characters."""

    encoding = "utf-8"
    errors = "replace"

    def __init__(self, cap: int) -> None:
        self.buffer = _BinaryCapture(self)
        self._half = max(1, cap // 2)
        self._head: list[str] = []
        self._head_len = 0
        self._tail: collections.deque[str] = collections.deque()
        self._tail_len = 0
        self._total = 0

    def write(self, text: str) -> int:
        text = str(text)
        n = len(text)
        self._total += n
        room = self._half - self._head_len
        if room > 0:
            self._head.append(text[:room])
            self._head_len += min(room, n)
            text = text[room:]
        if text:
            self._tail.append(text[-self._half :])
            self._tail_len += len(self._tail[-1])
            while self._tail_len - len(self._tail[0]) >= self._half:
                self._tail_len -= len(self._tail.popleft())
        return n

    def flush(self) -> None:
        """Streams must be flushable; there is nothing to flush."""

    def isatty(self) -> bool:
        return False

    def getvalue(self) -> str:
        """What was written, capped; lone surrogates (which no UTF-8 channel can carry) become U+FFFD."""
        head = "".join(self._head)
        tail = "".join(self._tail)
        if len(tail) > self._half:
            tail = tail[-self._half :]
        omitted = self._total - len(head) - len(tail)
        text = f"{head}\n... [{omitted} characters omitted] ...\n{tail}" if omitted > 0 else head + tail
        return _SURROGATES.sub("\ufffd", text)


def check_query(prompt: Any, model: Any) -> None:
    """The argument checks of ``llm_query``, the same in both REPLs."""
    if not isinstance(prompt, str):
        raise TypeError(f"llm_query(prompt) takes a string, got {type(prompt).__name__}")
    _check_model("llm_query", model)


def check_batch(prompts: Any, max_concurrent: Any, model: Any) -> list[str]:
    """The argument checks of ``llm_batch``; returns the prompts as a list."""
    if isinstance(prompts, (str, bytes)):
        raise TypeError("llm_batch(prompts) takes a list of prompt strings, not one string; use llm_query(prompt) for one")
    try:
        items = list(prompts)
    except TypeError:
        raise TypeError(f"llm_batch(prompts) takes a list of strings, got {type(prompts).__name__}") from None
    bad = [i for i, p in enumerate(items) if not isinstance(p, str)]
    if bad:
        raise TypeError(
            f"llm_batch(prompts): items {bad[:5]} are not strings "
            f"(first is {type(items[bad[0]]).__name__}); convert them with str() first"
        )
    if not isinstance(max_concurrent, int) or isinstance(max_concurrent, bool):
        raise TypeError(f"llm_batch(max_concurrent=...) takes an int, got {type(max_concurrent).__name__}")
    if max_concurrent < 1:
        raise ValueError(f"llm_batch(max_concurrent=...) must be a positive int, got {max_concurrent!r}")
    _check_model("llm_batch", model)
    return items


def check_rlm_query(query: Any) -> None:
    if not isinstance(query, str):
        raise TypeError(f"rlm_query(query) takes a string, got {type(query).__name__}")


def _check_model(fn: str, model: Any) -> None:
    if model is not None and not isinstance(model, str):
        raise TypeError(f"{fn}(model=...) takes a model name (str) or None, got {type(model).__name__}")


class _Runtime:
    """The names root code sees, bound to one bridge and one namespace."""

    def __init__(self, ns: dict[str, Any], bridge: _Bridge, cap: int) -> None:
        self.ns = ns
        self.bridge = bridge
        self.cap = cap
        self.step_no = 0

    def names(self) -> dict[str, Any]:
        return {
            "llm_query": self.llm_query,
            "llm_batch": self.llm_batch,
            "rlm_query": self.rlm_query,
            "FINAL": self.final,
            "FINAL_VAR": self.final_var,
            "FailedCall": FailedCall,
            "budget": self.budget,
            "chunk": self._helper("chunk"),
            "count_tokens": self._helper("count_tokens"),
        }

    def budget(self) -> BudgetReport:
        return BudgetReport(self.bridge.call("budget", {}))

    def _helper(self, name: str) -> Any:
        """A host-side helper (the tokenizer lives on the host, not in the sandbox)."""

        def helper(*args: Any, **kwargs: Any) -> Any:
            plain = [encode_plain(a, f"{name}() argument") for a in args]
            return self.bridge.call("helper", {"name": name, "args": plain, "kwargs": encode_plain(kwargs)})

        helper.__name__ = name
        return helper

    def llm_query(self, prompt: str, model: str | None = None) -> str:
        check_query(prompt, model)
        return _decode(self.bridge.call("llm_query", {"prompt": prompt, "model": model}))

    def llm_batch(self, prompts: list[str], max_concurrent: int = 10, model: str | None = None) -> list[str]:
        items = check_batch(prompts, max_concurrent, model)
        results = self.bridge.call("llm_batch", {"prompts": items, "max_concurrent": max_concurrent, "model": model})
        return [_decode(r) for r in results]

    def rlm_query(self, query: str, context: Any = None) -> str:
        check_rlm_query(query)
        plain = encode_plain(context, "rlm_query(query, context): context")
        return _decode(self.bridge.call("rlm_query", {"query": query, "context": plain}))

    def final(self, answer: Any) -> None:
        raise _FinalAnswer(answer if isinstance(answer, str) else str(answer))

    def final_var(self, name: Any) -> None:
        if not isinstance(name, str):
            raise _FinalAnswer(str(name))
        key = name.strip().strip("'\"")
        if key not in self.ns:
            raise NameError(
                f"FINAL_VAR: no variable named {key!r}. Assign it in a code block first, "
                "or call FINAL(value) with the answer itself."
            )
        value = self.ns[key]
        raise _FinalAnswer(value if isinstance(value, str) else str(value))

    def run(self, code: str) -> dict[str, Any]:
        """One step, as LocalREPL runs it: every outcome becomes a result dict."""
        self.step_no += 1
        out, err = _Capture(self.cap), _Capture(self.cap)
        saved = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = out, err
        started = time.perf_counter()
        error: str | None = None
        final: str | None = None
        try:
            error, final = self._exec(code, out)
        except KeyboardInterrupt:  # arrived while an error was being formatted
            error = "KeyboardInterrupt"
        finally:
            sys.stdout, sys.stderr = saved
        return {
            "stdout": out.getvalue(), "stderr": err.getvalue(), "error": error,
            "final": final, "seconds": time.perf_counter() - started,
        }

    def _exec(self, code: str, out: _Capture) -> tuple[str | None, str | None]:
        """Run one step's code; returns (error text, final answer)."""
        error: str | None = None
        final: str | None = None
        try:
            filename = f"<repl-{self.step_no}>"
            linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
            tree = ast.parse(code, filename, "exec")
            last = tree.body[-1] if tree.body and isinstance(tree.body[-1], ast.Expr) else None
            if last is not None:
                tree.body.pop()
            exec(compile(tree, filename, "exec"), self.ns)  # noqa: S102 - running root code is the point
            if last is not None:
                value = eval(compile(ast.Expression(last.value), filename, "eval"), self.ns)
                if value is not None:
                    out.write(repr(value) + "\n")
        except _FinalAnswer as answer:
            final = answer.answer
        except KeyboardInterrupt:
            error = "KeyboardInterrupt"
        except SyntaxError as exc:
            error = "".join(traceback.format_exception_only(type(exc), exc))
        except BaseException as exc:  # noqa: BLE001 - root code may raise anything, SystemExit included
            error = _user_traceback(exc)
        return error, final

    def get(self, name: str) -> dict[str, Any]:
        key = name.strip().strip("'\"")
        if key not in self.ns:
            return {"missing": key}
        value = self.ns[key]
        return {"value": value if isinstance(value, str) else str(value)}


def _exit(code: Any = None) -> None:
    raise SystemExit(code)


def _user_traceback(exc: BaseException) -> str:
    tb = exc.__traceback__
    while tb is not None and not tb.tb_frame.f_code.co_filename.startswith("<repl-"):
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(exc), exc, tb))


_runtime: _Runtime | None = None


def _shell() -> Any:
    from IPython import get_ipython

    return get_ipython()


def _reply(data: dict[str, Any]) -> None:
    """Hand a result to the host inside the execute_reply (no iopub traffic)."""
    _shell().payload_manager.write_payload({"source": "rlm", "data": data}, single=False)


# Seccomp (uid mode, where there is no network namespace): socket() of any family but AF_UNIX, and
# io_uring (which can open sockets without socket()), fail with EACCES. Installed by install(),
# after ipykernel bound its own loopback pipe and before any model code, on every thread (TSYNC).
# arch -> (AUDIT_ARCH, socket, io_uring_setup, seccomp)
_ARCH = {"x86_64": (0xC000003E, 41, 425, 317), "aarch64": (0xC00000B7, 198, 425, 277)}
_RET_ALLOW, _RET_ERRNO = 0x7FFF0000, 0x00050000
_EACCES = 13


class _SockFilter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8), ("k", ctypes.c_uint32)]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_uint16), ("filter", ctypes.POINTER(_SockFilter))]


def _no_network() -> bool:
    """Install the filter; False where this architecture has no table here (the host then says so)."""
    import platform

    arch = _ARCH.get(platform.machine())
    if arch is None or not sys.platform.startswith("linux"):
        return False
    audit_arch, nr_socket, nr_io_uring_setup, nr_seccomp = arch
    ld_w_abs, jeq_k, jge_k, ret_k = 0x20, 0x15, 0x35, 0x06
    deny = _RET_ERRNO | _EACCES
    program = [
        (ld_w_abs, 0, 0, 4),                      # 0: A = arch
        (jeq_k, 1, 0, audit_arch),                # 1: native? skip the next
        (ret_k, 0, 0, deny),                      # 2: a foreign ABI (i386, x32) gets nothing
        (ld_w_abs, 0, 0, 0),                      # 3: A = syscall number
        (jge_k, 3, 0, 0x40000000),                # 4: the x32 ABI's numbers -> 8
        (jeq_k, 3, 0, nr_socket),                 # 5: socket() -> 9
        (jeq_k, 1, 0, nr_io_uring_setup),         # 6: io_uring_setup() -> 8
        (ret_k, 0, 0, _RET_ALLOW),                # 7: anything else
        (ret_k, 0, 0, deny),                      # 8
        (ld_w_abs, 0, 0, 16),                     # 9: A = socket's family (args[0], low word)
        (jeq_k, 0, 1, 1),                         # 10: AF_UNIX -> 11, else 12
        (ret_k, 0, 0, _RET_ALLOW),                # 11
        (ret_k, 0, 0, deny),                      # 12
    ]
    filters = (_SockFilter * len(program))(*[_SockFilter(*f) for f in program])
    prog = _SockFprog(len(program), filters)
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    set_mode_filter, flag_tsync = 1, 1
    if libc.syscall(nr_seccomp, set_mode_filter, flag_tsync, ctypes.byref(prog)) != 0:
        raise OSError(ctypes.get_errno(), "seccomp filter failed")
    return True


def install(bridge_path: str, token: str, max_frame: int, cap: int, no_network: bool = False) -> None:
    """Bind the helpers to this kernel's bridge; called once, right after start-up, before any model code."""
    global _runtime
    if no_network:
        _no_network()
    ns = _shell().user_ns
    # IPython's exit/quit only ask a frontend to close the kernel; ours raise SystemExit
    # as the builtins do in LocalREPL.
    ns["exit"] = ns["quit"] = _exit
    _runtime = _Runtime(ns, _Bridge(bridge_path, token, max_frame), cap)
    # Start-up errors went to the host's log file; from now on raw fd 2 writes go nowhere.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)
    _reply({"ok": True})


def load(path: str, kind: str) -> None:
    """Read the context the host wrote to ``path`` into ``context`` (the host deletes the file)."""
    assert _runtime is not None
    started = time.perf_counter()
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
        value = raw.decode("utf-8", "surrogatepass") if kind == "str" else pickle.loads(raw)  # noqa: S301 - from the host
    except Exception as exc:  # noqa: BLE001 - e.g. a class the kernel cannot import
        _reply({"error": f"{type(exc).__name__}: {exc}"})
        return
    del raw
    _runtime.ns.update(_runtime.names())
    _runtime.ns["context"] = value
    _reply({"ok": True, "seconds": time.perf_counter() - started})


def step(code: str) -> None:
    assert _runtime is not None
    _reply(_runtime.run(code))


def get(name: str) -> None:
    assert _runtime is not None
    _reply(_runtime.get(name))
