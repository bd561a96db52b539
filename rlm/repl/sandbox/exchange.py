"""What crosses between the host and a sandbox kernel, outside the bridge: the context going in,
each call's result coming back (a user expression of the execute request), checked field by field.

The context goes down a pipe the kernel is handed (text a slice at a time, pickles as
they are made), so the host never holds a second copy of it and nothing touches the
disk; a text file of the user's goes in as its open descriptor instead
(``Payload.source``), read by the kernel, where the kernel may hold one. Documents go as a
bundle of their raw bytes (a file's copied by the OS), to be read in the kernel.
"""

from __future__ import annotations

import base64
import ctypes
import fcntl
import functools
import json
import os
import pickle
import re
import select
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..base import ExecResult
from ..contexts import Loaded, TextFile, value_of
from ..document_context import DocumentContext, write_bundle
from ..reading import ASCII_HEADER

_SURROGATE = re.compile("[\ud800-\udfff]")
#: A base64 string's repr, and the most of it the host reads (zmq refuses bigger messages anyway).
_B64_REPR = re.compile(r"'[A-Za-z0-9+/=]*'")
_MAX_RESULT = 96 * 2**20


#: Text is encoded and written this many characters at a time.
_SLICE = 1 << 24
#: The pipe's buffer, asked for (Linux allows non-root up to /proc/sys/fs/pipe-max-size, 1 MiB).
_PIPE_BYTES = 1 << 20
#: How often a writer blocked on a full pipe looks whether the load has ended.
_POLL_MS = 200


class LoadEnded(Exception):
    """The load ended (answered, failed or timed out) before the writer was done."""


class Pipe:
    """The host's end of the pipe a value goes down: a writer that gives up when the load ends.

    Why: the kernel reads at its own pace, or not at all; a write that blocks forever
    would hold a host thread. The descriptor is non-blocking and each wait is short.
    """

    def __init__(self) -> None:
        self.read_fd, self.fd = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        os.set_blocking(self.read_fd, True)
        try:
            fcntl.fcntl(self.fd, fcntl.F_SETPIPE_SZ, _PIPE_BYTES)
        except OSError:
            pass  # a smaller pipe is slower, not wrong
        self.ended = threading.Event()
        self._lock = threading.Lock()

    def _wait(self) -> None:
        while not self.ended.is_set():
            if _writable(self.fd, _POLL_MS):
                return
        raise LoadEnded

    def write(self, data: bytes | memoryview) -> int:
        view = memoryview(data).cast("B")
        done = 0
        while done < len(view):
            try:
                done += os.write(self.fd, view[done:])
            except BlockingIOError:
                self._wait()
        return done

    def send_file(self, src: int, size: int) -> None:
        sent = 0
        while sent < size:
            try:
                n = os.sendfile(self.fd, src, sent, min(size - sent, 1 << 30))
            except BlockingIOError:
                self._wait()
                continue
            if n == 0:
                return
            sent += n

    def fill(self, write: Callable[[Pipe], None]) -> None:
        """``write(self)``, then close: the kernel reads to the end of the pipe."""
        try:
            write(self)
        finally:
            self.close()

    def close(self) -> None:
        with self._lock:
            if self.fd >= 0:
                os.close(self.fd)
                self.fd = -1


def _writable(fd: int, ms: int) -> bool:
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    return bool(poller.poll(ms))


@dataclass(frozen=True)
class Payload:
    """How one value reaches the kernel: a pipe of ``kind`` that ``write(pipe)`` fills, or the user's ``source``."""

    kind: str
    write: Callable[[Pipe], None] | None = None
    source: TextFile | None = None
    #: How long the kernel may take to make the value ready, beyond a plain load (documents are read there).
    seconds: float = 0.0


def payload(loaded: Loaded) -> Payload:
    """The payload for a loaded context; raises ``TypeError`` at once if the kernel could never take it."""
    if isinstance(loaded, DocumentContext):
        return Payload("bundle", write=functools.partial(_write_bundle, loaded), seconds=loaded.seconds())
    if isinstance(loaded, TextFile):
        return Payload("file", write=functools.partial(_copy_file, loaded), source=loaded)
    if isinstance(loaded, str):
        text = str(loaded)  # a str subclass becomes a plain, compact str
        ascii_only = text.isascii()
        return Payload("ascii" if ascii_only else "str", write=functools.partial(_write_text, text, ascii_only))
    value = value_of(loaded)
    try:
        pickle.Pickler(_Discard(), protocol=5).dump(value)  # fails now, not after the root's first reply
    except (pickle.PicklingError, TypeError, AttributeError) as exc:
        raise TypeError(f"the context cannot go to the sandbox kernel: it is not picklable ({exc}); "
                        "pass plain data, or use RLM(sandbox='local')") from None
    return Payload("pickle", write=functools.partial(_write_pickle, value))


def load_error(what: str, error: str) -> TypeError:
    """The kernel's refusal of a value as the user's error, with what to do where we know it."""
    error = error[:500]
    hint = ("; the kernel's Python lacks a module the value needs: install it there (SandboxConfig(python=...)) "
            "or pass plain data" if error.startswith("ModuleNotFoundError") else "")
    return TypeError(f"the sandbox kernel could not load {what}: {error}{hint}")


class _Discard:
    def write(self, data: bytes) -> int:
        return len(data)


def _write_text(text: str, ascii_only: bool, pipe: Pipe) -> None:
    """UTF-8 (lone surrogates kept), a slice at a time: never the whole text encoded at once.

    ASCII goes first with its length, so the kernel makes the string once and reads into it.
    """
    if ascii_only:
        pipe.write(ASCII_HEADER.pack(len(text)))
        pipe.write(_ascii_bytes(text))
        return
    for at in range(0, len(text), _SLICE):
        pipe.write(text[at : at + _SLICE].encode("utf-8", "surrogatepass"))


def _ascii_bytes(text: str) -> memoryview:
    """A read-only view of an ASCII ``str``'s own bytes: the text is written as it lies in memory.

    Why: slicing and encoding 1 GiB costs 1.6 s here, almost all of it page faults on the
    copies. A compact ASCII string (what ``str`` is, never a subclass) keeps its bytes
    right after its header; ``text`` outlives the view, held by the payload that writes it.
    """
    assert type(text) is str and text.isascii()
    buffer = (ctypes.c_char * len(text)).from_address(id(text) + sys.getsizeof("") - 1)
    return memoryview(buffer).cast("B").toreadonly()


def _write_pickle(value: Any, pipe: Pipe) -> None:
    pickle.Pickler(pipe, protocol=5).dump(value)


def _write_bundle(context: DocumentContext, pipe: Pipe) -> None:
    write_bundle(context, pipe.write, pipe.send_file)


def _copy_file(source: TextFile, pipe: Pipe) -> None:
    """The user's file copied in the OS, where the kernel may not be handed its descriptor."""
    src = source.open()
    try:
        pipe.send_file(src, os.fstat(src).st_size)
    finally:
        os.close(src)


def user_expression(content: dict[str, Any]) -> dict[str, Any] | None:
    """``user_expressions.rlm``: the repr of a base64 string of JSON, each layer checked."""
    expressions = content.get("user_expressions")
    entry = expressions.get("rlm") if isinstance(expressions, dict) else None
    data = entry.get("data") if isinstance(entry, dict) else None
    shown = data.get("text/plain") if isinstance(data, dict) else None
    if not isinstance(shown, str) or len(shown) > _MAX_RESULT or not _B64_REPR.fullmatch(shown):
        return None
    try:
        decoded = json.loads(base64.b64decode(shown[1:-1], validate=True))
    except (ValueError, RecursionError):
        return None
    return decoded if isinstance(decoded, dict) else None


def text_of(value: Any) -> str:
    return value if isinstance(value, str) else ""


def clean(text: str, cap: int) -> str:
    """Text from the kernel as the host keeps it: capped head and tail, no lone surrogates."""
    if len(text) > cap:
        half = cap // 2
        text = f"{text[:half]}\n... [{len(text) - 2 * half} characters omitted] ...\n{text[-half:]}"
    return _SURROGATE.sub("\ufffd", text)


def step_result(data: dict[str, Any], note: str | None, seconds: float, cap: int) -> ExecResult:
    """Untrusted data from the kernel, checked field by field and capped here, not only in the kernel."""
    def text(key: str) -> str | None:
        value = data.get(key)
        return clean(value, cap) if isinstance(value, str) else None

    error = text("error")
    if note is not None:
        error = note if error in (None, "KeyboardInterrupt") else f"{note}\n{error}"
    restored = data.get("restored")
    names = tuple(n[:100] for n in restored[:50] if isinstance(n, str)) if isinstance(restored, list) else ()
    return ExecResult(text("stdout") or "", text("stderr") or "", error, seconds, text("final"), names)
