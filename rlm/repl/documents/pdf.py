"""PDF: the text layer of each page with pypdfium2 (PDFium, BSD/Apache), and pages drawn as PNG.

Why PDFium: on this machine it extracts a 1,000-page PDF in about 1 s, pypdf in 3.5 s and
pdfminer.six in about 30 s (``rlm bench documents``, docs/performance.md), and it is the
renderer Chrome ships, so scanned pages can be drawn for a vision model too. A page whose
text layer is empty but which has images is reported as having no text layer.
"""

from __future__ import annotations

import struct
import zlib
from typing import Any

#: PDFium's error codes, as the root is told them.
_ERRORS = {1: "an unknown PDFium error", 2: "the file is missing", 3: "not a PDF, or damaged beyond repair",
           4: "encrypted: it needs a password", 5: "an unsupported security scheme", 6: "a page is damaged"}
#: Pixels of a drawn page at most (about 4,000 x 5,000): a larger page is drawn smaller.
MAX_PIXELS = 20_000_000


def _open(data: bytes) -> Any:
    import pypdfium2 as pdfium

    try:
        return pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        code = getattr(exc, "err_code", None)
        raise ValueError(_ERRORS.get(code, str(exc)) if isinstance(code, int) else f"unreadable ({exc})") from None


def extract(data: bytes, part: int = 0, of: int = 1) -> dict[str, Any]:
    """The text of each page, and which have no text layer or hold images; of share ``part`` of ``of`` only.

    A large PDF is read in shares by workers side by side; ``merge`` joins their results.
    """
    doc = _open(data)
    try:
        count = len(doc)
        parts, labels, blank, imaged, sizes = [], [], [], [], {}
        for i in range(count * part // of, count * (part + 1) // of):
            page = doc[i]
            try:
                textpage = page.get_textpage()
                try:
                    text = textpage.get_text_range().replace("\r\n", "\n").replace("\r", "\n")
                finally:
                    textpage.close()
                if _has_image(page.raw):
                    imaged.append(i + 1)
                    sizes[i + 1] = _drawn_size(*page.get_size())
            finally:
                page.close()
            if not text.strip():
                blank.append(i + 1)
            parts.append(text)
            labels.append(f"page {i + 1}")
        info = {k: v for k, v in doc.get_metadata_dict(skip_empty=True).items() if k in ("Title", "Author", "Subject")}
    finally:
        doc.close()
    scans = [sizes[n] for n in blank if n in sizes]
    return {"kind": "pdf", "unit": "page", "parts": parts, "labels": labels, "skipped": _skipped(blank, imaged),
            "info": {"pages": count, "blank_pages": blank, "image_pages": imaged, "scan_sizes": scans, **info}}


def _drawn_size(width: float, height: float, scale: float = 2.0) -> list[int]:
    """The pixels ``render`` draws a page of ``width`` x ``height`` points in, at ``scale``."""
    scale = min(scale, (MAX_PIXELS / max(1.0, width * height)) ** 0.5)
    return [max(1, round(width * scale)), max(1, round(height * scale))]


def _has_image(page: Any, depth: int = 0) -> bool:
    """Does the page (or a form on it, two levels down) draw an image? Raw calls: no object per text run."""
    import pypdfium2.raw as pdfium_c

    count = pdfium_c.FPDFFormObj_CountObjects(page) if depth else pdfium_c.FPDFPage_CountObjects(page)
    get = pdfium_c.FPDFFormObj_GetObject if depth else pdfium_c.FPDFPage_GetObject
    for j in range(count):
        obj = get(page, j)
        kind = pdfium_c.FPDFPageObj_GetType(obj)
        if kind == pdfium_c.FPDF_PAGEOBJ_IMAGE or (kind == pdfium_c.FPDF_PAGEOBJ_FORM and depth < 2
                                                   and _has_image(obj, depth + 1)):
            return True
    return False


def merge(pieces: list[dict[str, Any]]) -> dict[str, Any]:
    """One PDF's result from the results of its page ranges, in order; what was skipped said once."""
    first = pieces[0]
    parts = [p for piece in pieces for p in piece["parts"]]
    labels = [label for piece in pieces for label in piece["labels"]]
    blank = [n for piece in pieces for n in piece["info"]["blank_pages"]]
    imaged = [n for piece in pieces for n in piece["info"]["image_pages"]]
    scans = [size for piece in pieces for size in piece["info"]["scan_sizes"]]
    info = {**first["info"], "blank_pages": blank, "image_pages": imaged, "scan_sizes": scans}
    return {**first, "parts": parts, "labels": labels, "skipped": _skipped(blank, imaged), "info": info}


def _skipped(blank: list[int], imaged: list[int]) -> list[str]:
    skipped = []
    imaged_set = set(imaged)
    scanned = [p for p in blank if p in imaged_set]
    if scanned:
        skipped.append(f"{_pages(scanned)}: no text layer, only images (scanned?); look with page_image(n)")
    empty = [p for p in blank if p not in imaged_set]
    if empty:
        skipped.append(f"{_pages(empty)}: no text (blank, or drawn as shapes)")
    blank_set = set(blank)
    figures = [p for p in imaged if p not in blank_set]
    if figures:
        skipped.append(f"images on {_pages(figures)}: figures are not text; page_image(n) draws a page")
    return skipped


def _pages(numbers: list[int]) -> str:
    """``page 3`` or ``pages 1-4, 9``: runs joined, as a reader writes them."""
    runs: list[list[int]] = []
    for n in numbers:
        if runs and runs[-1][-1] == n - 1:
            runs[-1].append(n)
        else:
            runs.append([n])
    shown = ", ".join(f"{r[0]}-{r[-1]}" if len(r) > 1 else str(r[0]) for r in runs[:20])
    return f"{'pages' if len(numbers) > 1 else 'page'} {shown}{', ...' if len(runs) > 20 else ''}"


def render(data: bytes, n: int, scale: float) -> bytes:
    """Page ``n`` (from 1) as PNG bytes, drawn at ``scale`` (1 is 72 dpi), at most ``MAX_PIXELS``."""
    import pypdfium2.raw as pdfium_c

    doc = _open(data)
    try:
        if not 1 <= n <= len(doc):
            raise IndexError(f"page {n}: the PDF has {len(doc)} pages")
        page = doc[n - 1]
        try:
            width, height = page.get_size()
            scale = min(scale, (MAX_PIXELS / max(1.0, width * height)) ** 0.5)
            bitmap = page.render(scale=scale, rev_byteorder=True)
            try:
                channels = 4 if bitmap.format in (pdfium_c.FPDFBitmap_BGRA, pdfium_c.FPDFBitmap_BGRx) else 3
                return png(bytes(bitmap.buffer), bitmap.width, bitmap.height, bitmap.stride, channels=channels)
            finally:
                bitmap.close()
        finally:
            page.close()
    finally:
        doc.close()


def png(pixels: bytes, width: int, height: int, stride: int, *, channels: int = 3) -> bytes:
    """RGB or RGBA rows as a PNG file (no Pillow needed): each row filtered 'none', zlib-compressed."""
    if channels not in (3, 4):
        raise ValueError(f"cannot write {channels}-channel pixels as PNG")
    row = width * channels
    raw = b"".join(b"\0" + pixels[y * stride : y * stride + row] for y in range(height))

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2 if channels == 3 else 6, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b"")
