"""Each format read from a real file made by its real writer: content, page numbers, skip reasons."""

from __future__ import annotations

import io
import os
import pickle
import re
from pathlib import Path

import pytest

from rlm.repl.contexts import load_context
from rlm.repl.document_context import DocumentContext, read_here
from rlm.repl.documents.document import Document
from rlm.repl.documents.load import Entry, load

from . import makers

DEBIAN_PDFS = {"libtasn1": "/usr/share/doc/libtasn1-doc/libtasn1.pdf",
               "shared-mime-info": "/usr/share/doc/shared-mime-info/shared-mime-info-spec.pdf"}


def read(path: Path) -> Document:
    """A file read as a context is, in a worker of this process."""
    loaded = load_context(path)
    assert isinstance(loaded, DocumentContext)
    value, _ = read_here(loaded)
    assert isinstance(value, Document)
    return value


def test_a_pdf_keeps_its_pages_columns_table_and_says_which_pages_are_scans_or_figures(folder: Path) -> None:
    doc = read(folder / "report.pdf")
    assert doc.kind == "pdf" and len(doc.pages) == 5 and doc.startswith("[page 1]\nQuarterly report")
    # Two columns: the left column is read down before the right one, never line by line across.
    assert doc.index("Left column sentence 39") < doc.index("Right column sentence 1:")
    assert not any("Left column" in line and "Right column" in line for line in doc.splitlines())
    assert "North 120 135" in doc.page(3) and doc.page_of(doc.index("South 98 101")) == 3
    assert doc.page(4) == "" and doc.info["blank_pages"] == [4]
    assert doc.skipped == ["page 4: no text layer, only images (scanned?); look with page_image(n)",
                           "images on page 5: figures are not text; page_image(n) draws a page"]
    assert doc.info["Title"] == "Quarterly report"


def test_a_scanned_page_is_drawn_as_a_png_a_vision_model_can_read(folder: Path) -> None:
    from PIL import Image

    doc = read(folder / "report.pdf")
    png = doc.page_image(4, scale=1.0)
    image = Image.open(io.BytesIO(png))
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and abs(image.size[0] - 595) <= 1 and abs(image.size[1] - 842) <= 1
    assert image.convert("L").getextrema()[0] < 50  # the scan's dark text is on it
    with pytest.raises(IndexError, match=r"page 6 of report\.pdf: it has 5 pages, numbered 1 to 5"):
        doc.page_image(6)


def test_greek_russian_and_chinese_come_out_as_written(tmp_path: Path) -> None:
    doc = read(makers.scripts_pdf(tmp_path / "scripts.pdf"))
    for line in (makers.GREEK, makers.RUSSIAN, makers.CHINESE):
        assert line in doc.page(1)


def test_a_word_document_keeps_headings_lists_tables_and_non_latin_text(folder: Path) -> None:
    doc = read(folder / "survey.docx")
    assert doc.kind == "docx" and doc.pages == []
    assert doc.headings == ["# Site survey", "## Findings", "## Ελληνικά"]
    assert "- Cracks in pier 7\n\n- Rust on crane 3" in doc
    assert "| Item | Cost |\n| --- | --- |\n| Pier 7 | 12,000 |\n| Crane 3 | 4,500 |" in doc
    assert makers.GREEK in doc
    with pytest.raises(IndexError, match=r"survey\.docx has no pages: search its text"):
        doc.page(1)


def test_a_deck_is_its_slides_with_titles_notes_and_tables(folder: Path) -> None:
    doc = read(folder / "plan.pptx")
    assert doc.labels == ["slide 1: Harbour plan 2027", "slide 2: Budget", "slide 3: Schedule"]
    assert doc.page(2) == "# Budget\n\nDredging costs 2.1 million\n\nNotes: Mention the grant from the port authority."
    assert "| Dredging | May |" in doc.page(3) and "[slide 3: Schedule]" in doc


def test_a_workbook_is_its_sheets_as_tsv_with_dates_as_dates(folder: Path) -> None:
    doc = read(folder / "arrivals.xlsx")
    assert doc.labels == ["sheet 1: Arrivals", "sheet 2: Crew"]
    assert doc.page(1) == "Ship\tTonnes\tDate\nAurora\t1200\t2026-03-14\nBorealis\t830.5\t2026-04-02"
    assert doc.page(2) == "Name\t\tRole\nIngrid\t\tPilot"


def test_a_web_page_is_its_main_text_without_navigation_scripts_styles_or_footer(folder: Path) -> None:
    doc = read(folder / "tides.html")
    assert doc.startswith("# Tide tables\n\nHigh water at 06:12 and 18:40.")
    assert "| Day | High |\n| --- | --- |\n| Mon | 06:12 |" in doc
    assert "```\n  indented\n    code\n```" in doc and "[image: tide chart]" in doc
    for noise in ("SECRET_SCRIPT", "NAVIGATION_LINK", "FOOTER_TEXT", "color:red"):
        assert noise not in doc
    assert doc.info == {"title": "Tide tables"}


def test_an_ebook_is_its_chapters_titled_from_its_table_of_contents(folder: Path) -> None:
    doc = read(folder / "books" / "keeper.epub")
    assert doc.labels == ["chapter 1: The Storm", "chapter 2: The Rescue"]
    assert doc.page(2) == "# Rescue\n\nAt dawn the keeper rowed out to the wreck."
    assert doc.info["title"] == "The Lighthouse Keeper"


def test_a_notebook_is_its_cells_with_kind_number_and_outputs_as_text_never_base64(folder: Path) -> None:
    doc = read(folder / "analysis.ipynb")
    assert doc.labels == ["cell 1: markdown", "cell 2: code [1]", "cell 3: code [2]", "cell 4: code [3]"]
    assert doc.page(2) == "print(sum([3, 4]))\n--- output ---\n7"
    assert "[image/png output, 3,300 bytes: not included]\n<Figure size 640x480>" in doc.page(3)
    assert "iVBORw0KGgo" not in doc and "\x1b" not in doc
    assert doc.page(4).endswith("ZeroDivisionError: division by zero")
    assert doc.skipped == ["1 image outputs (plots, pictures): named, not included"]


@pytest.mark.parametrize("name", sorted(DEBIAN_PDFS))
def test_the_pdfs_debian_ships_are_read_page_by_page(name: str) -> None:
    path = DEBIAN_PDFS[name]
    if not os.path.exists(path):
        pytest.skip(f"{path} is not installed (Debian package {'libtasn1-doc' if name == 'libtasn1' else name})")
    doc = read(Path(path))
    assert len(doc.pages) > 10 and "%PDF" not in doc and "/FlateDecode" not in doc
    if name == "libtasn1":
        found = re.search(r"int asn1_der_decoding \(", doc)
        assert found is not None and doc.page_of(found.start()) > 10
    else:
        assert "Shared MIME-info Database" in doc.page(1)


def test_a_folder_is_a_dict_of_texts_and_documents_described_with_formats_and_pages(folder: Path) -> None:
    loaded = load_context(folder)
    assert isinstance(loaded, DocumentContext) and loaded.directory
    value, info = read_here(loaded)
    assert sorted(value) == ["analysis.ipynb", "arrivals.xlsx", "books/keeper.epub", "data.csv", "notes.md",
                             "plan.pptx", "report.pdf", "survey.docx", "tides.html"]
    assert value["notes.md"] == "# Notes\nThe pilot boat leaves at 05:30.\n" and type(value["notes.md"]) is str
    assert isinstance(value["report.pdf"], Document) and value["report.pdf"].page(3).startswith("Table 1")
    told = info.description
    assert "`context` is a dict of 9 files from the directory" in told
    assert "'report.pdf' (PDF, 5 pages, " in told and "'plan.pptx' (PowerPoint deck (PPTX), 3 slides, " in told
    assert "'notes.md' (text, 40 characters)" in told and "page_image(n, path)" in told
    assert "Partly extracted: 'analysis.ipynb': 1 image outputs" in told
    kinds = {d["name"]: (d["kind"], d["pages"]) for d in info.summary["documents"]}
    assert kinds["report.pdf"] == ("pdf", 5) and kinds["books/keeper.epub"] == ("epub", 2)
    assert info.tokens > 1000


def test_document_bytes_are_a_document_and_other_bytes_stay_text(folder: Path) -> None:
    loaded = load_context((folder / "report.pdf").read_bytes())
    assert isinstance(loaded, DocumentContext) and loaded.name == "context.pdf"
    assert load_context(b"%PDX not a pdf") == "%PDX not a pdf"


def test_a_document_pickles_with_its_pages_as_rlm_query_sends_it(folder: Path) -> None:
    doc = read(folder / "plan.pptx")
    copy = pickle.loads(pickle.dumps(doc))
    assert copy == doc and copy.page(2) == doc.page(2) and copy.labels == doc.labels
    assert doc[:8] == "[slide 1" and type(doc[:8]) is str


def test_a_file_that_fails_alone_is_an_empty_document_saying_why() -> None:
    loaded = load([Entry("broken.docx", "docx", b"PK\x03\x04 not really a zip")])
    assert loaded.value == "" and loaded.value.skipped[0].startswith("not a readable zip package")
    assert "Not extracted: not a readable zip package" in loaded.description


def test_a_sphinx_build_is_read_as_its_pages_without_the_copies_of_their_sources(tmp_path: Path) -> None:
    makers.page_html(tmp_path / "tides.html")
    (tmp_path / "_sources").mkdir()
    (tmp_path / "_sources" / "tides.rst.txt").write_text("Tide tables\n===========\n")
    loaded = load_context(tmp_path)
    assert isinstance(loaded, DocumentContext)
    assert [s.name for s in loaded.sources] == ["tides.html"]
    assert loaded.left_out == [("_sources", "Sphinx's copies of its pages' sources (the pages themselves are read)")]


def test_notebook_bytes_are_a_notebook_wherever_its_format_key_is(folder: Path) -> None:
    data = (folder / "analysis.ipynb").read_bytes()
    loaded = load_context(data)
    assert isinstance(loaded, DocumentContext) and loaded.name == "context.ipynb"
    assert load_context(memoryview(b"plain text")) == "plain text"


def test_a_page_without_a_main_part_is_its_body_without_the_sites_header_and_footer() -> None:
    page = (b"<html><body><header>SITE HEADER</header><h1>Notes</h1><p>The quay opens at six.</p>"
            b"<footer>SITE FOOTER</footer></body></html>")
    assert load([Entry("notes.html", "html", page)]).value == "# Notes\n\nThe quay opens at six.\n"


def test_a_document_format_no_reader_takes_is_named_with_what_to_do(tmp_path: Path) -> None:
    makers.page_html(tmp_path / "tides.html")
    (tmp_path / "old.doc").write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1\0\0\0\0")  # an OLE2 header
    loaded = load_context(tmp_path)
    assert isinstance(loaded, DocumentContext)
    assert loaded.left_out == [("old.doc", "Word 97-2003 documents (not read: save them as PDF, DOCX, PPTX or XLSX)")]
    with pytest.raises(TypeError, match=r"'old\.doc' is a Word 97-2003 document, which rlm does not read: save it"):
        load_context(tmp_path / "old.doc")
