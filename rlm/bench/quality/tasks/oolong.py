"""OOLONG-style aggregation: many labelled records; count, rank or compare labels across all of them.

Labels are drawn with random weights per item, so the answers differ from item to item.
Counts are scored 0.75^|error|; the most and least common label (made unique) and the
comparison are exact matches.
"""

from __future__ import annotations

import argparse
import random
from collections import Counter

from ..items import Item, count, item_rng
from ..programs.labelled import LABELS, QUESTIONS
from .records import Record, preamble, record

GENERATOR = "oolong/v1"
KINDS = ("count", "most", "least", "compare")


def records(rng: random.Random, size: int, labels: tuple[str, ...] = LABELS) -> list[Record]:
    """Records of ``size`` tokens in all, each label drawn with a weight of its own."""
    from ....lm.tokens import get_encoding

    encoding = get_encoding()
    weights = [rng.uniform(0.5, 3.0) for _ in labels]
    out: list[Record] = []
    total = 0
    while total < size:
        made = record(rng, rng.choices(labels, weights)[0], rng.randint(10_000, 99_999))
        out.append(made)
        total += len(encoding.encode_ordinary(made.line + "\n"))
    return out


def _relabel(rng: random.Random, rows: list[Record], old: str, new: str) -> None:
    """Rewrite one record of label ``old`` as a record of ``new`` (same user)."""
    i = next(i for i in rng.sample(range(len(rows)), len(rows)) if rows[i].label == old)
    rows[i] = record(rng, new, rows[i].user)


def _settle(rng: random.Random, rows: list[Record], kind: str) -> Counter[str]:
    """Make every label occur, and the asked extreme unique, so the question has one answer."""
    while True:
        counts = Counter(dict.fromkeys(LABELS, 0))
        counts.update(r.label for r in rows)
        ranked = counts.most_common()
        if ranked[-1][1] == 0:
            _relabel(rng, rows, ranked[0][0], ranked[-1][0])
        elif kind == "most" and ranked[0][1] == ranked[1][1]:
            _relabel(rng, rows, ranked[1][0], ranked[-1][0])
        elif kind == "least" and ranked[-1][1] == ranked[-2][1]:
            _relabel(rng, rows, ranked[-2][0], ranked[0][0])
        else:
            return counts


def make_item(size: int, seed: int, index: int) -> Item:
    """Records of ``size`` tokens and one question about all of them."""
    rng = item_rng(GENERATOR, size, seed, index)
    kind = KINDS[index % len(KINDS)]
    rows = records(rng, size)
    counts = _settle(rng, rows, kind)
    a, b = rng.sample(LABELS, 2)
    expected: int | str
    if kind == "count":
        expected = counts[a]
    elif kind in ("most", "least"):
        ranked = counts.most_common()
        expected = ranked[0][0] if kind == "most" else ranked[-1][0]
    else:
        expected = ("more common" if counts[a] > counts[b] else "less common" if counts[a] < counts[b]
                    else "same frequency")
    context = "\n".join(r.line for r in rows) + "\n"
    return Item(task="oolong", id=item_id(size, seed, index), size=size, seed=seed, index=index, kind=kind,
                context=context, query=f"{preamble()} {QUESTIONS[kind].format(a=a, b=b)}", expected=expected,
                metric="number" if kind == "count" else "exact", answer_type="number" if kind == "count" else "text",
                tokens=count(context))


def item_id(size: int, seed: int, index: int) -> str:
    """The item's name in results files: stable while the generator's version is."""
    return f"{GENERATOR}/{size}/s{seed}/{index}"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``rlm bench oolong``'s arguments."""
    from ..cli import add_common

    add_common(parser)


def run(args: argparse.Namespace) -> int:
    """Run ``rlm bench oolong``."""
    from ..cli import run_task
    from ..runner import Task

    return run_task(args, Task("oolong", make_item, item_id))
