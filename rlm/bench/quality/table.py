"""The results table: per method and size, the score's mean ± std over seeds and repeats, and the costs.

An RLM run varies a lot from one sample to the next, so a single number hides most of
what matters: each (seed, repeat) group of items gets its mean score, and the table
shows the mean and the sample standard deviation of those group means.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ...trace.results import label
from .items import size_label


@dataclass(frozen=True)
class Row:
    """One line of the table."""

    method: str
    size: int
    tokens: float
    runs: int
    groups: int
    mean: float
    std: float
    cost_usd: float | None
    tokens_per_query: float
    sub_calls: float
    seconds: float
    failed: int


def rows(records: Iterable[dict[str, Any]], methods: list[str], sizes: list[int]) -> list[Row]:
    """The table's rows, in the order the methods (row names, see ``label``) and sizes were asked for."""
    by_cell: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for record in records:
        by_cell.setdefault((label(record), record["size"]), []).append(record)
    out = []
    for size in sizes:
        for method in methods:
            cell = by_cell.get((method, size))
            if cell:
                out.append(_row(method, size, cell))
    return out


def _row(method: str, size: int, cell: list[dict[str, Any]]) -> Row:
    groups: dict[tuple[int, int], list[float]] = {}
    for record in cell:
        groups.setdefault((record["seed"], record["repeat"]), []).append(float(record["score"]))
    means = [statistics.fmean(scores) for scores in groups.values()]
    costs = [record["cost_usd"] for record in cell]
    return Row(
        method=method, size=size, tokens=statistics.fmean(r["tokens"] for r in cell), runs=len(cell),
        groups=len(means), mean=statistics.fmean(means), std=statistics.stdev(means) if len(means) > 1 else 0.0,
        cost_usd=None if any(c is None for c in costs) else statistics.fmean(costs),
        tokens_per_query=statistics.fmean(r["prompt_tokens"] + r["completion_tokens"] for r in cell),
        sub_calls=statistics.fmean(r["sub_calls"] for r in cell),
        seconds=statistics.fmean(r["seconds"] for r in cell),
        failed=sum(1 for r in cell if r["error"]),
    )


def markdown(table: list[Row]) -> str:
    """The rows as a Markdown table."""
    lines = [
        "| method | size | context tokens | runs (groups) | score, mean ± std | $/query | tokens/query "
        "| sub-calls/query | s/query | failed runs |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in table:
        cost = "n/a" if r.cost_usd is None else f"{r.cost_usd:.4f}"
        lines.append(
            f"| {r.method} | {size_label(r.size)} | {r.tokens:,.0f} | {r.runs} ({r.groups}) "
            f"| {r.mean:.3f} ± {r.std:.3f} | {cost} | {r.tokens_per_query:,.0f} | {r.sub_calls:.1f} "
            f"| {r.seconds:.2f} | {r.failed} |"
        )
    lines.append("")
    lines.append("score: mean ± sample std of the mean scores of the (seed, repeat) groups; a failed run scores 0. "
                 "Dollars and tokens: every call of a run (root, sub-calls, reading steps); n/a where a model has "
                 "no price.")
    return "\n".join(lines)
