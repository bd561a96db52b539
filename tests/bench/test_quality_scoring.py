"""The scorers: 0.75^|error| for numbers, exact match for labels and paths, F1 for sets of pairs or names."""

from __future__ import annotations

import pytest

from rlm.bench.quality.items import as_text, parse_size, size_label
from rlm.bench.quality.scoring import (
    exact_match,
    f1,
    number_score,
    parse_names,
    parse_needles,
    parse_number,
    parse_pairs,
    score,
)


def test_a_number_scores_three_quarters_per_unit_of_error() -> None:
    assert number_score(40, 40) == 1.0
    assert number_score(40, 41) == 0.75
    assert number_score(40, 38) == pytest.approx(0.5625)
    assert number_score(40, 30) == pytest.approx(0.75 ** 10)
    assert number_score(40, None) == 0.0


def test_numbers_are_read_from_the_final_answer_line() -> None:
    assert parse_number("There are 1,204 such records.") == 1204
    assert parse_number("In 2023 I counted carefully.\nAnswer: 17") == 17
    assert parse_number("**Answer:** 3.5") == 3.5
    assert parse_number("I could not count them.") is None
    assert score("number", "number", 20, "Answer: 19") == 0.75


def test_exact_match_ignores_case_quotes_bold_and_a_full_stop_only() -> None:
    assert exact_match("location", "Location.") == 1.0
    assert exact_match("location", "**`location`**") == 1.0
    assert exact_match("location", "Label: location") == 1.0
    assert exact_match("more common", "  More   common ") == 1.0
    assert exact_match("location", "location, I think") == 0.0
    assert exact_match("location", "human being") == 0.0
    assert score("exact", "text", "rlm/api.py", "Answer: `rlm/api.py`") == 1.0
    assert score("exact", "text", "rlm/api.py", "rlm/api.py.bak") == 0.0


def test_f1_over_sets() -> None:
    assert f1({1, 2, 3}, {1, 2}) == pytest.approx(0.8)
    assert f1({1, 2}, {1, 2, 3, 4}) == pytest.approx(2 / 3)
    assert f1({1}, {2}) == 0.0
    assert f1(set(), set()) == 1.0
    assert f1(set(), {1}) == 0.0
    assert f1({1}, set()) == 0.0


def test_pairs_are_read_smaller_id_first_and_scored_by_f1() -> None:
    assert parse_pairs("(3, 1)\n[5,7]\n(2, 2)\n(9 ,4)") == {(1, 3), (5, 7), (4, 9)}
    expected = [[1, 3], [5, 7]]
    assert score("f1", "pairs", expected, "(1, 3)\n(7, 5)") == 1.0
    assert score("f1", "pairs", expected, "(1, 3)") == pytest.approx(2 / 3)
    assert score("f1", "pairs", expected, "(2, 4)\n(6, 8)") == 0.0


def test_needles_single_is_exact_multi_is_f1() -> None:
    assert parse_needles("a: 1234567, b: 12345678, c: 7654321") == {"1234567", "7654321"}
    assert score("exact", "needles", ["1234567"], "The number is 1234567.") == 1.0
    assert score("exact", "needles", ["1234567"], "1234567 or 7654321") == 0.0
    assert score("exact", "needles", ["1234567"], "1234568") == 0.0
    assert score("f1", "needles", ["1111111", "2222222"], "x: 1111111\ny: 3333333") == 0.5


def test_names_are_path_and_qualified_name() -> None:
    found = parse_names("- rlm/api.py::RLM.close\n- ./rlm/x.py::f and junk::g")
    assert found == {"rlm/api.py::RLM.close", "rlm/x.py::f"}
    assert score("f1", "names", ["a.py::f", "b.py::C.m"], "a.py::f\nb.py::C.m") == 1.0
    assert score("f1", "names", ["a.py::f"], "a.py::f_") == 0.0


def test_an_unknown_scorer_is_an_error_not_a_zero() -> None:
    with pytest.raises(ValueError, match="no scorer"):
        score("f1", "text", "x", "x")


def test_sizes_read_and_written_in_tokens() -> None:
    assert parse_size("8k") == 8192 and parse_size("1M") == 1024 * 1024 and parse_size("5000") == 5000
    assert parse_size("1.5k") == 1536
    assert [size_label(n) for n in (8192, 131072, 1048576, 5000)] == ["8k", "128k", "1m", "5000"]
    with pytest.raises(ValueError):
        parse_size("big")
    assert as_text({"a.py": "x = 1", "b.py": "y = 2\n"}) == "### file: a.py\nx = 1\n### file: b.py\ny = 2\n"
