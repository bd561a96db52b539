"""HTML and XHTML: the main text as Markdown-like lines, without navigation, scripts or styles.

selectolax's lexbor (a compiled HTML5 parser and CSS engine) reads the page; what is not
content (scripts, styles, navigation, forms, hidden parts, Sphinx's sidebars and heading
anchors) is removed by CSS selector; the main part (``<main>``, ``<article>``,
``role=main``, Sphinx's ``div.body``, else ``<body>``) keeps its shape: headings become
``#`` lines, list items ``- `` lines, tables Markdown rows, ``<pre>`` a fenced block,
images their alt text. Only block elements are touched from Python, to put break marks
beside them; lexbor then joins the text in one call. On the Python 3.11 docs (530 pages,
50 MB) this keeps 21 % of the characters (docs/performance.md has the times).
"""

from __future__ import annotations

import re
from typing import Any

from .packages import markdown_table

#: Never text for a reader: code, styling, navigation, forms, embedded media, hidden parts, Sphinx's chrome.
DROP = ("script, style, noscript, template, svg, math, nav, aside, form, button, iframe, object, embed, canvas, "
        "select, textarea, input, dialog, [hidden], [aria-hidden=true], [role=navigation], [role=banner], "
        "[role=contentinfo], [role=complementary], [role=search], a.headerlink, div.sphinxsidebar, div.related")
#: The main part, best first.
MAIN = ("main", "article", "[role=main]", "div.body", "#content")
_BLOCK = ("p, div, section, article, main, blockquote, dl, figure, figcaption, address, details, summary, header, "
          "footer, center, hr, ul, ol, caption")
_HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
#: Runs of white space other than one plain space (a single space, the common case, is left as it is).
_SPACE = re.compile(r"[\t\r\n\f\v][ \t\r\n\f\v]*| [ \t\r\n\f\v]+")
#: Marks put into the text where a paragraph or a line ends, and where a kept block goes.
_PARA, _LINE, _KEEP = "\ue000", "\ue001", "\ue002"
_PARAS = re.compile(r"[ \ue000\ue001]*\ue000[ \ue000\ue001]*")
_LINES = re.compile(r" *\ue001[ \ue001]*")
_KEPT = re.compile(r"\ue002(\d+)\ue002")
_TRAILING = re.compile(r"[ \t]+\n")
_BLANK_LINES = re.compile(r"\n{3,}")
_CHARSET = re.compile(rb"<meta[^>]+charset=[\"']?([A-Za-z0-9_\-]+)", re.I)


def parse(data: bytes) -> Any:
    """The page's tree: UTF-8, or the charset it declares."""
    from selectolax.lexbor import LexborHTMLParser

    declared = _CHARSET.search(data[:4096])
    encoding = declared.group(1).decode("ascii").lower() if declared else None
    try:
        text = data.decode(encoding or "utf-8")
    except (UnicodeDecodeError, LookupError):
        text = data.decode("utf-8" if encoding is None else "latin-1", "replace")
    return LexborHTMLParser(text)


def content(tree: Any) -> Any:
    """The page's main part, with everything that is not content removed from the page.

    A page that marks no main part keeps its body, less the site's header and footer around it.
    """
    for node in tree.css(DROP):
        node.decompose()
    main = main_part(tree)
    if main.tag == "body":
        for node in tree.css("body > header, body > footer"):
            node.decompose()
    return main


def main_part(tree: Any) -> Any:
    """What a reader came for: the page's main element if it marks one, else its body."""
    for selector in MAIN:
        found = tree.css_first(selector)
        if found is not None:
            return found
    return tree.body if tree.body is not None else tree.root


def extract(data: bytes) -> dict[str, Any]:
    """The page's main text, its headings and title, and how many images it had."""
    tree = parse(data)
    title_node = tree.css_first("title")
    title = " ".join(title_node.text().split()) if title_node is not None else ""
    text, headings, images = to_text(content(tree))
    skipped = [f"{images} images (their content is not text; alt text is kept)"] if images else []
    return {"kind": "html", "unit": "section", "text": text, "headings": headings, "skipped": skipped,
            "info": {"title": title} if title else {}}


def to_text(element: Any) -> tuple[str, list[str], int]:
    """Markdown-like text of ``element`` (what is not content already removed), its headings, its image count.

    Why not a walk over every node: most nodes are inline (links, code, emphasis). Only
    blocks are touched, to put break marks beside them; then lexbor joins the text in one
    call, and spaces are collapsed once, outside the kept ``<pre>`` and tables.
    """
    kept: list[str] = []
    for table in reversed(element.css("table")):  # inner tables first
        _keep(table, _markdown_table(table), kept)
    for pre in element.css("pre"):
        _keep(pre, "```\n" + pre.text(deep=True).strip("\n") + "\n```", kept)
    headings = []
    for heading in element.css("h1, h2, h3, h4, h5, h6"):
        level = _HEADINGS[heading.tag]
        title = _SPACE.sub(" ", heading.text(deep=True)).strip()
        if title:
            headings.append("#" * level + " " + title)
        heading.insert_before(f"{_PARA}{'#' * level} ")
        heading.insert_after(_PARA)
    for block in element.css(_BLOCK):
        block.insert_before(_PARA)
        block.insert_after(_PARA)
    for item in element.css("li"):
        item.insert_before(f"{_LINE}- ")
        item.insert_after(_LINE)
    for term in element.css("dt, br"):
        term.insert_before(_LINE)
    for definition in element.css("dd"):
        definition.insert_before(f"{_LINE}  ")
        definition.insert_after(_LINE)
    images = element.css("img")
    for image in images:
        alt = _SPACE.sub(" ", (image.attributes.get("alt") or "")).strip()
        if alt:
            image.insert_before(f"[image: {alt}]")
    text = _SPACE.sub(" ", element.text(deep=True))
    text = _LINES.sub("\n", _PARAS.sub("\n\n", text))
    while kept and _KEEP in text:  # a kept table may hold the mark of a table inside it
        text = _KEPT.sub(lambda m: kept[int(m.group(1))], text)
    return _tidy(text), headings, len(images)


def _keep(node: Any, text: str, kept: list[str]) -> None:
    """Put ``node``'s text aside (its spacing is its own) and leave a numbered mark in its place."""
    kept.append(text)
    node.replace_with(f"{_PARA}{_KEEP}{len(kept) - 1}{_KEEP}{_PARA}")


def _markdown_table(table: Any) -> str:
    """A table's rows as Markdown (a nested table's mark stays inside its cell)."""
    return markdown_table([[td.text(deep=True).replace(_PARA, " ") for td in tr.iter() if td.tag in ("td", "th")]
                           for tr in table.css("tr")])


def _tidy(text: str) -> str:
    """Lines without trailing spaces, at most one blank line in a row."""
    return _BLANK_LINES.sub("\n\n", _TRAILING.sub("\n", text)).strip() + "\n"
