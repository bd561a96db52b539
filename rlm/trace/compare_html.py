"""The comparison view: the run renderer's sections (``rlm.trace.html``) laid side by side.

Like a single run's record it needs no script: collapsing is ``<details>``, tooltips are
``title``, so the page opens offline and a sanitised notebook output still reads.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from importlib import resources
from typing import Any, Protocol

from . import html
from .markup import escape as _e
from .markup import page
from .outcomes import Divergence, RunSummary


class Comparison(Protocol):
    """What this view reads of a ``rlm.trace.compare.Comparison`` (which imports this module to draw itself)."""

    @property
    def labels(self) -> Sequence[str]: ...

    @property
    def runs(self) -> Sequence[RunSummary]: ...

    @property
    def divergences(self) -> Sequence[Divergence]: ...

    @property
    def parts(self) -> Sequence[dict[str, Any]]: ...

    @property
    def span_ms(self) -> float: ...

#: One colour per run, in order: the table, the column heads and the timelines share it.
RUN_COLOURS = ("#1e88e5", "#e65100", "#2e7d32", "#6a1b9a", "#c62828", "#00838f", "#5d4037", "#ad1457")
ANSWER_CHARS = 160


def css() -> str:
    """The run view's stylesheet and the comparison's own."""
    return html.css() + resources.files("rlm.trace").joinpath("compare.css").read_text(encoding="utf-8")


def chip(i: int, label: str) -> str:
    """A run's label in its colour."""
    return f'<span class="rlm-cmp-chip" style="border-color:{RUN_COLOURS[i % len(RUN_COLOURS)]}">{_e(label)}</span>'


def render(comparison: Comparison, *, style: bool = True) -> str:
    """The whole comparison as one HTML fragment (with its stylesheet unless ``style=False``)."""
    sheet = f"<style>{css()}</style>" if style else ""
    return f'{sheet}<div class="rlm-view rlm-compare">{body(comparison)}</div>'


def body(comparison: Comparison, *, numbers: bool = True) -> str:
    """The comparison's sections, without the stylesheet and the outer box (``numbers``: with the table)."""
    sections = [
        f'<div class="rlm-cmp-title">{len(comparison.runs)} runs side by side: '
        f'{" ".join(chip(i, label) for i, label in enumerate(comparison.labels))}</div>',
        table(comparison.runs) if numbers else "",
        _answers(comparison.runs),
        _divergences(comparison),
        _steps(comparison),
        _timelines(comparison),
        _trees(comparison),
    ]
    return "".join(sections)


def document(comparison: Comparison, *, title: str | None = None) -> str:
    """A standalone page that opens offline: no script, no external resource."""
    return page(render(comparison), title or f"rlm · {' vs '.join(comparison.labels)}")


def _money(cost: float | None) -> str:
    return "–" if cost is None else f"${cost:.4f}"


def table(runs: Iterable[RunSummary], extra: dict[str, list[str]] | None = None) -> str:
    """The numbers, one row per run; ``extra`` adds columns (a bench's score, say) by header."""
    runs = list(runs)
    extra = extra or {}
    heads = ["run", "ended", "answer", *extra, "iterations", "root calls", "sub-calls", "failed", "tokens in",
             "tokens out", "cost", "time"]
    rows = []
    for i, r in enumerate(runs):
        badge = html.BADGES.get("ok" if r.stopped == "final" else r.stopped, r.stopped)
        if r.stopped == "max_iterations":
            badge = "out of iterations"
        answer = "" if r.answer is None else r.answer
        forked = f'<div class="rlm-note">forked from {_e(r.forked)}</div>' if r.forked else ""
        cells = [
            f"{chip(i, r.label)}{forked}",
            f'<span class="rlm-badge rlm-st-{_e(_status_class(r.stopped))}">{_e(badge)}</span>',
            f'<span title="{_e(answer)}">{_e(_short(answer))}</span>',
            *(values[i] for values in extra.values()),
            "–" if r.iterations is None else str(r.iterations), str(r.root_calls), str(r.sub_calls),
            f'<span class="rlm-bad">{r.failed_calls}</span>' if r.failed_calls else "0",
            f"{r.prompt_tokens:,}", f"{r.completion_tokens:,}", _money(r.cost_usd), f"{r.seconds:.2f} s",
        ]
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return (f'<table class="rlm-cmp-table"><thead><tr>{"".join(f"<th>{_e(h)}</th>" for h in heads)}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table>')


def score_colour(score: Any) -> str:
    """Red at 0, amber midway, green at 1."""
    value = min(max(float(score or 0), 0.0), 1.0)
    return f"hsl({round(120 * value)}, 60%, 42%)"


def _status_class(stopped: str) -> str:
    return {"final": "ok", "max_iterations": "budget", "unfinished": "running"}.get(stopped, stopped)


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= ANSWER_CHARS else text[: ANSWER_CHARS - 1] + "…"


def _answers(runs: Sequence[RunSummary]) -> str:
    items = []
    for i, r in enumerate(runs):
        same = next((runs[j].label for j in range(i) if r.answer is not None and runs[j].answer == r.answer), None)
        note = f' <span class="rlm-note">the same as {_e(same)}</span>' if same else ""
        text = "(no answer)" if r.answer is None else r.answer
        items.append(f'<div class="rlm-cmp-answer">{chip(i, r.label)}{note}<pre>{_e(text)}</pre></div>')
    return f'<details class="rlm-cmp-answers" open><summary><h4>Answers</h4></summary>{"".join(items)}</details>'


def _divergences(comparison: Comparison) -> str:
    items = []
    for d in comparison.divergences:
        diff = d.diff()
        detail = f"<details><summary>the code there, as a diff</summary><pre>{_e(diff)}</pre></details>" if diff else ""
        items.append(f'<li class="{"rlm-cmp-diverged" if d.diverged else "rlm-cmp-same"}">{_e(d)}{detail}</li>')
    return f'<h4>Where the code first differs</h4><ul class="rlm-cmp-div">{"".join(items)}</ul>'


def _steps(comparison: Comparison) -> str:
    """One row per iteration number, one column per run: each run's turn as the run view draws it."""
    by_n: list[dict[int, dict[str, Any]]] = [
        {int(it.get("n") or 0): it for it in parts["iterations"]} for parts in comparison.parts
    ]
    numbers = sorted({n for turns in by_n for n in turns})
    marks: dict[tuple[int, int], tuple[str, int]] = {}  # (run, iteration) -> (note, the block to open)
    for k, d in enumerate(comparison.divergences, 1):
        if d.iteration is not None and d.block is not None:
            marks[(k, d.iteration)] = (f"code first differs from {comparison.labels[0]} here", d.block)
        if d.base_iteration is not None and d.base_block is not None:
            marks.setdefault((0, d.base_iteration), ("a later run's code first differs here", d.base_block))
    heads = "".join(f"<th>{chip(i, label)}</th>" for i, label in enumerate(comparison.labels))
    rows = []
    for n in numbers:
        cells = []
        for i, turns in enumerate(by_n):
            mark = marks.get((i, n))
            turn = turns.get(n)
            drawn = html.iteration(turn) if turn is not None else '<div class="rlm-empty">–</div>'
            if mark is not None:  # the differing step's code shown open
                key = f'<details class="rlm-code" data-key="{n}.{mark[1] - 1}">'
                drawn = f'<div class="rlm-cmp-flag">{_e(mark[0])}</div>' + drawn.replace(key, key[:-1] + " open>")
            cells.append(f'<td class="{"rlm-cmp-marked" if mark else ""}">{drawn}</td>')
        rows.append(f'<tr><th class="rlm-cmp-n">{n}</th>{"".join(cells)}</tr>')
    return (f'<h4>Steps, aligned by iteration</h4><div class="rlm-cmp-scroll"><table class="rlm-cmp-steps">'
            f'<thead><tr><th></th>{heads}</tr></thead><tbody>{"".join(rows)}</tbody></table></div>')


def _timelines(comparison: Comparison) -> str:
    """Every run's calls on one time axis: the longest run spans the width."""
    span = comparison.span_ms
    lanes = []
    for i, (label, parts) in enumerate(zip(comparison.labels, comparison.parts, strict=True)):
        section = html.render_sections({"header": parts["header"], "calls": parts["calls"]}, span_ms=span)
        lanes.append(f'<div class="rlm-cmp-lane" data-run="{i}">{chip(i, label)}{section["timeline"]}</div>')
    return f'<h4>Latency timelines <small>one time axis for all runs</small></h4>{"".join(lanes)}'


def _trees(comparison: Comparison) -> str:
    out = []
    for i, (label, parts) in enumerate(zip(comparison.labels, comparison.parts, strict=True)):
        tree = html.render_sections({"tree": parts["tree"], "calls": parts["calls"]})["tree"]
        out.append(f'<details class="rlm-cmp-tree"><summary>{chip(i, label)} fan-out</summary>{tree}</details>')
    return f'<h4>Fan-out</h4>{"".join(out)}'

