"""Hostile documents as the context: rows of ``rlm bench sandbox-attacks`` and files for the tests.

A parser is native code fed untrusted bytes. Each file here is made with the standard
library alone (no writer could be asked to make them): zip bombs in the three zip formats,
an XML entity bomb, a PDF of a million objects, PDFs whose forms draw themselves, a
truncated PDF and DOCX, a password-protected PDF. Each must end as one line saying why,
in what the root is told, within its deadline, with the host neither hung, dead nor bloated.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

#: Bytes a zip bomb's one member expands to: past the readers' 256 MB cap per member.
BOMB_BYTES = 512 * 2**20
_OOXML_TYPES = ("<?xml version='1.0'?><Types xmlns='http://schemas.openxmlformats.org/package/2006/content-types'>"
                "<Default Extension='xml' ContentType='application/xml'/></Types>")


def _bomb(path: Path, member: str, extra: dict[str, str]) -> Path:
    """A zip whose ``member`` is ``BOMB_BYTES`` of spaces: about 0.5 MB on disk."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as z:
        for name, text in extra.items():
            z.writestr(name, text)
        with z.open(member, "w", force_zip64=True) as out:
            block = b" " * (16 * 2**20)
            for _ in range(BOMB_BYTES // len(block)):
                out.write(block)
    return path


def zip_bomb_docx(path: Path) -> Path:
    return _bomb(path, "word/document.xml", {"[Content_Types].xml": _OOXML_TYPES})


def zip_bomb_xlsx(path: Path) -> Path:
    workbook = ("<workbook xmlns='http://schemas.openxmlformats.org/spreadsheetml/2006/main'><sheets/></workbook>")
    return _bomb(path, "xl/sharedStrings.xml", {"[Content_Types].xml": _OOXML_TYPES, "xl/workbook.xml": workbook})


def zip_bomb_epub(path: Path) -> Path:
    return _bomb(path, "META-INF/container.xml", {"mimetype": "application/epub+zip"})


def entity_bomb_xlsx(path: Path) -> Path:
    """A billion laughs in the shared strings: entities are never expanded, so it is plain text."""
    lol = "<!DOCTYPE lolz [<!ENTITY a 'aaaaaaaaaa'>" + "".join(
        f"<!ENTITY {chr(98 + i)} '{('&' + chr(97 + i) + ';') * 10}'>" for i in range(9)) + "]>"
    shared = (f"<?xml version='1.0'?>{lol}<sst xmlns='http://schemas.openxmlformats.org/spreadsheetml/2006/main'>"
              "<si><t>&j;</t></si></sst>")
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", _OOXML_TYPES)
        z.writestr("xl/workbook.xml", "<workbook xmlns='http://schemas.openxmlformats.org/spreadsheetml/2006/main'>"
                   "<sheets/></workbook>")
        z.writestr("xl/sharedStrings.xml", shared)
    return path


def pdf_bytes(objects: list[bytes], trailer_extra: bytes = b"") -> bytes:
    """A PDF of ``objects`` (object 1 is the catalog), with a correct cross-reference table."""
    out = io.BytesIO()
    out.write(b"%PDF-1.7\n")
    offsets = []
    for n, body in enumerate(objects, 1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n%s\nendobj\n" % (n, body))
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    out.write(b"".join(b"%010d 00000 n \n" % o for o in offsets))
    out.write(b"trailer\n<< /Size %d /Root 1 0 R %s>>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, trailer_extra,
                                                                                   xref))
    return out.getvalue()


def _page(content: bytes, resources: bytes = b"<< >>") -> list[bytes]:
    stream = b"<< /Length %d >>\nstream\n%s\nendstream" % (len(content), content)
    return [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources %s >>" % resources,
            stream]


def million_objects_pdf(path: Path, count: int = 1_000_000) -> Path:
    """One page, and a million objects besides, every one in the cross-reference table."""
    objects = _page(b"BT /F1 12 Tf 72 700 Td (a page among a million objects) Tj ET",
                    b"<< /Font << /F1 5 0 R >> >>")
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    objects += [b"[%d]" % i for i in range(count)]
    path.write_bytes(pdf_bytes(objects))
    return path


def recursive_xobject_pdf(path: Path) -> Path:
    """A page drawing form A, which draws form B, which draws form A, forever."""
    objects = _page(b"/A Do", b"<< /XObject << /A 5 0 R >> >>")
    for me, other in ((b"A", 6), (b"B", 5)):
        content = b"/%s Do" % (b"B" if me == b"A" else b"A")
        objects.append(b"<< /Type /XObject /Subtype /Form /BBox [0 0 612 792] /Resources << /XObject << /%s %d 0 R "
                       b">> >> /Length %d >>\nstream\n%s\nendstream" % (b"B" if me == b"A" else b"A", other,
                                                                        len(content), content))
    path.write_bytes(pdf_bytes(objects))
    return path


def truncated_pdf(path: Path) -> Path:
    """The first 60 % of a PDF: no cross-reference table, no trailer, a page cut in half."""
    page = _page(b"BT /F1 12 Tf 72 700 Td (cut short) Tj ET", b"<< /Font << /F1 5 0 R >> >>")
    whole = pdf_bytes([*page, b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"])
    path.write_bytes(whole[: len(whole) * 6 // 10])
    return path


def truncated_docx(path: Path) -> Path:
    """A DOCX cut in half: its zip directory, at the end, is gone."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", _OOXML_TYPES)
        z.writestr("word/document.xml", "<w:document xmlns:w='http://schemas.openxmlformats.org/wordprocessingml/"
                   "2006/main'><w:body>" + "<w:p><w:r><w:t>cut</w:t></w:r></w:p>" * 2000 + "</w:body></w:document>")
    data = buffer.getvalue()
    path.write_bytes(data[: len(data) // 2])
    return path


def encrypted_pdf(path: Path) -> Path:
    """Encrypted with the standard handler and a user password (the empty one does not open it)."""
    objects = [*_page(b"BT ET"), b"<< /Filter /Standard /V 1 /R 2 /O <%s> /U <%s> /P -4 >>" % (b"ab" * 32, b"cd" * 32)]
    path.write_bytes(pdf_bytes(objects, b"/Encrypt 5 0 R /ID [<00112233445566778899aabbccddeeff> "
                                   b"<00112233445566778899aabbccddeeff>] "))
    return path


#: name -> (file name, maker): each ends as one line of why, never a hung, dead or bloated host.
DOCUMENT_ATTACKS: dict[str, tuple[str, Callable[[Path], Path]]] = {
    "zip bomb (DOCX, 512 MB member)": ("bomb.docx", zip_bomb_docx),
    "zip bomb (XLSX shared strings)": ("bomb.xlsx", zip_bomb_xlsx),
    "zip bomb (EPUB container)": ("bomb.epub", zip_bomb_epub),
    "XML entity bomb (XLSX)": ("laughs.xlsx", entity_bomb_xlsx),
    "PDF with a million objects": ("million.pdf", million_objects_pdf),
    "PDF whose forms draw each other": ("recursive.pdf", recursive_xobject_pdf),
    "truncated PDF": ("truncated.pdf", truncated_pdf),
    "truncated DOCX": ("truncated.docx", truncated_docx),
    "password-protected PDF": ("locked.pdf", encrypted_pdf),
}

HOST = """
import json, resource, sys, time
from pathlib import Path
from rlm import RLM, SandboxConfig
from rlm.testing import ScriptedLM
path, settings = Path(sys.argv[1]), json.loads(sys.argv[2])
program = "```repl\\nprint(repr(context[:60]), context.skipped)\\n```"
with ScriptedLM(root=['FINAL(warm)', program, 'FINAL(ok)']) as lm:
    with RLM('root', base_url=lm.base_url, sandbox=SandboxConfig(**settings) if settings else 'local') as r:
        r.completion('a first completion: the host has loaded what a run needs', 'q')
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        started = time.perf_counter()
        res = r.completion(path, 'q')
        seconds = time.perf_counter() - started
        told = lm.requests[1].messages[1]['content']
grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024
print(json.dumps({'out': res.steps[0].outputs[0].stdout, 'error': res.steps[0].outputs[0].error or '',
                  'told': told, 'seconds': seconds, 'grown_mb': grown}))
"""


def run_document_attack(name: str, settings: dict[str, object] | None, workdir: str) -> str:
    """One hostile file as the context of a completion in a fresh host; the table's cell."""
    file_name, make = DOCUMENT_ATTACKS[name]
    path = make(Path(workdir, file_name))
    try:
        done = subprocess.run([sys.executable, "-c", HOST, str(path), json.dumps(settings or {})], check=False,
                              capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired:
        return "HOST HUNG (timeout)"
    finally:
        path.unlink(missing_ok=True)
    if done.returncode != 0 or not done.stdout.strip():
        return f"HOST DIED (exit {done.returncode}): {done.stderr.strip().splitlines()[-1:]}"
    result = json.loads(done.stdout.strip().splitlines()[-1])
    told = str(result["told"])
    reason = next((line.split(": ", 1)[1] for line in told.splitlines() if line.startswith("Not extracted: ")), "")
    verdict = f"told: {reason[:90]}" if reason else f"read: {str(result['out']).strip()[:60]}"
    if result["error"]:
        verdict += f"; STEP FAILED: {str(result['error']).splitlines()[-1][:80]}"
    return f"{verdict}; host +{result['grown_mb']} MB, {result['seconds']:.1f} s"


def rows(modes: list[str], settings_of: Callable[[str], dict[str, object] | None]) -> list[str]:
    """The table's rows for the hostile documents, one cell per isolation level."""
    import tempfile

    lines = []
    with tempfile.TemporaryDirectory(prefix="rlm-document-attacks-") as workdir:
        for name in DOCUMENT_ATTACKS:
            cells = []
            for mode in modes:
                settings = settings_of(mode)
                cell = "mode not available here" if settings is None else run_document_attack(name, settings, workdir)
                cells.append(cell.replace("|", "/"))
            lines.append(f"| document: {name} | " + " | ".join(cells) + " |")
    return lines

