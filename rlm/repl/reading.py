"""How a context file becomes root code's ``context``, the same in-process and in the sandbox kernel.

Standard library only: copied into each kernel's run directory as ``_rlm_reading.py``.
Each reader keeps one copy of the text in memory, not two: a text file is decoded
straight from a read-only mapping of it, and ASCII text the host wrote is read into the
string's own buffer.
"""

from __future__ import annotations

import ctypes
import mmap
import os
import pickle
import sys
from typing import Any

#: Kinds of context file: UTF-8 text (lone surrogates kept), text known to be ASCII, a pickle,
#: and a text file of the user's, decoded as UTF-8 with U+FFFD for what is not.
KINDS = ("str", "ascii", "pickle", "file")
_STEP = 1 << 28


def read_text_fd(fd: int, errors: str = "replace") -> str:
    """A file's text, decoded from a read-only mapping: no bytes copy of the whole file."""
    size = os.fstat(fd).st_size
    if size == 0:
        return ""
    with mmap.mmap(fd, size, access=mmap.ACCESS_READ) as mapped:
        return str(mapped, "utf-8", errors)


def read_ascii(fd: int) -> str:
    """ASCII text read straight into a new string's buffer (the writer guarantees every byte is < 0x80).

    ``PyUnicode_New`` gives a compact ASCII string whose bytes follow its header, and
    filling a string no one else holds yet is what C code does with it.
    """
    size = os.fstat(fd).st_size
    new = ctypes.pythonapi.PyUnicode_New
    new.restype, new.argtypes = ctypes.py_object, (ctypes.c_ssize_t, ctypes.c_uint32)
    text: str = new(size, 127)
    view = memoryview((ctypes.c_char * size).from_address(id(text) + sys.getsizeof("") - 1)).cast("B")
    got = 0
    while got < size:
        n = os.preadv(fd, [view[got : got + _STEP]], got)
        if n == 0:
            raise EOFError(f"the context file ended after {got} of {size} bytes")
        got += n
    return text


def read_value(fd: int, kind: str) -> Any:
    """The value a context file of ``kind`` holds, read from its start."""
    if kind == "ascii":
        return read_ascii(fd)
    if kind == "str":
        return read_text_fd(fd, "surrogatepass")
    if kind == "file":
        return read_text_fd(fd)
    if kind == "pickle":
        with os.fdopen(os.dup(fd), "rb") as fh:
            fh.seek(0)
            return pickle.load(fh)
    raise ValueError(f"unknown context kind {kind!r}")
