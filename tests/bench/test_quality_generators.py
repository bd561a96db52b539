"""The generators: the same seed makes the same item, sizes are hit in tokens, the known answers are right."""

from __future__ import annotations

import itertools
import random
import re
from collections import Counter
from pathlib import Path

import pytest

from rlm.bench.quality.programs.labelled import LABELS, RECORD, classify
from rlm.bench.quality.tasks import codeqa, oolong, pairs, sniah
from rlm.bench.quality.tasks.records import instance
from rlm.lm.tokens import count_tokens

GENERATORS = {
    "sniah": sniah.make_item,
    "sniah-multi": lambda size, seed, index: sniah.make_item(size, seed, index, needles=3),
    "oolong": oolong.make_item,
    "pairs": pairs.make_item,
}


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_an_item_is_the_same_for_the_same_seed_and_differs_for_another(name: str) -> None:
    make = GENERATORS[name]
    first, again, other = make(8192, 0, 1), make(8192, 0, 1), make(8192, 1, 1)
    assert (first.context, first.query, first.expected) == (again.context, again.query, again.expected)
    assert first.fingerprint == again.fingerprint
    assert other.context != first.context and other.fingerprint != first.fingerprint


@pytest.mark.parametrize("name", sorted(GENERATORS))
@pytest.mark.parametrize("size", [8192, 32768])
def test_a_context_has_the_requested_tokens(name: str, size: int) -> None:
    item = GENERATORS[name](size, 0, 0)
    tokens = count_tokens(item.context)
    assert item.tokens == tokens
    assert abs(tokens - size) / size < 0.01, tokens


def test_needles_are_the_only_numbers_of_the_haystack() -> None:
    item = sniah.make_item(16384, 2, 3, needles=4)
    assert len(item.expected) == 4 and item.metric == "f1"
    assert sorted(re.findall(r"\d+", item.context)) == sorted(item.expected)
    for value in item.expected:
        assert item.context.count(f"is: {value}.") == 1
    assert sniah.make_item(8192, 0, 0).metric == "exact"


def test_every_instance_reads_back_as_the_label_it_was_written_for() -> None:
    rng = random.Random(5)
    for label in LABELS:
        for _ in range(300):
            assert classify(instance(rng, label)) == label


def _labels_per_line(context: str) -> list[tuple[int, str]]:
    out = []
    for line in context.splitlines():
        match = RECORD.search(line)
        assert match, line
        label = classify(match.group(2))
        assert label is not None, line
        out.append((int(match.group(1)), label))
    return out


@pytest.mark.parametrize("index", range(4))
def test_oolong_answers_agree_with_the_records(index: int) -> None:
    item = oolong.make_item(8192, 3, index)
    counts = Counter(label for _, label in _labels_per_line(item.context))
    assert set(counts) == set(LABELS), "every label occurs"
    ranked = counts.most_common()
    if item.kind == "count":
        label = re.search(r"the label '([^']+)'", item.query).group(1)
        assert item.expected == counts[label] and item.metric == "number"
    elif item.kind == "most":
        assert item.expected == ranked[0][0] and ranked[0][1] > ranked[1][1]
    elif item.kind == "least":
        assert item.expected == ranked[-1][0] and ranked[-1][1] < ranked[-2][1]
    else:
        a, b = re.findall(r"the label '([^']+)'", item.query)
        sign = (counts[a] > counts[b]) - (counts[a] < counts[b])
        assert item.expected == ["less common", "same frequency", "more common"][sign + 1]


@pytest.mark.parametrize("index", range(3))
def test_pairs_answers_agree_with_the_records(index: int) -> None:
    item = pairs.make_item(16384, 1, index)
    held: dict[int, set[str]] = {}
    for user, label in _labels_per_line(item.context):
        held.setdefault(user, set()).add(label)
    a, b = ([*re.findall(r"the label '([^']+)'", item.query), ""] * 2)[:2]
    with_a = sorted(u for u, labels in held.items() if a in labels)
    with_b = {u for u, labels in held.items() if b in labels}
    if item.kind == "both":
        want = set(itertools.combinations(with_a, 2))
    elif item.kind == "cross":
        want = {(min(x, y), max(x, y)) for x in with_a for y in with_b if x != y}
    else:
        want = set(itertools.combinations([u for u in with_a if u not in with_b], 2))
    assert {tuple(p) for p in item.expected} == want and 3 <= len(want) <= 120
    assert len(with_a) <= 10 < len(held), "the asked label is rare, the users many"


TREE = {
    "pkg/a.py": (
        "class Base:\n    pass\n\n\nclass One(Base):\n    def run(self, limit):\n        return helper(limit)\n\n\n"
        "def helper(limit):\n    return len(str(limit))\n"
    ),
    "pkg/b.py": (
        "from pkg.a import Base, helper\n\n\nclass Two(Base):\n    def go(self, limit):\n        def inner():\n"
        "            return helper(1)\n        return inner()\n\n\ndef unique_name():\n    return helper(2)\n"
    ),
}


def test_code_questions_come_from_what_the_files_define_and_call(tmp_path: Path) -> None:
    for path, text in TREE.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(text)
    (tmp_path / ".venv").mkdir()
    (tmp_path / ".venv" / "skip.py").write_text("def skipped(): pass\n")
    tree = codeqa.CodeTree(tmp_path)
    assert sorted(tree.files) == ["pkg/a.py", "pkg/b.py"]
    paths = sorted(tree.files)
    assert tree._candidates("where", paths) == {
        "Base": "pkg/a.py", "One": "pkg/a.py", "helper": "pkg/a.py", "Two": "pkg/b.py", "unique_name": "pkg/b.py"}
    assert tree._candidates("bases", paths) == {"Base": 2}
    assert tree._candidates("params", paths) == {"limit": 3}
    assert tree._candidates("callers", paths) == {
        "helper": ["pkg/a.py::One.run", "pkg/b.py::Two.go.inner", "pkg/b.py::unique_name"]}
    item = tree.make_item(10, 0, 3)  # a tiny size still takes one file; index 3 asks "callers" where it can
    assert item.kind in codeqa.KINDS and item.query and item.tokens == count_tokens(
        "".join(f"### file: {p}\n{t}" for p, t in item.context.items()))


def test_a_file_cut_short_is_still_read_block_by_block() -> None:
    from rlm.bench.quality.programs.code import facts

    cut = TREE["pkg/a.py"] + "\ndef broken(x:\n"
    found = facts("pkg/a.py", cut)
    assert [name for [name] in found["toplevel"]] == ["Base", "One", "helper"]


def test_code_items_take_this_repository_up_to_the_size() -> None:
    tree = codeqa.CodeTree(codeqa.default_source())
    assert "rlm/bench/quality/tasks/codeqa.py" in tree.files
    biggest = max(tree.tokens(p) for p in tree.files)
    item = tree.make_item(32768, 0, 0)
    assert 0.99 * 32768 <= item.tokens < 32768 + biggest
    again = tree.make_item(32768, 0, 0)
    assert (again.context, again.query, again.expected) == (item.context, item.query, item.expected)
