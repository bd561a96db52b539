"""Documents given as the context, as the host holds them: unread bytes and where they came from.

The host never parses a document (a parser is native code fed untrusted bytes): it knows a
file's format from its name and first bytes (``documents.formats``) and sends the bytes,
down a pipe, to where root code runs; there ``documents.load`` reads each file in a bounded
worker and writes the root's description. What comes back to the host (the description and
a summary for the trace) is checked here like anything else from the kernel.

The wire format of a bundle (``write_bundle``, read by ``reading.read_bundle``): frames of
a JSON header and raw bytes; the first frame is the context's own header.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from typing import Any

from .documents import formats
from .documents.worker import Limits
from .reading import BUNDLE_FRAME

#: A document in a directory over this is skipped; a single document file may be any size.
MAX_DOCUMENT_BYTES = 64 * 2**20
#: What the host keeps of the description and summary the kernel sends back.
MAX_DESCRIPTION_CHARS = 60_000
_MAX_LISTED = 1000
#: How a user's file is opened: never blocking on a FIFO, never becoming a terminal's controller.
READ_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | getattr(os, "O_NOCTTY", 0)


@dataclass(frozen=True)
class Source:
    """One file of a document context: its bytes in memory, or a file to stream (``path``)."""

    name: str
    format: str | None
    data: bytes | None = None
    path: str | None = None
    size: int = 0
    device: int = 0
    inode: int = 0

    def open(self) -> int:
        """A descriptor of the same file the user named (never one swapped in since)."""
        assert self.path is not None
        return open_same(self.path, self.device, self.inode)

    def read(self) -> bytes:
        if self.data is not None:
            return self.data
        fd = self.open()
        try:
            with os.fdopen(os.dup(fd), "rb") as fh:
                return fh.read()
        finally:
            os.close(fd)


@dataclass(frozen=True)
class DocumentContext:
    """A document file, document bytes, or a directory holding documents: read where root code runs."""

    name: str
    sources: tuple[Source, ...]
    directory: bool = False
    left_out: list[tuple[str, str]] = field(default_factory=list)
    limits: Limits = field(default_factory=Limits)

    @property
    def size(self) -> int:
        return sum(s.size for s in self.sources)

    def describe(self) -> str:
        """The host's line for a run's start (the root reads the one written where the documents were read)."""
        if not self.directory:
            [source] = self.sources
            kind = formats.NAMES.get(source.format or "", "text")
            return f"`context` is the {kind} {self.name!r} ({source.size:,} bytes), read where root code runs."
        docs = sum(1 for s in self.sources if s.format)
        return (f"`context` is a dict of {len(self.sources):,} files from the directory {self.name!r} "
                f"({docs:,} documents, {self.size:,} bytes), read where root code runs.")

    def header(self) -> dict[str, Any]:
        return {"name": self.name, "directory": self.directory, "left_out": self.left_out[:5000],
                "limits": {"seconds": self.limits.seconds, "memory_mb": self.limits.memory_mb,
                           "total_seconds": self.limits.total_seconds}}

    def seconds(self) -> float:
        """How long reading may take where root code runs, at most (each file has its own deadline)."""
        docs = sum(1 for s in self.sources if s.format)
        return min(self.limits.total_seconds, docs * self.limits.seconds) + 30.0


@dataclass(frozen=True)
class ContextInfo:
    """What a REPL that read the documents reports: the root's description and the trace's summary."""

    description: str
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def tokens(self) -> int:
        return int(self.summary.get("tokens") or 0)

    @property
    def scans(self) -> list[tuple[int, int]]:
        """The pixels of each page without text (a scan) as ``page_image`` draws it: what the root may look at."""
        return [(int(w), int(h)) for w, h in self.summary.get("scans", [])]


def document_file(path: str, name: str, fmt: str) -> DocumentContext:
    fd = open_regular(path)
    try:
        info = os.fstat(fd)
    finally:
        os.close(fd)
    source = Source(name, fmt, path=os.path.abspath(path), size=info.st_size, device=info.st_dev, inode=info.st_ino)
    return DocumentContext(name, (source,))


def document_bytes(data: bytes | bytearray | memoryview) -> DocumentContext | None:
    """Bytes of a document (a PDF, an OOXML or EPUB zip, HTML, a notebook), or None for text (then not copied)."""
    view = memoryview(data).cast("B")
    head = bytes(view[: formats.HEAD_BYTES])
    fmt = formats.sniff("", head)
    if fmt is None and head.lstrip()[:1] == b"{" and b'"cells"' in bytes(view[:65536]) and (
            b'"nbformat"' in head or b'"nbformat"' in bytes(view[-4096:])):
        fmt = "ipynb"
    if fmt is None:
        return None
    copy = bytes(view)
    return DocumentContext(f"context.{fmt}", (Source(f"context.{fmt}", fmt, data=copy, size=len(copy)),))


def write_bundle(context: DocumentContext, write: Any, send_file: Any) -> None:
    """The bundle, frame by frame: ``write(bytes)`` for headers and held bytes, ``send_file(fd, size)`` for files."""
    import json

    def frame(header: dict[str, Any], size: int) -> None:
        body = json.dumps(header).encode()
        write(BUNDLE_FRAME.pack(len(body), size) + body)

    frame(context.header(), 0)
    for source in context.sources:
        if source.data is not None:
            frame({"name": source.name, "format": source.format}, len(source.data))
            write(source.data)
            continue
        fd = source.open()
        try:
            size = os.fstat(fd).st_size
            frame({"name": source.name, "format": source.format}, size)
            send_file(fd, size)
        finally:
            os.close(fd)


def read_here(context: DocumentContext, name: str = "context") -> tuple[Any, ContextInfo]:
    """Root code's value and the root's description (of the variable ``name``), read in this process's workers
    (``sandbox="local"``)."""
    from ..lm import counter
    from .documents.load import Entry, count_tokens, load

    entries = [Entry(s.name, s.format, s.read()) for s in context.sources]
    loaded = load(entries, directory=context.name if context.directory else None, left_out=context.left_out,
                  limits=context.limits, name=name)
    summary = {**loaded.summary, "tokens": count_tokens(loaded.value, counter.count_tokens)}
    return loaded.value, ContextInfo(loaded.description, summary)


def checked_info(reply: dict[str, Any]) -> ContextInfo:
    """The kernel's description and summary, kept only as far as they have the right types and sizes."""
    description = reply.get("description")
    text = description[:MAX_DESCRIPTION_CHARS] if isinstance(description, str) else ""
    raw: dict[str, Any] = reply["summary"] if isinstance(reply.get("summary"), dict) else {}
    summary: dict[str, Any] = {key: raw[key] for key in ("chars", "tokens")
                               if isinstance(raw.get(key), int) and not isinstance(raw.get(key), bool)}
    docs = []
    for doc in raw.get("documents", [])[:_MAX_LISTED] if isinstance(raw.get("documents"), list) else []:
        if isinstance(doc, dict) and isinstance(doc.get("name"), str) and doc.get("kind") in formats.NAMES:
            docs.append({"name": doc["name"][:300], "kind": doc["kind"],
                         **{k: doc[k] for k in ("pages", "chars", "skipped") if isinstance(doc.get(k), int)},
                         "unit": doc["unit"] if doc.get("unit") in formats.UNITS.values() else "page"})
    failed = [[str(p)[:300], str(w)[:300]] for p, w in (f for f in raw.get("failed", [])[:_MAX_LISTED]
                                                       if isinstance(f, list) and len(f) == 2)] \
        if isinstance(raw.get("failed"), list) else []
    scans = [[w, h] for w, h in (s for s in raw.get("scans", [])[:_MAX_LISTED]
                                 if isinstance(s, list) and len(s) == 2)
             if isinstance(w, int) and isinstance(h, int) and 0 < w <= 10_000 and 0 < h <= 10_000] \
        if isinstance(raw.get("scans"), list) else []
    summary.update(documents=docs, failed=failed, scans=scans)
    return ContextInfo(text, summary)


def open_regular(path: str) -> int:
    """A read-only descriptor of a regular file; never blocks on a FIFO, never keeps a device open."""
    try:
        fd = os.open(path, READ_FLAGS)
    except OSError as exc:
        raise FileNotFoundError(f"context path {path!r} is not a readable file ({exc.strerror})") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise FileNotFoundError(f"context path {path!r} is not a regular file")
    return fd


def open_same(path: str, device: int, inode: int) -> int:
    """``open_regular``, of the very file the user named: one swapped in since raises ``FileNotFoundError``."""
    fd = open_regular(path)
    info = os.fstat(fd)
    if (info.st_dev, info.st_ino) != (device, inode):
        os.close(fd)
        raise FileNotFoundError(f"context file {path!r} was replaced after it was given")
    return fd
