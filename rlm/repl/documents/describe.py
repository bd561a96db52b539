"""What the root is told about a document context, made where the documents were read.

The root reads this before any code runs: the format, the size in pages (slides, sheets,
cells, chapters) and characters, how to reach a page and cite one, and everything that
could not be extracted, with the reason.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from .document import Document
from .formats import NAMES

PREVIEW_CHARS = 500
#: Files named one by one in a directory's description; the rest are counted.
LISTED = 30


def _fence(text: str) -> str:
    return f"```text\n{text}\n```"


def _size(doc: Document) -> str:
    pages = f"{len(doc.pages):,} {doc.unit}{'s' if len(doc.pages) != 1 else ''}, " if doc.pages else ""
    return f"{pages}{len(doc):,} characters"


def _reach(doc: Document, name: str) -> str:
    """How root code gets at the parts and cites them."""
    if doc.pages:
        unit = doc.unit
        text = (f"Each {unit} starts with a line like `[{doc.labels[0]}]`. "
                f"`{name}.page(n)` is the text of {unit} n (from 1), `{name}.pages` the list of them, "
                f"`{name}.page_of(i)` the {unit} that character i is on (to cite what a search found).")
    else:
        text = "It has no page numbers; headings are lines starting with #."
        if doc.headings:
            shown = "; ".join(doc.headings[:12]) + ("; ..." if len(doc.headings) > 12 else "")
            text += f" Its {len(doc.headings):,} headings: {shown}"
    if doc.kind == "pdf":
        draw = "page_image(n)" if name == "context" else f"{name}.page_image(n)"
        text += (f" `{draw}` draws page n as PNG bytes, to show a sub-model a figure or a scan: "
                 f"llm_query(prompt, images=[{draw}]).")
    return text


def describe_document(doc: Document, name: str = "context") -> str:
    """One document as root code's ``context`` (or the variable ``name``)."""
    kind = NAMES.get(doc.kind, doc.kind)
    title = doc.info.get("Title") or doc.info.get("title")
    if str(title).strip().lower() in ("untitled", "none", ""):
        title = None
    text = (f"`{name}` is a str: the text extracted from the {kind} {doc.name!r} ({_size(doc)})"
            f"{f', titled {title!r}' if title else ''}.\n{_reach(doc, name)}")
    if doc.skipped:
        text += "\nNot extracted: " + "; ".join(doc.skipped) + "."
    if not doc.strip():
        text += "\nThere is no text at all."
    return text + f"\nIts first {min(PREVIEW_CHARS, len(doc))} characters:\n{_fence(doc[:PREVIEW_CHARS])}"


def describe_directory(root: str, value: dict[str, Any], failed: list[tuple[str, str]],
                       left_out: list[tuple[str, str]], name: str = "context") -> str:
    """A directory's files and documents as root code's ``context`` (or ``name``): a dict of relative path -> text."""
    chars = sum(len(v) for v in value.values())
    docs = [d for d in value.values() if isinstance(d, Document)]
    text = (f"`{name}` is a dict of {len(value):,} files from the directory {root!r}: relative path -> text "
            f"({chars:,} characters in all).")
    if docs:
        kinds = Counter(NAMES.get(d.kind, d.kind) for d in docs)
        text += (f"\n{len(docs):,} of them are documents whose text was extracted ("
                 + ", ".join(f"{n:,} {k}" for k, n in kinds.most_common()) + "). A document's value is a str that "
                 "also has `.page(n)` (the text of page, slide, sheet, cell or chapter n, from 1), `.pages`, "
                 "`.page_of(i)` (the part that character i is on, to cite), `.kind`, `.headings` and `.skipped`; "
                 "each part starts with a line like `[page 3]`.")
        if any(d.kind == "pdf" for d in docs):
            draw = "page_image(n, path)" if name == "context" else f"{name}[path].page_image(n)"
            text += (f" `{draw}` draws page n of the PDF at `path` as PNG bytes, to show a sub-model a "
                     f"figure or a scan: llm_query(prompt, images=[{draw}]).")
    lines = []
    for path, item in list(value.items())[:LISTED]:
        if isinstance(item, Document):
            lines.append(f"{path!r} ({NAMES.get(item.kind, item.kind)}, {_size(item)})")
        else:
            lines.append(f"{path!r} (text, {len(item):,} characters)")
    text += "\nFiles: " + ", ".join(lines) + (f", ... ({len(value) - LISTED:,} more)" if len(value) > LISTED else "")
    partial = [(p, d) for p, d in value.items() if isinstance(d, Document) and d.skipped]
    if partial:
        shown = "; ".join(f"{p!r}: {', '.join(d.skipped)}" for p, d in partial[:10])
        text += f"\nPartly extracted: {shown}{'; ...' if len(partial) > 10 else ''}."
    if failed:
        shown = "; ".join(f"{p!r}: {why}" for p, why in failed[:10])
        more = "; ..." if len(failed) > 10 else ""
        text += f"\nNot extracted ({len(failed):,} documents, not in `{name}`): {shown}{more}."
    if left_out:
        by_reason = Counter(why for _, why in left_out)
        parts = []
        for why, n in by_reason.most_common():
            examples = [p for p, w in left_out if w == why][:5]
            parts.append(f"{n:,} {why} ({', '.join(examples)}{', ...' if n > 5 else ''})")
        text += f"\nNot in `{name}`: " + "; ".join(parts) + "."
    return text


def summary(value: Any, failed: list[tuple[str, str]]) -> dict[str, Any]:
    """What the host's trace and live view show: each document's format and pages (plain data)."""
    items = {"": value} if isinstance(value, Document) else value
    documents = [{"name": d.name or path, "kind": d.kind, "pages": len(d.pages), "unit": d.unit, "chars": len(d),
                  "skipped": len(d.skipped)} for path, d in items.items() if isinstance(d, Document)]
    chars = len(value) if isinstance(value, str) else sum(len(v) for v in value.values())
    scans = [size for d in items.values() if isinstance(d, Document) for size in d.info.get("scan_sizes", [])]
    return {"chars": chars, "documents": documents[:1000], "failed": [[p, w] for p, w in failed[:1000]],
            "scans": scans[:1000]}
