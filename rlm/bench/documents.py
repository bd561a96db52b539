"""``rlm bench documents``: each reader against the other permissive libraries, and documents made ready in the
sandbox.

Part 1 reads the same files with each library that is installed (the choice in
docs/architecture.md is made from these numbers): PDF with pypdfium2 (ours), pypdf and
pdfminer.six; HTML with selectolax (ours, as Markdown), lxml and the standard library's html.parser;
DOCX with its XML read by lxml (ours) and python-docx. Part 2 times a context from
``repl.start`` until root code can read it, in a warm kernel sandbox and in-process
(``sandbox="local"``): a 1,000-page text PDF, the Python 3.11 docs (Debian's
python3.11-doc: 530 pages), and 100 DOCX files of 50 pages. Every file is made here with
the standard library, so the bench needs no writer. The machine's load is printed with
the numbers: on a shared machine they are noisy.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import io
import os
import random
import resource
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..cli import arguments
from .document_attacks import pdf_bytes

PYTHON_DOCS = "/usr/share/doc/python3.11/html"
_WORDS = ["the", "of", "and", "to", "in", "a", "is", "that", "for", "it", "as", "was", "with", "be", "by", "on",
          "not", "this", "are", "or", "from", "at", "which", "but", "have", "an", "they", "were", "there", "been",
          "one", "all", "we", "their", "has", "would", "when", "if", "so", "harbour", "crane", "ledger", "cargo"]
_W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"


def text_pdf(pages: int, seed: int = 1) -> bytes:
    """A PDF of ``pages`` pages of 60 lines of words each, written by hand (one shared font)."""
    rnd = random.Random(seed)
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b"",
               b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    kids = []
    for n in range(1, pages + 1):
        lines = [" ".join(rnd.choice(_WORDS) for _ in range(14)) + f" p{n}l{i}" for i in range(60)]
        content = b"BT /F1 10 Tf 12 TL 50 800 Td " + b" ".join(b"(%s) '" % line.encode() for line in lines) + b" ET"
        objects.append(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(content), content))
        objects.append(b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents %d 0 R "
                       b"/Resources << /Font << /F1 3 0 R >> >> >>" % (len(objects)))
        kids.append(b"%d 0 R" % len(objects))
    objects[1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (b" ".join(kids), pages)
    return pdf_bytes(objects)


def docx(paragraphs: int, seed: int = 2) -> bytes:
    """A Word file of ``paragraphs`` paragraphs of 50 words (500 are about 50 pages), a heading every 50."""
    rnd = random.Random(seed)
    body = []
    for i in range(paragraphs):
        if i % 50 == 0:
            body.append(f"<w:p><w:pPr><w:pStyle w:val='Heading1'/></w:pPr><w:r><w:t>Section {i // 50 + 1}</w:t>"
                        "</w:r></w:p>")
        words = " ".join(rnd.choice(_WORDS) for _ in range(50))
        body.append(f"<w:p><w:r><w:t>{words}</w:t></w:r></w:p>")
    document = f"<?xml version='1.0'?><w:document xmlns:w='{_W}'><w:body>{''.join(body)}</w:body></w:document>"
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", "<?xml version='1.0'?><Types xmlns='http://schemas.openxmlformats.org/"
                   "package/2006/content-types'><Default Extension='rels' ContentType='application/vnd."
                   "openxmlformats-package.relationships+xml'/><Default Extension='xml' ContentType='application/"
                   "xml'/><Override PartName='/word/document.xml' ContentType='application/vnd.openxmlformats-"
                   "officedocument.wordprocessingml.document.main+xml'/></Types>")
        z.writestr("_rels/.rels", "<?xml version='1.0'?><Relationships xmlns='http://schemas.openxmlformats.org/"
                   "package/2006/relationships'><Relationship Id='rId1' Type='http://schemas.openxmlformats.org/"
                   "officeDocument/2006/relationships/officeDocument' Target='word/document.xml'/></Relationships>")
        z.writestr("word/document.xml", document)
    return out.getvalue()


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    out = fn()
    return time.perf_counter() - started, out


def _compare(name: str, files: list[bytes], readers: dict[str, Callable[[bytes], str]], scale: float = 1.0) -> None:
    """Each installed library on the same files: seconds and characters of text."""
    print(f"\n{name} ({len(files)} files, {sum(map(len, files)) / 2**20:.1f} MB)")
    for label, read in readers.items():
        try:
            seconds, texts = _timed(lambda read=read: [read(f) for f in files])  # type: ignore[misc]
        except ImportError as exc:
            print(f"  {label:<32} not installed ({exc.name})")
            continue
        note = f" (x{scale:g}: measured on 1/{scale:g})" if scale != 1 else ""
        print(f"  {label:<32} {seconds * scale:7.2f} s{note}  {sum(map(len, texts)):>12,} chars")


def _pdf_readers() -> dict[str, Callable[[bytes], str]]:
    def pdfium(data: bytes) -> str:
        from ..repl.documents import pdf

        return "".join(pdf.extract(data)["parts"])

    def pypdf_text(data: bytes) -> str:
        import pypdf

        return "".join(p.extract_text() for p in pypdf.PdfReader(io.BytesIO(data)).pages)

    def pdfminer_text(data: bytes) -> str:
        from pdfminer.high_level import extract_text

        return str(extract_text(io.BytesIO(data)))

    return {"pypdfium2 (rlm's)": pdfium, "pypdf": pypdf_text, "pdfminer.six": pdfminer_text}


def _html_readers() -> dict[str, Callable[[bytes], str]]:
    def ours(data: bytes) -> str:
        from ..repl.documents import markup

        return str(markup.extract(data)["text"])

    def lxml_text(data: bytes) -> str:
        import lxml.html
        from lxml import etree

        root = lxml.html.document_fromstring(data)
        etree.strip_elements(root, "script", "style", "nav", "header", "footer", with_tail=False)
        main = root.find(".//*[@role='main']")
        return str((main if main is not None else root.body).text_content())

    def stdlib_text(data: bytes) -> str:
        from html.parser import HTMLParser

        class Text(HTMLParser):
            def __init__(self) -> None:
                super().__init__()
                self.parts: list[str] = []
                self.skip = 0

            def handle_starttag(self, tag: str, attrs: Any) -> None:
                self.skip += tag in ("script", "style")

            def handle_endtag(self, tag: str) -> None:
                self.skip -= tag in ("script", "style") and self.skip > 0

            def handle_data(self, data: str) -> None:
                if not self.skip:
                    self.parts.append(data)

        parser = Text()
        parser.feed(data.decode("utf-8", "replace"))
        return "".join(parser.parts)

    return {"selectolax, main text as Markdown (rlm's)": ours, "lxml, text of the main part": lxml_text,
            "html.parser (stdlib), all text": stdlib_text}


def _docx_readers() -> dict[str, Callable[[bytes], str]]:
    def ours(data: bytes) -> str:
        from ..repl.documents import office

        return str(office.extract_docx(data)["text"])

    def python_docx(data: bytes) -> str:
        import docx as python_docx_module

        return "\n".join(p.text for p in python_docx_module.Document(io.BytesIO(data)).paragraphs)

    return {"XML with lxml (rlm's)": ours, "python-docx": python_docx}


def _html_files(limit: int | None = None) -> list[Path]:
    return sorted(Path(PYTHON_DOCS).rglob("*.html"))[:limit]


async def _ready(context: Path, sandbox: str) -> tuple[float, dict[str, Any], str]:
    """Seconds from ``repl.start`` until root code can read ``context`` (a warm kernel, or in-process)."""
    from ..repl.kernel_repl import KernelREPL
    from ..repl.local import LocalREPL
    from ..repl.sandbox.config import SandboxConfig
    from ..repl.sandbox.pool import KernelPool

    class NoCalls:
        tool_names: tuple[str, ...] = ()

    host: Any = NoCalls()
    if sandbox == "local":
        local = LocalREPL()
        started = time.perf_counter()
        info = await local.start(context, host)
        seconds = time.perf_counter() - started
        await local.close()
    else:
        pool = KernelPool(dataclasses.replace(SandboxConfig(), warm_kernels=1))
        pool.release(await pool.acquire())  # starts the warm-up of the next one
        while pool.stats()["warm"] < 1:
            await asyncio.sleep(0.05)
        repl = KernelREPL(pool)
        started = time.perf_counter()
        info = await repl.start(context, host)
        seconds = time.perf_counter() - started
        await repl.close()
        await pool.aclose()
    assert info is not None
    return seconds, info.summary, info.description.split("\n", 1)[0][:110]


def run(args: argparse.Namespace) -> int:
    print(f"load average at start: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory(prefix="rlm-bench-documents-") as tmp:
        root = Path(tmp)
        big = root / "1000-pages.pdf"
        big.write_bytes(text_pdf(1000))
        folder = root / "docx"
        folder.mkdir()
        made = docx(500)
        for i in range(100):
            (folder / f"report-{i:03d}.docx").write_bytes(made)
        if not args.skip_libraries:
            readers = _pdf_readers()
            slow = {"pdfminer.six": readers.pop("pdfminer.six")}
            _compare("PDF: the 1,000-page text PDF", [big.read_bytes()], readers)
            _compare("PDF: pdfminer.six on 100 pages like them", [text_pdf(100)], slow, scale=10)
            html = [p.read_bytes() for p in _html_files()]
            if html:
                _compare(f"HTML: the Python 3.11 docs ({PYTHON_DOCS})", html, _html_readers())
            _compare("DOCX: 100 files of 50 pages", [p.read_bytes() for p in sorted(folder.iterdir())],
                     _docx_readers())
        print("\nready for root code (repl.start until `context` is set), host peak RSS growth")
        cases = [("1,000-page text PDF", big), ("100 DOCX of 50 pages", folder)]
        if os.path.isdir(PYTHON_DOCS):
            cases.insert(1, (f"Python 3.11 docs, {len(_html_files())} pages", Path(PYTHON_DOCS)))
        else:
            print(f"  (no {PYTHON_DOCS}: apt-get install python3.11-doc to time the Python docs)")
        for sandbox in args.sandboxes:
            for label, path in cases:
                before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                seconds, summary, first = asyncio.run(_ready(path, sandbox))
                grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
                chars = int(summary.get("chars", 0))
                raw = sum(len(p.read_text("utf-8", "replace")) for p in path.rglob("*.html")) if path.name == "html" \
                    else 0
                pages = sum(d["chars"] for d in summary.get("documents", []) if d["kind"] == "html")
                ratio = f" (the pages: {pages:,}, {pages / raw:.0%} of their HTML's characters)" if raw else ""
                print(f"  {sandbox:<6} {label:<30} {seconds:6.2f} s  {chars:>11,} chars{ratio}  host +{grown:.0f} MB")
                print(f"         {first}")
    print(f"load average at end: {os.getloadavg()[0]:.2f}")
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sandboxes", default=["kernel", "local"], type=arguments.choice_list(("kernel", "local")),
                        help="where to time the contexts (default both)")
    parser.add_argument("--skip-libraries", action="store_true", help="only time the contexts, not the libraries")
