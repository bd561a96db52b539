"""Paired comparison of two variants on the same items: per-item wins, and a bootstrap interval of the difference.

Two prompts (or models, or methods) run on the same items differ item by item far
less than their scores vary across items, so they are compared per item: each item's
score under B minus its score under A (repeats averaged first), the count of items
where B scored higher, equal, lower, and the mean difference with a percentile
bootstrap confidence interval over items (resampling items with replacement; a fixed
seed makes the interval the same on every run). An interval that excludes 0 is the
claim "B is better than A" with its uncertainty; one that spans 0 says the items do
not tell them apart.
"""

from __future__ import annotations

import statistics
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

#: Bootstrap resamples, confidence level and seed used unless told otherwise.
RESAMPLES, LEVEL, SEED = 10_000, 0.95, 0
#: Resamples drawn at once (memory: CHUNK x items indices).
CHUNK = 1_000

K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True)
class Paired:
    """B against A on the items both ran: ``diff`` is mean(B - A), ``low``..``high`` its interval."""

    a: str
    b: str
    n: int
    wins: int
    ties: int
    losses: int
    mean_a: float
    mean_b: float
    diff: float
    low: float
    high: float
    level: float = LEVEL
    resamples: int = RESAMPLES
    seed: int = SEED

    @property
    def verdict(self) -> str:
        """What the interval says, in words."""
        if self.n < 2:
            return "too few items to tell"
        if self.low > 0:
            return f"{self.b} better"
        if self.high < 0:
            return f"{self.a} better"
        return "no clear difference"


def bootstrap_interval(diffs: Sequence[float], *, resamples: int = RESAMPLES, level: float = LEVEL,
                       seed: int = SEED) -> tuple[float, float]:
    """The percentile bootstrap interval of the mean of ``diffs`` (numpy's PCG64 from ``seed``).

    ``resamples`` times, ``len(diffs)`` values are drawn with replacement and averaged;
    the interval is the ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles of those means.
    """
    import numpy as np

    if not diffs:
        raise ValueError("no paired items to bootstrap")
    if not 0 < level < 1 or resamples < 1:
        raise ValueError(f"level must be in (0, 1) and resamples >= 1, got {level}, {resamples}")
    values = np.asarray(diffs, dtype=float)
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    for start in range(0, resamples, CHUNK):
        size = min(CHUNK, resamples - start)
        means[start:start + size] = values[rng.integers(0, len(values), size=(size, len(values)))].mean(axis=1)
    low, high = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)


def paired(a: Mapping[K, float], b: Mapping[K, float], *, names: tuple[str, str] = ("A", "B"),
           resamples: int = RESAMPLES, level: float = LEVEL, seed: int = SEED) -> Paired:
    """Compare the scores ``b`` against ``a`` (item -> score) on the items both have."""
    common = [k for k in a if k in b]
    if not common:
        raise ValueError(f"{names[0]} and {names[1]} have no item in common")
    diffs = [float(b[k]) - float(a[k]) for k in common]
    low, high = bootstrap_interval(diffs, resamples=resamples, level=level, seed=seed)
    return Paired(
        a=names[0], b=names[1], n=len(common), wins=sum(d > 0 for d in diffs), ties=sum(d == 0 for d in diffs),
        losses=sum(d < 0 for d in diffs), mean_a=statistics.fmean(float(a[k]) for k in common),
        mean_b=statistics.fmean(float(b[k]) for k in common), diff=statistics.fmean(diffs), low=low, high=high,
        level=level, resamples=resamples, seed=seed,
    )


def item_scores(records: Iterable[dict[str, Any]]) -> dict[str, float]:
    """Item id -> its mean score over the records' repeats (a failed run scores 0, as in the table)."""
    by_item: dict[str, list[float]] = {}
    for record in records:
        by_item.setdefault(str(record["id"]), []).append(float(record["score"]))
    return {item: statistics.fmean(scores) for item, scores in by_item.items()}


def compare_variants(records: Iterable[dict[str, Any]], variant: str = "prompt", *,
                     seed: int = SEED) -> list[tuple[str, Paired]]:
    """Per method, every other value of ``variant`` (a record field) against the first: (method, Paired).

    Records with no value of ``variant`` (a method it does not apply to) are left out.
    """
    groups: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for record in records:
        value = record.get(variant)
        if value is not None:
            groups.setdefault(str(record["method"]), {}).setdefault(str(value), []).append(record)
    out = []
    for method, by_value in groups.items():
        names = list(by_value)
        base = item_scores(by_value[names[0]])
        for other in names[1:]:
            out.append((method, paired(base, item_scores(by_value[other]), names=(names[0], other), seed=seed)))
    return out


def markdown(comparisons: list[tuple[str, Paired]]) -> str:
    """The paired comparisons as a Markdown table, with a line on how to read it."""
    if not comparisons:
        return ""
    first = comparisons[0][1]
    lines = [
        f"| method | A | B | items | B wins | ties | A wins | mean A | mean B | B − A | {first.level:.0%} CI of B − A "
        "| verdict |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for method, p in comparisons:
        lines.append(
            f"| {method} | {p.a} | {p.b} | {p.n} | {p.wins} | {p.ties} | {p.losses} | {p.mean_a:.3f} "
            f"| {p.mean_b:.3f} | {p.diff:+.3f} | [{p.low:+.3f}, {p.high:+.3f}] | {p.verdict} |"
        )
    lines.append("")
    lines.append(f"paired on items (repeats averaged); CI: percentile bootstrap over items, {first.resamples:,} "
                 f"resamples, seed {first.seed}. An interval that excludes 0 is a difference the items support.")
    return "\n".join(lines)
