"""The docs as the harness reads them: pages, their fenced blocks with markers, and their prose.

A fence is what CommonMark calls one (up to three spaces, then three or more backticks or
tildes; a backtick fence's info string holds no backtick), so a list item that merely
mentions ```` ```python ```` is prose. A marker is an HTML comment on the line right
before a fence (invisible on the site and on GitHub)::

    <!-- docs-test: check (needs a Ray cluster) -->
    <!-- docs-test: repl -->
    <!-- docs-test: repl context=figures -->
    <!-- docs-test: kernel -->

``check`` blocks are not run, only checked (syntax, names, keywords): the reason in
parentheses is required. ``repl`` blocks are root code, run in a REPL. ``kernel`` blocks
keep the kernel sandbox (the others run with ``sandbox="local"``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MODES = ("run", "check", "repl", "kernel")
PYTHON = ("python", "py", "python3", "pycon")
SHELL = ("bash", "sh", "shell", "console")

_FENCE = re.compile(r"^( {0,3})(`{3,}|~{3,})(.*)$")
_MARKER = re.compile(r"^\s*<!--\s*docs-test:\s*(?P<mode>\w+)(?P<options>(?:\s+\w+=\S+)*)\s*"
                     r"(?:\((?P<reason>[^)]*)\))?\s*-->\s*$")
_ANY_MARKER = re.compile(r"<!--\s*docs-test")
_HEADING = re.compile(r"^(#{1,6})\s+(.*)$")


class MarkerError(ValueError):
    """A docs-test marker that the harness cannot read: the message says how to write it."""


@dataclass(frozen=True)
class Block:
    """One fenced block: where it starts (the fence's line, 1-based), its language, code and marker."""

    page: str
    line: int
    lang: str
    code: str
    mode: str = "run"
    reason: str = ""
    options: dict[str, str] = field(default_factory=dict)

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"

    @property
    def is_python(self) -> bool:
        return self.lang in PYTHON

    def python_source(self) -> str:
        """The code to run: a ``pycon`` session's ``>>>``/``...`` lines, else the block as written.

        Lines keep their numbers (an output line becomes blank), so a traceback's line is the doc's.
        """
        if self.lang != "pycon":
            return self.code
        kept = []
        for text in self.code.split("\n"):
            kept.append(text[4:] if text.startswith((">>> ", "... ")) else text[3:] if text in (">>>", "...") else "")
        return "\n".join(kept)


@dataclass(frozen=True)
class Prose:
    """A paragraph (or table) outside any fence: its first line, its text, and the headings above it."""

    page: str
    line: int
    text: str
    sections: tuple[str, ...]
    #: Marked ``<!-- docs-test: foreign (whose names) -->``: another project's names, not checked
    #: (in a table, its first column only).
    foreign: bool = False

    def checked_text(self) -> str:
        """The text whose code spans name rlm's things."""
        if not self.foreign:
            return self.text
        if not self.text.lstrip().startswith("|"):
            return ""
        return "\n".join("|".join(row.split("|")[:1] + row.split("|")[2:]) for row in self.text.split("\n"))


@dataclass
class Page:
    path: Path
    name: str
    blocks: list[Block]
    prose: list[Prose]
    #: Each heading path's intro text (the prose between the heading and the next one), by heading path.
    intros: dict[tuple[str, ...], str]


def doc_paths() -> list[Path]:
    """README.md and every page under docs/: what a user reads."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def read(path: Path) -> Page:
    name = str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else path.name
    lines = path.read_text(encoding="utf-8").split("\n")
    blocks: list[Block] = []
    prose: list[Prose] = []
    intros: dict[tuple[str, ...], str] = {}
    headings: list[tuple[int, str]] = []
    paragraph: list[str] = []
    paragraph_line = 0
    foreign = False
    i = 0

    def flush() -> None:
        nonlocal paragraph, foreign
        if paragraph:
            text = "\n".join(paragraph)
            sections = tuple(h for _, h in headings)
            prose.append(Prose(name, paragraph_line, text, sections, foreign))
            intros.setdefault(sections, text)
            paragraph, foreign = [], False

    while i < len(lines):
        text = lines[i]
        fence = _FENCE.match(text)
        if fence and not (fence.group(2)[0] == "`" and "`" in fence.group(3)):
            flush()
            indent, mark, info = len(fence.group(1)), fence.group(2), fence.group(3).strip()
            body, j = [], i + 1
            while j < len(lines):
                close = re.match(r"^ {0,3}(" + re.escape(mark[0]) + "{" + str(len(mark)) + r",})\s*$", lines[j])
                if close:
                    break
                body.append(lines[j][indent:] if lines[j][:indent].strip() == "" else lines[j])
                j += 1
            marker = _marker_before(lines, i, name)
            lang = info.split()[0].strip("{}.") if info else ""
            blocks.append(Block(name, i + 1, lang, "\n".join(body), *marker))
            i = j + 1
            continue
        heading = _HEADING.match(text)
        if heading:
            flush()
            level = len(heading.group(1))
            headings = [(lvl, h) for lvl, h in headings if lvl < level] + [(level, heading.group(2).strip())]
        elif not text.strip():
            flush()
        elif _ANY_MARKER.search(text):
            foreign = _prose_marker(text, f"{name}:{i + 1}", lines[i + 1] if i + 1 < len(lines) else "")
        else:
            if not paragraph:
                paragraph_line = i + 1
            paragraph.append(text)
        i += 1
    flush()
    return Page(path, name, blocks, prose, intros)


def _marker_before(lines: list[str], fence: int, page: str) -> tuple[str, str, dict[str, str]]:
    """The marker on the line before the fence at index ``fence``: (mode, reason, options)."""
    before = lines[fence - 1] if fence > 0 else ""
    if not _ANY_MARKER.search(before):
        return "run", "", {}
    found = _MARKER.match(before)
    where = f"{page}:{fence}"
    if found is None or found.group("mode") not in MODES[1:]:
        raise MarkerError(f"{where}: cannot read the marker {before.strip()!r}; write <!-- docs-test: check (why it "
                          "cannot run here) -->, <!-- docs-test: repl -->, <!-- docs-test: repl context=NAME --> "
                          "or <!-- docs-test: kernel --> on the line right before the fence")
    mode, reason = found.group("mode"), (found.group("reason") or "").strip()
    if mode == "check" and not reason:
        raise MarkerError(f"{where}: a check-only block says why it cannot run here: "
                          "<!-- docs-test: check (needs a real endpoint) -->")
    options = dict(option.split("=", 1) for option in found.group("options").split())
    return mode, reason, options


def _prose_marker(text: str, where: str, next_line: str) -> bool:
    """A marker before prose: only ``foreign`` (another project's names), with the reason."""
    if _FENCE.match(next_line):
        return False  # the fence's marker, read with the fence
    found = _MARKER.match(text)
    if found is None or found.group("mode") != "foreign" or not (found.group("reason") or "").strip():
        raise MarkerError(f"{where}: before a paragraph or table the only marker is <!-- docs-test: foreign "
                          "(whose names: e.g. rlms' API) -->; before a fence: check, repl or kernel")
    return True


_SPAN = re.compile(r"(`+)(.+?)(?<!`)\1(?!`)", re.S)


def code_spans(text: str) -> list[tuple[int, str]]:
    """The inline code spans of a paragraph (```` `x` ````, ```` ``x`` ````): the line each starts on
    (0 for the paragraph's first) and what is inside the backticks."""
    return [(text.count("\n", 0, m.start()), m.group(2).strip()) for m in _SPAN.finditer(text)]


def pages() -> list[Page]:
    return [read(path) for path in doc_paths()]
