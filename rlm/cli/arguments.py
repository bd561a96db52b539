"""Command-line arguments checked as they are parsed, so a bad one costs one line and exit 2, before any work.

Each function here is an ``argparse`` type: it returns the value or raises
``ArgumentTypeError`` with what is wrong and what to pass instead. A path is looked at,
not read: existence, kind, size, and the first 8 kB to tell a binary file (a NUL byte, as
a directory context tells one) or an SQLite file (its header).
"""

from __future__ import annotations

import argparse
import math
import os
import stat
from collections.abc import Callable, Sequence
from typing import TypeVar

SNIFF_BYTES = 8192
SQLITE_HEADER = b"SQLite format 3\0"
#: The first bytes of documents, binary files that are not refused as binary (PDF; zip: DOCX, PPTX, XLSX, EPUB).
DOCUMENT_HEADERS = (b"%PDF-", b"PK\x03\x04")

Check = Callable[[str], str]
N = TypeVar("N", int, float)


def _bad(message: str) -> argparse.ArgumentTypeError:
    return argparse.ArgumentTypeError(message)


def is_binary(head: bytes) -> bool:
    """A NUL byte in the first 8 kB, the test a directory context applies to each file."""
    return b"\0" in head


def _regular(text: str, wanted: str, *, directory: bool = False) -> bytes | None:
    """The first 8 kB of the regular file ``text`` (None for a directory, where ``directory`` allows one);
    a missing path raises ``FileNotFoundError``, anything else that is not a readable file ``ArgumentTypeError``.
    Looked at before it is opened, so a FIFO is never waited on."""
    try:
        info = os.stat(text)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise _bad(f"{text}: {exc.strerror}; pass {wanted}") from None
    if stat.S_ISDIR(info.st_mode):
        if directory:
            return None
        raise _bad(f"{text} is a directory; pass {wanted}")
    if not stat.S_ISREG(info.st_mode):
        raise _bad(f"{text} is not a regular file (a FIFO, a socket or a device); pass {wanted}")
    try:
        with open(text, "rb") as fh:
            return fh.read(SNIFF_BYTES)
    except OSError as exc:
        raise _bad(f"{text} cannot be read ({exc.strerror}); pass {wanted}") from None


def input_file(wanted: str, *, directory: bool = False, binary: Callable[[bytes], bool] | None = None,
               stdin: bool = False) -> Check:
    """A file to read, not empty and not binary (unless ``binary(head)`` accepts it); ``wanted`` says what to pass.

    ``directory``: a directory is accepted too; ``stdin``: so is ``-``.
    """

    def check(text: str) -> str:
        if stdin and text == "-":
            return text
        try:
            head = _regular(text, wanted, directory=directory)
        except FileNotFoundError:
            raise _bad(f"{text}: no such file; pass {wanted}") from None
        if head is None:
            return text
        if not head:
            raise _bad(f"{text} is empty; pass {wanted}")
        if is_binary(head) and not (binary is not None and binary(head)):
            raise _bad(f"{text} is a binary file; pass {wanted}")
        return text

    return check


def input_dir(wanted: str) -> Check:
    """A directory that exists (to read from)."""

    def check(text: str) -> str:
        if not os.path.exists(text):
            raise _bad(f"{text}: no such directory; pass {wanted}")
        if not os.path.isdir(text):
            raise _bad(f"{text} is not a directory; pass {wanted}")
        return text

    return check


def is_document(head: bytes) -> bool:
    """A binary file that is a document (PDF, or zip-based DOCX, PPTX, XLSX, EPUB): not refused as binary,
    since a context loader reads documents as such (docs/usage.md says which)."""
    return head.startswith(DOCUMENT_HEADERS)


def sqlite_file(wanted: str, *, new: bool) -> Check:
    """An SQLite file; ``new``: a missing or empty file is fine too (it becomes one)."""

    def check(text: str) -> str:
        try:
            head = _regular(text, wanted)
        except FileNotFoundError:
            if new:
                return _writable_file(text, wanted)
            raise _bad(f"{text}: no such file; pass {wanted}") from None
        if not head and new:
            return text
        if not head or not head.startswith(SQLITE_HEADER):
            raise _bad(f"{text} is {'empty' if not head else 'not an SQLite file'}; pass {wanted}")
        return text

    return check


def _writable_file(text: str, wanted: str, *, made: bool = True) -> str:
    """``made``: missing directories above the file are made on writing; else its directory must exist."""
    parent = os.path.dirname(os.path.abspath(text))
    if not made and not os.path.isdir(parent):
        raise _bad(f"{text}: no such directory {os.path.dirname(text) or parent}; pass {wanted}")
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise _bad(f"{text}: {parent} is not a directory; pass {wanted}")
    return text


def output_file(wanted: str) -> Check:
    """A file to write (it is replaced): not a directory, in a directory that exists."""

    def check(text: str) -> str:
        if os.path.isdir(text):
            raise _bad(f"{text} is a directory; pass {wanted}")
        return _writable_file(text, wanted, made=False)

    return check


def output_dir(wanted: str) -> Check:
    """A directory to write into: an existing one, or a path where one can be made."""

    def check(text: str) -> str:
        if os.path.exists(text) and not os.path.isdir(text):
            raise _bad(f"{text} is a file, not a directory; pass {wanted}")
        _writable_file(os.path.join(text, "-"), wanted)
        return text

    return check


def number(kind: Callable[[str], N], low: float, high: float = math.inf) -> Callable[[str], N]:
    """A number (``int`` or ``float``) in [low, high]."""
    what = "an integer" if kind is int else "a number"

    def check(text: str) -> N:
        try:
            value = kind(text)
        except ValueError:
            raise _bad(f"expected {what}, got {text!r}") from None
        if not low <= value <= high:
            raise _bad(f"expected {what} {f'>= {low:g}' if high == math.inf else f'from {low:g} to {high:g}'}, "
                       f"got {text}")
        return value

    return check


def number_list(kind: Callable[[str], N], low: float, high: float = math.inf) -> Callable[[str], list[N]]:
    """Comma-separated numbers, each in [low, high]."""
    one = number(kind, low, high)

    def check(text: str) -> list[N]:
        values = [one(part.strip()) for part in text.split(",") if part.strip()]
        if not values:
            raise _bad(f"expected comma-separated numbers, got {text!r}")
        return values

    return check


def choice_list(choices: Sequence[str]) -> Callable[[str], list[str]]:
    """Comma-separated names, each one of ``choices``."""

    def check(text: str) -> list[str]:
        names = [part.strip() for part in text.split(",") if part.strip()]
        wrong = [n for n in names if n not in choices]
        if wrong or not names:
            raise _bad(f"{', '.join(map(repr, wrong)) or repr(text)}: choose from {', '.join(choices)} "
                       "(comma-separated)")
        return names

    return check
