"""A document context made ready for root code, where root code runs: read, assembled, described.

The host sends what it found (``Entry``: a document's raw bytes, or a text file's text)
and never parses a document itself; here each document is read in a bounded worker
(``worker``), becomes a ``Document``, and the root's description is written from what
the readers found. ``page_image`` draws a PDF page the same way.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

from . import describe, worker
from .document import Document, assemble
from .worker import Limits


@dataclass(frozen=True)
class Entry:
    """One file of a context: ``format`` is a reader's name (``formats.NAMES``), or None for text."""

    name: str
    format: str | None
    data: bytes


@dataclass(frozen=True)
class Loaded:
    """Root code's ``context``, the root's description of it, and a summary for the host's trace."""

    value: Any
    description: str
    summary: dict[str, Any] = field(default_factory=dict)


def load(entries: list[Entry], *, directory: str | None = None, left_out: list[tuple[str, str]] | None = None,
         limits: Limits | None = None, name: str = "context") -> Loaded:
    """A ``Document`` for a single file (``directory`` None), else a dict of relative path -> text or Document.

    ``name``: the variable root code will find it in, for the description.
    """
    limits = limits or Limits()
    documents = [e for e in entries if e.format is not None]
    read = iter(worker.read_all([(e.format or "", e.data) for e in documents], limits))
    value: dict[str, Any] = {}
    failed: list[tuple[str, str]] = []
    for entry in entries:
        if entry.format is None:
            value[entry.name] = entry.data.decode("utf-8", "replace")
            continue
        found = next(read)
        if "error" in found:
            failed.append((entry.name, str(found["error"])))
            if directory is None:
                value[entry.name] = Document("", kind=entry.format, name=entry.name, skipped=[str(found["error"])])
            continue
        render = functools.partial(worker.render, entry.data, limits=limits) if entry.format == "pdf" else None
        value[entry.name] = assemble(found, entry.name, render)
    if directory is None:
        [doc] = value.values()
        return Loaded(doc, describe.describe_document(doc, name), describe.summary(doc, failed))
    return Loaded(value, describe.describe_directory(directory, value, failed, left_out or [], name),
                  describe.summary(value, failed))


def count_tokens(value: Any, count: Any) -> int:
    """Tokens of a document context: ``count`` up to a million characters, four characters a token past that."""
    texts = [value] if isinstance(value, str) else list(value.values())
    chars = sum(len(t) for t in texts)
    return sum(count(t) for t in texts) if chars <= 1_000_000 else chars // 4


def from_bundle(header: dict[str, Any], files: list[tuple[dict[str, Any], bytes]], count: Any,
                name: str = "context") -> Loaded:
    """A bundle the host sent (``reading.read_bundle``) made ready: the value, description, summary with tokens."""
    limits = Limits(**{k: v for k, v in (header.get("limits") or {}).items()
                       if k in ("seconds", "memory_mb", "total_seconds")})
    entries = [Entry(str(h.get("name")), h.get("format"), data) for h, data in files]
    loaded = load(entries, directory=str(header.get("name")) if header.get("directory") else None,
                  left_out=[(str(p), str(w)) for p, w in header.get("left_out") or []], limits=limits, name=name)
    return Loaded(loaded.value, loaded.description, {**loaded.summary, "tokens": count_tokens(loaded.value, count)})


def page_image_helper(namespace: dict[str, Any]) -> Any:
    """The REPL's ``page_image(n, path=None, scale=2.0)``: a page of the context's PDF (or of ``context[path]``)."""
    def page_image(n: int, path: Any = None, scale: float = 2.0) -> bytes:
        """Page ``n`` (from 1) of a PDF as PNG bytes: of `context`, or of `context[path]` for a directory."""
        context = namespace.get("context")
        doc = path if isinstance(path, Document) else context
        if isinstance(path, str) and isinstance(context, dict):
            if path not in context:
                raise KeyError(f"page_image(n, path): no {path!r} in context; its PDFs: "
                               f"{[k for k, v in context.items() if getattr(v, 'kind', '') == 'pdf'][:10]}")
            doc = context[path]
        elif isinstance(context, dict) and path is None:
            raise TypeError("page_image(n, path): `context` is a directory; say which PDF, e.g. "
                            "page_image(3, 'report.pdf')")
        if not isinstance(doc, Document):
            raise TypeError("page_image draws pages of a PDF given as the context; this context is not one")
        return doc.page_image(n, scale)

    return page_image
