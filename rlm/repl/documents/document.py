"""``Document``: a document's extracted text as root code reads it, a ``str`` that knows its pages.

Why a ``str``: slicing, ``re``, ``chunk`` and ``llm_query(f"...{context[a:b]}")`` work on it
as on any text, and every piece carries the ``[page 3]`` lines it spans, so a sub-model
can cite pages. What a reader knew besides the text rides along as attributes: the parts
(pages, slides, sheets, cells, chapters) one by one, the headings, what could not be
extracted and why. Standard library only.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence
from typing import Any

#: The line that starts each part in the text: ``[page 3]``, ``[slide 2: Results]``.
MARKER = "[{label}]"


class Document(str):
    """The text of one document; ``page(n)``, ``pages``, ``page_of(i)``, ``kind``, ``name``, ``skipped``.

    Example::

        context.page(3)                          # page 3's text (slide 3, sheet 3, ...)
        m = re.search("revenue", context)
        context.page_of(m.start())               # the page it is on, to cite
        page_image(3)                            # PNG bytes of a PDF page, for llm_query(images=...)
    """

    kind: str
    name: str
    unit: str
    pages: list[str]
    labels: list[str]
    headings: list[str]
    skipped: list[str]
    info: dict[str, Any]
    _starts: list[int]
    _render: Callable[[int, float], bytes] | None

    def __new__(cls, text: str, *, kind: str = "text", name: str = "", unit: str = "page",
                pages: Sequence[str] = (), labels: Sequence[str] = (), headings: Sequence[str] = (),
                skipped: Sequence[str] = (), info: dict[str, Any] | None = None, starts: Sequence[int] = (),
                render: Callable[[int, float], bytes] | None = None) -> Document:
        doc = super().__new__(cls, text)
        doc.kind, doc.name, doc.unit = kind, name, unit
        doc.pages, doc.labels, doc.headings = list(pages), list(labels), list(headings)
        doc.skipped, doc.info = list(skipped), dict(info or {})
        doc._starts, doc._render = list(starts), render
        return doc

    def __reduce__(self) -> tuple[Any, ...]:
        """A copy without the renderer (``rlm_query(q, context)`` sends the text, as for any str)."""
        return (_rebuild, (str(self), self.kind, self.name, self.unit, self.pages, self.labels, self.headings,
                           self.skipped, self.info, self._starts))

    def page(self, n: int) -> str:
        """The text of page ``n`` (slide, sheet, cell, chapter: ``unit``), counted from 1."""
        if not self.pages:
            raise IndexError(f"{self.name or 'this document'} has no pages: search its text "
                             "(headings are lines starting with #)")
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= len(self.pages):
            raise IndexError(f"{self.unit} {n!r} of {self.name or 'this document'}: it has {len(self.pages)} "
                             f"{self.unit}s, numbered 1 to {len(self.pages)}")
        return self.pages[n - 1]

    def page_of(self, index: int) -> int:
        """The number of the page (slide, ...) that character ``index`` of this text is on (0 before the first)."""
        if index < 0:
            index += len(self)
        return bisect.bisect_right(self._starts, index)

    def page_image(self, n: int, scale: float = 2.0) -> bytes:
        """Page ``n`` of a PDF drawn as PNG bytes (``scale`` 2 is 144 dpi), for ``llm_query(images=[...])``."""
        if self._render is None:
            raise TypeError(f"{self.name or 'this document'} is a {self.kind}, not a PDF: only PDF pages are "
                            "drawn as images")
        self.page(n)
        if not isinstance(scale, (int, float)) or not 0.1 <= scale <= 8:
            raise ValueError(f"page_image(scale={scale!r}): use a number from 0.1 to 8 (2 is 144 dpi)")
        return self._render(n, float(scale))

    def __repr__(self) -> str:
        parts = f", {len(self.pages)} {self.unit}s" if self.pages else ""
        return f"<Document {self.name!r}: {self.kind}{parts}, {len(self):,} characters>"


def _rebuild(text: str, kind: str, name: str, unit: str, pages: list[str], labels: list[str],
             headings: list[str], skipped: list[str], info: dict[str, Any], starts: list[int]) -> Document:
    return Document(text, kind=kind, name=name, unit=unit, pages=pages, labels=labels, headings=headings,
                    skipped=skipped, info=info, starts=starts)


def assemble(extracted: dict[str, Any], name: str, render: Callable[[int, float], bytes] | None = None) -> Document:
    """A ``Document`` from what a reader returned: ``parts`` and ``labels`` joined under marker lines, or ``text``."""
    parts: list[str] = list(extracted.get("parts") or [])
    labels: list[str] = list(extracted.get("labels") or [])
    starts: list[int] = []
    if parts:
        pieces, at = [], 0
        for label, text in zip(labels, parts, strict=True):
            block = f"{MARKER.format(label=label)}\n{text.strip()}\n\n"
            starts.append(at)
            pieces.append(block)
            at += len(block)
        text = "".join(pieces).rstrip("\n") + "\n"
    else:
        text = str(extracted.get("text") or "")
    return Document(text, kind=str(extracted.get("kind", "text")), name=name, unit=str(extracted.get("unit", "page")),
                    pages=[p.strip() for p in parts], labels=labels, headings=list(extracted.get("headings") or []),
                    skipped=list(extracted.get("skipped") or []), info=dict(extracted.get("info") or {}),
                    starts=starts, render=render)
