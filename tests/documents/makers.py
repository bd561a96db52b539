"""Real documents made by real writers (reportlab, python-docx, python-pptx, openpyxl, nbformat), for tests.

Each maker writes one file and returns its path; what it wrote is what the tests assert
the readers find. An EPUB is zipped here by the format's own rules (its common writer,
ebooklib, is AGPL).
"""

from __future__ import annotations

import datetime
import io
import json
import os
import zipfile
from pathlib import Path

import pytest

DEJAVU = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
GREEK = "Η γρήγορη καφέ αλεπού πηδά πάνω από τον τεμπέλη σκύλο"
RUSSIAN = "Съешь же ещё этих мягких французских булок"
CHINESE = "敏捷的棕色狐狸跳过了懒狗"


def text_image(text: str, size: tuple[int, int] = (900, 300)) -> bytes:
    """A PNG of ``text`` drawn as pixels (no text layer): what a scanner makes."""
    from PIL import Image, ImageDraw, ImageFont

    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.truetype(DEJAVU, 48) if os.path.exists(DEJAVU) else ImageFont.load_default()
    draw.text((40, 100), text, fill="black", font=font)
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def report_pdf(path: Path) -> Path:
    """Four pages: a two-column article, a table, a scanned (image-only) page, a figure with a caption."""
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.platypus import (
        BaseDocTemplate,
        Frame,
        Image,
        NextPageTemplate,
        PageBreak,
        PageTemplate,
        Paragraph,
        Table,
        TableStyle,
    )

    styles = getSampleStyleSheet()
    width, height = A4
    left = Frame(40, 40, width / 2 - 50, height - 80, id="left")
    right = Frame(width / 2 + 10, 40, width / 2 - 50, height - 80, id="right")
    whole = Frame(40, 40, width - 80, height - 80, id="whole")
    doc = BaseDocTemplate(str(path), pagesize=A4, title="Quarterly report",
                          pageTemplates=[PageTemplate("columns", [left, right]), PageTemplate("one", [whole])])
    story = [Paragraph("Quarterly report", styles["Title"])]
    story += [Paragraph(f"Left column sentence {i}: the harbour crane moved {i} containers.", styles["BodyText"])
              for i in range(1, 40)]
    story += [Paragraph(f"Right column sentence {i}: the night shift logged {i} arrivals.", styles["BodyText"])
              for i in range(1, 40)]
    story += [NextPageTemplate("one"), PageBreak(), Paragraph("Table 1: revenue by region", styles["Heading2"])]
    table = Table([["Region", "Q1", "Q2"], ["North", "120", "135"], ["South", "98", "101"], ["West", "77", "90"]])
    table.setStyle(TableStyle([("GRID", (0, 0), (-1, -1), 0.5, colors.black)]))
    story += [table, PageBreak()]
    story += [Image(io.BytesIO(text_image("SCANNED INVOICE 4471")), width=450, height=150),
              PageBreak()]
    story += [Paragraph("Figure 2: container throughput", styles["Heading2"]),
              Image(io.BytesIO(text_image("bar chart", (600, 400))), width=300, height=200),
              Paragraph("The figure shows throughput rising in the second quarter.", styles["BodyText"])]
    doc.build(story)
    return path


def scripts_pdf(path: Path) -> Path:
    """One page of Greek, Russian and Chinese text (DejaVu for the first two, a CID font for Chinese)."""
    if not os.path.exists(DEJAVU):
        pytest.skip(f"no DejaVu font at {DEJAVU} (Debian's fonts-dejavu-core) to write Greek and Russian")
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.pdfbase.ttfonts import TTFont
    from reportlab.pdfgen import canvas

    pdfmetrics.registerFont(TTFont("DejaVu", DEJAVU))
    pdfmetrics.registerFont(UnicodeCIDFont("STSong-Light"))
    c = canvas.Canvas(str(path))
    c.setFont("DejaVu", 12)
    c.drawString(40, 780, GREEK)
    c.drawString(40, 760, RUSSIAN)
    c.setFont("STSong-Light", 12)
    c.drawString(40, 740, CHINESE)
    c.save()
    return path


def pages_pdf(path: Path, pages: int, *, password: str | None = None) -> Path:
    """``pages`` pages of numbered lines ("page N line M ..."); with ``password``, encrypted."""
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    c = canvas.Canvas(str(path), pagesize=A4, encrypt=password)
    for n in range(1, pages + 1):
        text = c.beginText(50, 800)
        text.setFont("Helvetica", 10)
        for line in range(1, 61):
            text.textLine(f"page {n} line {line}: the ledger of the {n}th voyage lists cargo number {n * 100 + line}")
        c.drawText(text)
        c.showPage()
    c.save()
    return path


def word_docx(path: Path) -> Path:
    from docx import Document

    doc = Document()
    doc.add_heading("Site survey", level=1)
    doc.add_paragraph("The survey covered the northern quay in March.")
    doc.add_heading("Findings", level=2)
    doc.add_paragraph("Cracks in pier 7", style="List Bullet")
    doc.add_paragraph("Rust on crane 3", style="List Bullet")
    table = doc.add_table(rows=3, cols=2)
    for r, row in enumerate([("Item", "Cost"), ("Pier 7", "12,000"), ("Crane 3", "4,500")]):
        for c, value in enumerate(row):
            table.cell(r, c).text = value
    doc.add_heading("Ελληνικά", level=2)
    doc.add_paragraph(GREEK)
    doc.save(str(path))
    return path


def deck_pptx(path: Path) -> Path:
    from pptx import Presentation
    from pptx.util import Inches

    deck = Presentation()
    slide = deck.slides.add_slide(deck.slide_layouts[0])
    slide.shapes.title.text = "Harbour plan 2027"
    slide.placeholders[1].text = "Board meeting"
    slide = deck.slides.add_slide(deck.slide_layouts[1])
    slide.shapes.title.text = "Budget"
    slide.placeholders[1].text = "Dredging costs 2.1 million"
    slide.notes_slide.notes_text_frame.text = "Mention the grant from the port authority."
    slide = deck.slides.add_slide(deck.slide_layouts[5])
    slide.shapes.title.text = "Schedule"
    shape = slide.shapes.add_table(2, 2, Inches(1), Inches(2), Inches(6), Inches(1))
    for (r, c), value in {(0, 0): "Phase", (0, 1): "Month", (1, 0): "Dredging", (1, 1): "May"}.items():
        shape.table.cell(r, c).text = value
    deck.save(str(path))
    return path


def book_xlsx(path: Path) -> Path:
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.title = "Arrivals"
    sheet.append(["Ship", "Tonnes", "Date"])
    sheet.append(["Aurora", 1200, datetime.date(2026, 3, 14)])
    sheet.append(["Borealis", 830.5, datetime.date(2026, 4, 2)])
    other = book.create_sheet("Crew")
    other["A1"], other["C1"] = "Name", "Role"
    other["A2"], other["C2"] = "Ingrid", "Pilot"
    book.save(str(path))
    return path


def page_html(path: Path) -> Path:
    path.write_text(
        "<!doctype html><html><head><title>Tide tables</title><style>body{color:red}</style>"
        "<script>var tracking = 'SECRET_SCRIPT';</script></head><body>"
        "<nav><a href='/'>Home</a> | <a href='/about'>NAVIGATION_LINK</a></nav>"
        "<main><h1>Tide tables</h1><p>High water at <b>06:12</b> and 18:40.</p>"
        "<table><tr><th>Day</th><th>High</th></tr><tr><td>Mon</td><td>06:12</td></tr></table>"
        "<pre>  indented\n    code</pre><img src='x.png' alt='tide chart'></main>"
        "<footer>FOOTER_TEXT</footer></body></html>", encoding="utf-8")
    return path


def book_epub(path: Path) -> Path:
    """An EPUB 3 with a nav document and two chapters."""
    def chapter(title: str, body: str) -> str:
        return (f"<?xml version='1.0' encoding='utf-8'?><html xmlns='http://www.w3.org/1999/xhtml'><head><title>"
                f"{title}</title></head><body><h1>{title}</h1><p>{body}</p></body></html>")

    opf = ("<?xml version='1.0' encoding='utf-8'?><package xmlns='http://www.idpf.org/2007/opf' version='3.0' "
           "unique-identifier='id'><metadata xmlns:dc='http://purl.org/dc/elements/1.1/'><dc:identifier id='id'>x"
           "</dc:identifier><dc:title>The Lighthouse Keeper</dc:title><dc:language>en</dc:language></metadata>"
           "<manifest><item id='nav' href='nav.xhtml' media-type='application/xhtml+xml' properties='nav'/>"
           "<item id='c1' href='text/one.xhtml' media-type='application/xhtml+xml'/>"
           "<item id='c2' href='text/two.xhtml' media-type='application/xhtml+xml'/></manifest>"
           "<spine><itemref idref='c1'/><itemref idref='c2'/></spine></package>")
    nav = ("<?xml version='1.0' encoding='utf-8'?><html xmlns='http://www.w3.org/1999/xhtml' "
           "xmlns:epub='http://www.idpf.org/2007/ops'><body><nav epub:type='toc'><ol>"
           "<li><a href='text/one.xhtml'>The Storm</a></li><li><a href='text/two.xhtml'>The Rescue</a></li>"
           "</ol></nav></body></html>")
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(zipfile.ZipInfo("mimetype"), "application/epub+zip")
        z.writestr("META-INF/container.xml",
                   "<?xml version='1.0'?><container version='1.0' xmlns='urn:oasis:names:tc:opendocument:xmlns:"
                   "container'><rootfiles><rootfile full-path='OEBPS/content.opf' media-type='application/"
                   "oebps-package+xml'/></rootfiles></container>", zipfile.ZIP_DEFLATED)
        z.writestr("OEBPS/content.opf", opf, zipfile.ZIP_DEFLATED)
        z.writestr("OEBPS/nav.xhtml", nav, zipfile.ZIP_DEFLATED)
        z.writestr("OEBPS/text/one.xhtml", chapter("Storm", "The wind broke the lamp at midnight."),
                   zipfile.ZIP_DEFLATED)
        z.writestr("OEBPS/text/two.xhtml", chapter("Rescue", "At dawn the keeper rowed out to the wreck."),
                   zipfile.ZIP_DEFLATED)
    return path


def analysis_ipynb(path: Path) -> Path:
    import nbformat
    from nbformat import v4

    nb = v4.new_notebook()
    nb.cells = [
        v4.new_markdown_cell("# Load analysis\nWe count the arrivals."),
        v4.new_code_cell("print(sum([3, 4]))", execution_count=1,
                         outputs=[v4.new_output("stream", name="stdout", text="7\n")]),
        v4.new_code_cell("plot()", execution_count=2, outputs=[v4.new_output(
            "display_data", data={"image/png": "iVBORw0KGgo" * 400, "text/plain": "<Figure size 640x480>"})]),
        v4.new_code_cell("1/0", execution_count=3, outputs=[v4.new_output(
            "error", ename="ZeroDivisionError", evalue="division by zero",
            traceback=["\x1b[0;31mZeroDivisionError\x1b[0m: division by zero"])]),
    ]
    nbformat.write(nb, str(path))
    return path


def folder(root: Path) -> Path:
    """A folder as a researcher has one: a PDF, a Word file, a deck, a sheet, a page, a book, a notebook, notes."""
    root.mkdir(exist_ok=True)
    report_pdf(root / "report.pdf")
    word_docx(root / "survey.docx")
    deck_pptx(root / "plan.pptx")
    book_xlsx(root / "arrivals.xlsx")
    page_html(root / "tides.html")
    (root / "books").mkdir(exist_ok=True)
    book_epub(root / "books" / "keeper.epub")
    analysis_ipynb(root / "analysis.ipynb")
    (root / "notes.md").write_text("# Notes\nThe pilot boat leaves at 05:30.\n", encoding="utf-8")
    (root / "data.csv").write_text("ship,tonnes\nAurora,1200\n", encoding="utf-8")
    return root


def dump(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


__all__ = ["analysis_ipynb", "book_epub", "book_xlsx", "deck_pptx", "dump", "folder", "json", "page_html",
           "pages_pdf", "report_pdf", "scripts_pdf", "text_image", "word_docx"]
