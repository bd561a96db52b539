"""OOLONG-Pairs-style: which pairs of users satisfy a condition on their records' hidden labels.

Two labels are made rare: each is given to a small set of users only (a handful to a
dozen, whatever the size), while the four common labels are spread over everyone. The
answer is a set of user pairs, scored by F1, so it stays a few dozen pairs long even
in a context of a million tokens.
"""

from __future__ import annotations

import argparse
import itertools

from ..items import Item, count, item_rng
from ..programs.labelled import LABELS, PAIRS_FORMAT, QUESTIONS
from .oolong import records
from .records import Record, preamble, record

GENERATOR = "pairs/v1"
KINDS = ("both", "cross", "exclusive")
#: Records per user on average: users grow with the context, rare-label users do not.
RECORDS_PER_USER = 8


def _moved(row: Record, user: int) -> Record:
    """The same record given to another user (ids are all five digits: the size stays)."""
    return Record(user, row.label, row.line.replace(f"|| User: {row.user} ||", f"|| User: {user} ||", 1))


def make_item(size: int, seed: int, index: int) -> Item:
    """Records of ``size`` tokens, two rare labels on chosen users, and one question about pairs."""
    rng = item_rng(GENERATOR, size, seed, index)
    kind = KINDS[index % len(KINDS)]
    a, b = rng.sample(LABELS, 2)
    common = tuple(label for label in LABELS if label not in (a, b))
    rows = records(rng, size, common)
    users = rng.sample(range(10_000, 100_000), max(24, len(rows) // RECORDS_PER_USER))
    rows = [_moved(r, rng.choice(users)) for r in rows]
    with_a = set(rng.sample(users, rng.randint(5, 10)))
    overlap = set(rng.sample(sorted(with_a), 2))
    with_b = overlap | set(rng.sample([u for u in users if u not in with_a], rng.randint(3, 8)))
    for label, chosen in ((a, with_a), (b, with_b)):
        for user in sorted(chosen):
            for _ in range(rng.randint(1, 2)):
                rows[rng.randrange(len(rows))] = record(rng, label, user)
    held = {user: {r.label for r in rows if r.user == user} for user in with_a | with_b}
    owners_a = sorted(u for u, labels in held.items() if a in labels)
    owners_b = {u for u, labels in held.items() if b in labels}
    if kind == "both":
        pairs = set(itertools.combinations(owners_a, 2))
    elif kind == "cross":
        pairs = {(min(x, y), max(x, y)) for x in owners_a for y in owners_b if x != y}
    else:
        pairs = set(itertools.combinations([u for u in owners_a if u not in owners_b], 2))
    context = "\n".join(r.line for r in rows) + "\n"
    query = f"{preamble()} {QUESTIONS[kind].format(a=a, b=b)}{PAIRS_FORMAT}"
    return Item(task="pairs", id=item_id(size, seed, index), size=size, seed=seed, index=index, kind=kind,
                context=context, query=query, expected=[list(p) for p in sorted(pairs)], metric="f1",
                answer_type="pairs", tokens=count(context))


def item_id(size: int, seed: int, index: int) -> str:
    """The item's name in results files: stable while the generator's version is."""
    return f"{GENERATOR}/{size}/s{seed}/{index}"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``rlm bench pairs``'s arguments."""
    from ..cli import add_common

    add_common(parser)


def run(args: argparse.Namespace) -> int:
    """Run ``rlm bench pairs``."""
    from ..cli import run_task
    from ..runner import Task

    return run_task(args, Task("pairs", make_item, item_id))
