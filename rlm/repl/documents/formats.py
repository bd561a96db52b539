"""Which format a file is, from its name and first bytes: never from parsing it.

Standard library only: the host calls it to decide what to send to the kernel, the kernel
and the extraction workers to pick a reader. A zip's kind comes from its name, or from the
``mimetype`` member an EPUB, ODF or OOXML package starts with where the name says nothing.
"""

from __future__ import annotations

import os

#: Formats extracted into text by a reader (a ``Document``), by file extension.
EXTENSIONS = {
    ".pdf": "pdf", ".docx": "docx", ".docm": "docx", ".pptx": "pptx", ".pptm": "pptx", ".xlsx": "xlsx",
    ".xlsm": "xlsx", ".html": "html", ".htm": "html", ".xhtml": "html", ".epub": "epub", ".ipynb": "ipynb",
}
#: Text formats read as they are (a plain ``str``): the root reads their markup itself.
TEXT_EXTENSIONS = frozenset({".txt", ".md", ".markdown", ".rst", ".csv", ".tsv", ".json", ".jsonl", ".xml",
                             ".yaml", ".yml", ".toml", ".tex", ".log", ".py", ".org", ".adoc"})
#: How a format is named to the root.
NAMES = {"pdf": "PDF", "docx": "Word document (DOCX)", "pptx": "PowerPoint deck (PPTX)",
         "xlsx": "Excel workbook (XLSX)", "html": "web page (HTML)", "epub": "e-book (EPUB)",
         "ipynb": "Jupyter notebook"}
#: What each format's numbered parts are called.
UNITS = {"pdf": "page", "pptx": "slide", "xlsx": "sheet", "epub": "chapter", "ipynb": "cell", "docx": "page",
         "html": "section"}
_OOXML = {"word/": "docx", "ppt/": "pptx", "xl/": "xlsx"}
#: Documents no reader here takes, by extension: named as such rather than as "binary files".
UNREAD = {".doc": "Word 97-2003", ".ppt": "PowerPoint 97-2003", ".xls": "Excel 97-2003", ".odt": "OpenDocument",
          ".ods": "OpenDocument", ".odp": "OpenDocument", ".pages": "Apple Pages", ".key": "Apple Keynote",
          ".numbers": "Apple Numbers", ".djvu": "DjVu", ".mobi": "Kindle", ".azw3": "Kindle"}
#: Bytes read from the start of a file to know its format.
HEAD_BYTES = 4096


def sniff(name: str, head: bytes) -> str | None:
    """The reader for a file (a key of ``NAMES``), or None for text or anything else."""
    ext = os.path.splitext(name)[1].lower()
    if head.startswith(b"%PDF-") or (ext == ".pdf" and b"%PDF-" in head[:1024]):
        return "pdf"
    if head.startswith(b"PK\x03\x04"):
        by_name = EXTENSIONS.get(ext)
        if by_name in ("docx", "pptx", "xlsx", "epub"):
            return by_name
        if b"mimetypeapplication/epub+zip" in head[:100]:
            return "epub"
        for prefix, kind in _OOXML.items():
            if b"[Content_Types].xml" in head and prefix.encode() in head:
                return kind
        return None
    named = EXTENSIONS.get(ext)
    if named in ("html", "ipynb"):
        return named
    if ext in TEXT_EXTENSIONS:
        return None
    start = head.lstrip()[:512].lower()
    if start.startswith((b"<!doctype html", b"<html")) or (start.startswith(b"<?xml") and b"<html" in start):
        return "html"
    return None


def is_binary(head: bytes) -> bool:
    """Not text: a NUL byte in the first block, as ``git`` and ``grep`` decide."""
    return b"\0" in head[:8192]
