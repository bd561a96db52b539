"""How an answer is scored: 0.75^|error| for numbers, exact match for labels and paths, F1 for sets.

The scorers are OOLONG's (a count off by one earns 0.75, off by ten 0.06) and
OOLONG-Pairs' (F1 over the pairs named). Answers are read leniently, as a model
writes them: the text after the last ``Answer:`` if there is one, quotes, backticks
and a trailing full stop ignored, numbers with thousands separators.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Hashable
from typing import Any

METRICS = ("number", "exact", "f1")

_ANSWER = re.compile(r"(?:^|\n)\s*(?:\*\*)?(?:final answer|answer)(?:\*\*)?\s*:\s*", re.I)
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")
_NEEDLE = re.compile(r"(?<!\d)\d{7}(?!\d)")
_PAIR = re.compile(r"[(\[]\s*(\d+)\s*,\s*(\d+)\s*[)\]]")
_NAME = re.compile(r"[\w./-]+\.py::[\w.]+")
_PREFIX = re.compile(r"^(?:label|the answer is|answer)\s*[:\-]?\s*", re.I)


def number_score(expected: float, got: float | None) -> float:
    """0.75 to the power of the absolute error; no number at all scores 0."""
    if got is None:
        return 0.0
    return float(0.75 ** abs(expected - got))


def exact_match(expected: str, got: str) -> float:
    """1.0 when the two agree once case, spacing, quotes and a trailing full stop are set aside."""
    return 1.0 if normalize(expected) == normalize(_PREFIX.sub("", normalize(got))) else 0.0


def f1(expected: Collection[Hashable], got: Collection[Hashable]) -> float:
    """F1 of the set named against the right set; nothing expected and nothing named is a perfect 1.0."""
    want, have = set(expected), set(got)
    if not want and not have:
        return 1.0
    hits = len(want & have)
    if hits == 0:
        return 0.0
    precision, recall = hits / len(have), hits / len(want)
    return 2 * precision * recall / (precision + recall)


def normalize(text: str) -> str:
    """Lower case, one space between words, no surrounding quotes, backticks, bold or final full stop."""
    text = " ".join(str(text).split()).lower()
    previous = None
    while previous != text:
        previous = text
        text = text.strip(" \"'`*").removesuffix(".").strip()
    return text


def final_segment(answer: str) -> str:
    """The part of an answer after its last ``Answer:`` line start, else all of it."""
    starts = [m.end() for m in _ANSWER.finditer(answer)]
    return answer[starts[-1]:] if starts else answer


def parse_number(answer: str) -> float | None:
    """The first number of the answer's final segment (``1,204`` is 1204)."""
    match = _NUMBER.search(final_segment(answer))
    return float(match.group().replace(",", "")) if match else None


def parse_needles(answer: str) -> set[str]:
    """Every seven-digit number in the answer: the shape of a planted needle's value."""
    return set(_NEEDLE.findall(answer))


def parse_pairs(answer: str) -> set[tuple[int, int]]:
    """Every ``(a, b)`` in the answer, smaller id first; a pair of one id twice is no pair."""
    pairs = {tuple(sorted((int(a), int(b)))) for a, b in _PAIR.findall(answer)}
    return {(a, b) for a, b in pairs if a != b}


def parse_names(answer: str) -> set[str]:
    """Every ``path.py::qualified.name`` in the answer."""
    return {name.removeprefix("./") for name in _NAME.findall(answer)}


def score(metric: str, answer_type: str, expected: Any, answer: str) -> float:
    """The item's score in [0, 1] for ``answer`` (see ``Item.metric`` and ``Item.answer_type``)."""
    if metric == "number":
        return number_score(float(expected), parse_number(answer))
    if answer_type == "needles":
        found = parse_needles(answer)
        return f1(expected, found) if metric == "f1" else float(found == set(expected))
    if answer_type == "pairs":
        return f1({(int(a), int(b)) for a, b in expected}, parse_pairs(answer))
    if answer_type == "names":
        return f1(set(expected), parse_names(answer))
    if metric == "exact":
        return exact_match(str(expected), final_segment(answer))
    raise ValueError(f"no scorer for metric={metric!r} with answer_type={answer_type!r}")
