"""The paired comparison: per-item wins and a bootstrap interval that reproduces known intervals."""

from __future__ import annotations

import math
import statistics

import pytest

from rlm.bench.quality.paired import bootstrap_interval, compare_variants, item_scores, markdown, paired


def _table(n: int) -> tuple[dict[str, float], dict[str, float]]:
    """A fixed synthetic score table: item i scores (i*37 mod 11)/10 under A, B adds 0.2 minus a pattern."""
    a = {f"item{i}": ((i * 37) % 11) / 10 for i in range(n)}
    b = {k: v + 0.2 - ((i * 13) % 7) / 30 for i, (k, v) in enumerate(a.items())}
    return a, b


def test_the_interval_of_a_large_table_is_the_normal_one() -> None:
    """With 400 items the bootstrap interval of a mean is mean ± 1.96 sd/sqrt(n) (sd: the plug-in one)."""
    a, b = _table(400)
    diffs = [b[k] - a[k] for k in a]
    half = 1.959964 * statistics.pstdev(diffs) / math.sqrt(len(diffs))
    result = paired(a, b)
    assert result.diff == pytest.approx(statistics.fmean(diffs))
    assert result.low == pytest.approx(result.diff - half, abs=0.002)
    assert result.high == pytest.approx(result.diff + half, abs=0.002)


def test_small_tables_reproduce_their_exact_intervals() -> None:
    # Two items, 0 and 1: resampled means are 0, 0.5, 1 with chances 1/4, 1/2, 1/4: the 95% interval is [0, 1].
    assert bootstrap_interval([0.0, 1.0]) == (0.0, 1.0)
    # Every item differs by the same amount: the interval is that amount.
    assert bootstrap_interval([0.25] * 12) == pytest.approx((0.25, 0.25))
    # Ten items, one of them 1: the mean is k/10 with k ~ Binomial(10, 0.1); P(k=0) = 0.349 > 2.5%, and
    # P(k <= 2) = 0.930 < 97.5% < P(k <= 3) = 0.987: the exact interval is [0, 0.3].
    assert bootstrap_interval([1.0] + [0.0] * 9) == (0.0, 0.3)


def test_a_fixed_seed_gives_the_same_interval_every_time() -> None:
    a, b = _table(30)
    first, again = paired(a, b), paired(a, b)
    assert (first.low, first.high) == (again.low, again.high)
    other = paired(a, b, seed=1)
    assert (other.low, other.high) != (first.low, first.high)
    assert other.low == pytest.approx(first.low, abs=0.02)


def test_wins_ties_and_losses_are_counted_on_the_items_both_ran() -> None:
    a = {"x": 1.0, "y": 0.5, "z": 0.0, "only-a": 1.0}
    b = {"x": 1.0, "y": 1.0, "z": 0.0, "w": 0.0}
    result = paired(a, b, names=("A", "B"))
    assert (result.n, result.wins, result.ties, result.losses) == (3, 1, 2, 0)
    assert result.mean_a == pytest.approx(0.5) and result.mean_b == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="no item in common"):
        paired({"p": 1.0}, {"q": 1.0})


def test_records_of_two_prompts_make_the_table() -> None:
    records = []
    for i in range(20):
        for repeat in range(2):
            records.append({"id": f"q{i}", "method": "rlm-batch", "prompt": "A", "repeat": repeat, "score": 0.5})
            records.append({"id": f"q{i}", "method": "rlm-batch", "prompt": "B", "repeat": repeat,
                            "score": 1.0 if i % 4 else 0.5})
    records.append({"id": "q0", "method": "base", "prompt": None, "repeat": 0, "score": 1.0})
    assert item_scores(r for r in records if r["prompt"] == "B")["q1"] == 1.0
    ((method, result),) = compare_variants(records)
    assert method == "rlm-batch" and (result.n, result.wins, result.ties) == (20, 15, 5)
    assert result.low > 0 and result.verdict == "B better"
    table = markdown([(method, result)])
    assert "| rlm-batch | A | B | 20 | 15 | 5 | 0 | 0.500 | 0.875 | +0.375 |" in table
    assert "95% CI of B − A" in table and "seed 0" in table
