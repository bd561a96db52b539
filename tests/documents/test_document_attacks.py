"""Hostile documents: each ends as one line of why, within its deadline, never a hung, dead or bloated host."""

from __future__ import annotations

import io
import resource
import time
import zipfile
from pathlib import Path

import pytest

from rlm.bench import document_attacks as hostile
from rlm.repl.documents import formats
from rlm.repl.documents.load import Entry, load
from rlm.repl.documents.worker import Limits
from rlm.testing import ScriptedLM

REASONS = {
    "zip_bomb_docx": "a zip bomb? word/document.xml would expand to 512 MB (over the 256 MB read per package)",
    "zip_bomb_xlsx": "a zip bomb? xl/sharedStrings.xml would expand to 512 MB",
    "zip_bomb_epub": "a zip bomb? META-INF/container.xml would expand to 512 MB",
    "entity_bomb_xlsx": "xl/sharedStrings.xml is not well-formed XML (Maximum entity amplification factor exceeded",
    "truncated_pdf": "not a PDF, or damaged beyond repair",
    "truncated_docx": "not a readable zip package (File is not a zip file); the file may be truncated or damaged",
    "encrypted_pdf": "encrypted: it needs a password",
}


def read_one(path: Path, limits: Limits | None = None) -> tuple[list[str], str, float]:
    data = path.read_bytes()
    started = time.perf_counter()
    loaded = load([Entry(path.name, formats.sniff(path.name, data[:4096]), data)], limits=limits)
    return loaded.value.skipped, loaded.description, time.perf_counter() - started


@pytest.mark.parametrize("maker", sorted(REASONS))
def test_a_hostile_file_is_one_line_of_why(maker: str, tmp_path: Path) -> None:
    name = {"docx": "x.docx", "xlsx": "x.xlsx", "epub": "x.epub", "pdf": "x.pdf"}[maker.rsplit("_", 1)[1]]
    skipped, told, _ = read_one(getattr(hostile, maker)(tmp_path / name))
    assert len(skipped) == 1 and skipped[0].startswith(REASONS[maker])
    assert f"Not extracted: {skipped[0]}." in told and "\n" not in skipped[0]


def test_forms_that_draw_each_other_end_as_a_blank_page(tmp_path: Path) -> None:
    skipped, _, seconds = read_one(hostile.recursive_xobject_pdf(tmp_path / "loop.pdf"))
    assert skipped == ["page 1: no text (blank, or drawn as shapes)"] and seconds < 30


@pytest.mark.slow
def test_a_pdf_of_a_million_objects_is_read_within_its_deadline(tmp_path: Path) -> None:
    skipped, told, seconds = read_one(hostile.million_objects_pdf(tmp_path / "million.pdf"))
    assert skipped == [] and "a page among a million objects" in told and seconds < 60


def test_a_file_past_its_deadline_is_stopped_and_says_so(tmp_path: Path) -> None:
    skipped, _, seconds = read_one(hostile.million_objects_pdf(tmp_path / "m.pdf", 300_000), Limits(seconds=0.05))
    assert skipped == ["took more than 0.05 s to read (stopped)"] and seconds < 20


def test_a_file_past_its_memory_is_stopped_and_says_so(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as z:
        z.writestr("word/document.xml", "<w:document xmlns:w='http://schemas.openxmlformats.org/wordprocessingml/2006/"
                   "main'><w:body>" + "<w:p><w:r><w:t>words</w:t></w:r></w:p>" * 400_000 + "</w:body></w:document>")
    path = tmp_path / "big.docx"
    path.write_bytes(buffer.getvalue())
    skipped, _, _ = read_one(path, Limits(memory_mb=64))
    assert len(skipped) == 1 and ("needs more than 64 MB of memory" in skipped[0]
                                  or "ran past its 64 MB of memory" in skipped[0])


def test_in_a_folder_the_good_documents_are_read_and_the_bad_ones_named_with_why(folder: Path, tmp_path: Path,
                                                                                  make: object) -> None:
    """Both sandboxes: the host stays small and alive, the root is told each reason, root code reads the rest."""
    root = tmp_path / "mixed"
    root.mkdir()
    (root / "report.pdf").write_bytes((folder / "report.pdf").read_bytes())
    hostile.encrypted_pdf(root / "locked.pdf")
    hostile.zip_bomb_docx(root / "bomb.docx")
    hostile.truncated_pdf(root / "cut.pdf")
    program = ("```repl\nprint(sorted(context), context['report.pdf'].page(3)[:26], "
               "len(page_image(4, 'report.pdf')))\n```")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with ScriptedLM(root=[program, "FINAL(ok)"]) as lm:
        with make(lm) as rlm:  # type: ignore[operator]
            result = rlm.completion(root, "q")
        told = lm.requests[0].messages[1]["content"]
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    out = result.steps[0].outputs[0]
    assert out.error is None and out.stdout.startswith("['report.pdf'] Table 1: revenue by region ")
    assert int(out.stdout.split()[-1]) > 10_000  # a PNG of page 4
    assert "Not extracted (3 documents, not in `context`): " in told
    assert "'locked.pdf': encrypted: it needs a password" in told and "'cut.pdf': not a PDF" in told
    assert "'bomb.docx': a zip bomb? word/document.xml would expand to 512 MB" in told
    if rlm.sandbox == "kernel":
        assert grown_mb < 200, f"the host grew by {grown_mb:.0f} MB reading hostile documents in the kernel"
