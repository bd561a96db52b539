"""How a context becomes root code's ``context``: a user's text file (in-process too) or what the host pipes in.

Standard library only: copied into each kernel's run directory as ``_rlm_reading.py``.
Each reader keeps one copy of the text in memory, not two: a text file is decoded
straight from a read-only mapping of it, ASCII text the host sends down a pipe is read
into the string's own buffer, and other text is decoded a block at a time as it arrives.
"""

from __future__ import annotations

import codecs
import ctypes
import mmap
import os
import pickle
import stat
import struct
import sys
from typing import Any

#: Kinds of context: UTF-8 text (lone surrogates kept), text known to be ASCII, a pickle,
#: a text file of the user's, decoded as UTF-8 with U+FFFD for what is not, and a bundle of
#: files (documents to read where root code runs; ``document_context.write_bundle``).
KINDS = ("str", "ascii", "pickle", "file", "bundle")
_STEP = 1 << 28
#: What the host sends down a pipe before ASCII text: its length, so the string is made once.
ASCII_HEADER = struct.Struct("<Q")
_BLOCK = 1 << 20
#: A bundle's frame: the length of its JSON header, then of its bytes.
BUNDLE_FRAME = struct.Struct("<IQ")


def read_text_fd(fd: int, errors: str = "replace") -> str:
    """A file's text, decoded from a read-only mapping: no bytes copy of the whole file."""
    size = os.fstat(fd).st_size
    if size == 0:
        return ""
    with mmap.mmap(fd, size, access=mmap.ACCESS_READ) as mapped:
        return str(mapped, "utf-8", errors)


def read_ascii(fd: int, size: int) -> str:
    """``size`` bytes of ASCII from a pipe, read straight into a new string's buffer.

    The writer guarantees every byte is < 0x80. ``PyUnicode_New`` gives a compact ASCII
    string whose bytes follow its header, and filling a string no one else holds yet is
    what C code does with it.
    """
    new = ctypes.pythonapi.PyUnicode_New
    new.restype, new.argtypes = ctypes.py_object, (ctypes.c_ssize_t, ctypes.c_uint32)
    text: str = new(size, 127)
    view = memoryview((ctypes.c_char * size).from_address(id(text) + sys.getsizeof("") - 1)).cast("B")
    got = 0
    while got < size:
        n = os.readv(fd, [view[got : got + _STEP]])
        if n == 0:
            raise EOFError(f"the context ended after {got} of {size} bytes")
        got += n
    return text


def _read_exact(fd: int, size: int) -> bytes:
    data = b""
    while len(data) < size:
        more = os.read(fd, size - len(data))
        if not more:
            raise EOFError(f"the context ended after {len(data)} of {size} bytes")
        data += more
    return data


def _decode_stream(fd: int, errors: str) -> str:
    """UTF-8 from a pipe, decoded a block at a time: the bytes are never all held at once."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors)
    parts = []
    while block := os.read(fd, _BLOCK):
        parts.append(decoder.decode(block))
    parts.append(decoder.decode(b"", final=True))
    return "".join(parts)


def read_bundle(fd: int) -> tuple[dict[str, Any], list[tuple[dict[str, Any], bytes]]]:
    """A bundle from a pipe: its own header, then each file's header and bytes."""
    import json

    frames = []
    with os.fdopen(os.dup(fd), "rb") as fh:
        while head := fh.read(BUNDLE_FRAME.size):
            if len(head) < BUNDLE_FRAME.size:
                raise EOFError("the bundle ended inside a frame header")
            header_size, size = BUNDLE_FRAME.unpack(head)
            header = json.loads(fh.read(header_size))
            data = fh.read(size)
            if len(data) < size:
                raise EOFError(f"the bundle ended after {len(data)} of {size} bytes of {header.get('name')!r}")
            frames.append((header, data))
    if not frames:
        raise EOFError("the bundle was empty")
    return frames[0][0], frames[1:]


def read_value(fd: int, kind: str) -> Any:
    """The value of ``kind`` the host sends down a pipe, or the text of a user's file (``file``) it hands over."""
    if kind not in KINDS:
        raise ValueError(f"unknown context kind {kind!r}")
    if not stat.S_ISFIFO(os.fstat(fd).st_mode):
        if kind != "file":
            raise ValueError(f"a {kind} context comes down a pipe, not a file")
        return read_text_fd(fd)
    if kind == "ascii":
        return read_ascii(fd, ASCII_HEADER.unpack(_read_exact(fd, ASCII_HEADER.size))[0])
    if kind == "pickle":
        with os.fdopen(os.dup(fd), "rb") as fh:
            return pickle.load(fh)
    if kind == "bundle":
        return read_bundle(fd)
    return _decode_stream(fd, "surrogatepass" if kind == "str" else "replace")
