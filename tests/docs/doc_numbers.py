"""Measured numbers in the docs name what measured them.

A paragraph (or a table, or a list item) states a measurement when it gives a quantity
with a unit of time, size, speed-up or share (``0.31 ms``, ``1.37x``, ``27 KB``, ``93 %``)
and says it was measured (``measured``, ``here``, ``this machine``, ``took``, ``median``,
...). Such a paragraph needs a source nearby: the ``rlm bench ...`` (or ``python -m
rlm.bench...``) command that measures it, the test that does (``tests/...``, ``test_...``),
a link to the outside source (``https://...``), or a link to a page of these docs that
names its ``rlm bench`` command. Nearby means the paragraph itself, the paragraph just
before a table, or the heading and the opening paragraph of any section it is in.
Limits and settings (``20 MiB an image``, ``at most every 0.1 s``) say no "measured" and
are left alone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from doc_pages import ROOT, Page, Prose

QUANTITY = re.compile(
    r"(?<![\w.$])\d[\d,]*(?:\.\d+)?(?:\s?[-–]\s?\d[\d,]*(?:\.\d+)?)?\s?"
    r"(?:s|ms|µs|us|x|×|MB|KB|kB|GB|MiB|GiB|KiB|%|MB/s|GB/s)(?![\w/])(?!\s?(?:CI|confidence))")
MEASURED = re.compile(
    r"\b(?:measured|measures|measuring|here|this machine|took|takes? about|median|mean|profiled|in \d+ of \d+ runs?|"
    r"runs? of|faster|slower|speed-?up|load average|timed|benchmark(?:ed)?|stalled)\b"
    r"|\b(?:costs?|cost us|spent|spends|gave|gives) (?:about |only |at most )?\d", re.I)
SOURCE = re.compile(r"rlm bench\b|python -m rlm\.bench|\btests/[\w/.]+|\btest_\w+|https?://")
PAGE_LINK = re.compile(r"\]\(([\w-]+\.md)(?:#[\w-]+)?\)|\b(?:docs/)?([\w-]+\.md)\b")


@dataclass(frozen=True)
class Unsourced:
    where: str
    quantities: tuple[str, ...]
    text: str


def unsourced(page: Page) -> list[Unsourced]:
    found = []
    for i, paragraph in enumerate(page.prose):
        quantities = tuple(QUANTITY.findall(paragraph.text))
        before = page.prose[i - 1] if i and paragraph.text.lstrip().startswith("|") else None
        said = MEASURED.search(paragraph.text) or (before is not None and MEASURED.search(before.text))
        if not quantities or not said:
            continue
        if not any(sourced(text) for text in nearby(page, paragraph, before)):
            found.append(Unsourced(f"{page.name}:{paragraph.line}", quantities[:4], paragraph.text))
    return found


def nearby(page: Page, paragraph: Prose, before: Prose | None) -> list[str]:
    texts = [paragraph.text, *(before.text for before in [before] if before is not None)]
    for depth in range(1, len(paragraph.sections) + 1):
        sections = paragraph.sections[:depth]
        texts.append(sections[-1])
        texts.append(page.intros.get(sections, ""))
    return texts


def sourced(text: str) -> bool:
    if SOURCE.search(text):
        return True
    for link in PAGE_LINK.finditer(text):
        target = ROOT / "docs" / (link.group(1) or link.group(2))
        if target.exists() and "rlm bench" in target.read_text(encoding="utf-8"):
            return True
    return False
