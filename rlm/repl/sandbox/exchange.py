"""What crosses between the host and a sandbox kernel, outside the bridge: the context going in,
each call's result coming back (a user expression of the execute request), checked field by field.

The context goes in as a file the host writes, streamed (text a slice at a time, pickles
as they are made), so the host never holds a second copy of it; a text file of the
user's goes in as its open descriptor instead (``Payload.source``), read by the kernel.
"""

from __future__ import annotations

import base64
import functools
import json
import os
import pickle
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..base import ExecResult
from ..contexts import Loaded, TextFile, value_of

_SURROGATE = re.compile("[\ud800-\udfff]")
#: A base64 string's repr, and the most of it the host reads (zmq refuses bigger messages anyway).
_B64_REPR = re.compile(r"'[A-Za-z0-9+/=]*'")
_MAX_RESULT = 96 * 2**20


#: Text is encoded and written this many characters at a time.
_SLICE = 1 << 24


@dataclass(frozen=True)
class Payload:
    """How one value reaches the kernel: a file of ``kind`` that ``write(fd)`` fills, or the user's ``source``."""

    kind: str
    write: Callable[[int], None] | None = None
    source: TextFile | None = None


def payload(loaded: Loaded) -> Payload:
    """The payload for a loaded context; raises ``TypeError`` at once if the kernel could never take it."""
    if isinstance(loaded, TextFile):
        return Payload("file", write=functools.partial(_copy_file, loaded), source=loaded)
    if isinstance(loaded, str):
        return Payload("ascii" if loaded.isascii() else "str", write=functools.partial(_write_text, loaded))
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


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _write_text(text: str, fd: int) -> None:
    """UTF-8 (lone surrogates kept), a slice at a time: never the whole text encoded at once."""
    for at in range(0, len(text), _SLICE):
        _write_all(fd, text[at : at + _SLICE].encode("utf-8", "surrogatepass"))


def _write_pickle(value: Any, fd: int) -> None:
    with os.fdopen(os.dup(fd), "wb", buffering=1 << 20) as fh:
        pickle.Pickler(fh, protocol=5).dump(value)


def _copy_file(source: TextFile, fd: int) -> None:
    """The user's file copied in the OS, where the kernel may not be handed its descriptor."""
    src = source.open()
    try:
        left = os.fstat(src).st_size
        while left > 0:
            sent = os.sendfile(fd, src, None, min(left, 1 << 30))
            if sent == 0:
                break
            left -= sent
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
