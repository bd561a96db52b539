"""A results file of many runs (``rlm bench ... --log-dir``): pick a question, see every method's run of it.

``BenchRuns`` is a ``rlm.trace.results.Results`` (the file read by question) that also
draws: every method's logged run of a question side by side (``rlm.compare``), and a
page of every question.

Example::

    runs = BenchRuns("bench-results/oolong.jsonl")
    runs.questions()[:3]                    # item ids, in the order they ran
    runs.compare("oolong/v1/8192/s0/1")     # every method's run of it, side by side
    runs.save_html("oolong.html")           # every question, each opening to its comparison
"""

from __future__ import annotations

import json
from typing import Any

from ..errors import ConfigError
from . import compare_html
from .compare import MAX_RUNS, MIN_RUNS, Comparison
from .markup import HtmlView, escape, page
from .outcomes import RunSummary
from .results import Results, label
from .trace import Trace


class BenchRuns(Results, HtmlView):
    """The runs of one results file, by question, with each question's runs side by side."""

    def compare(self, question: str, repeat: int | None = 0) -> Comparison:
        """Every logged run of ``question`` (of one ``repeat``; None: all) side by side, up to eight."""
        records = [r for r in self.runs(question) if repeat is None or r.get("repeat", 0) == repeat]
        logged = [(r, log) for r in records if (log := self.log_of(r)) is not None][:MAX_RUNS]
        if len(logged) < MIN_RUNS:
            raise ConfigError(f"{question} has {len(logged)} run(s) with a trace log: a comparison needs "
                              f"{MIN_RUNS} (run the benchmark with --log-dir; base and summary keep no trace)")
        several = len({r.get("repeat", 0) for r, _ in logged}) > 1
        return Comparison([Trace.load(log) for _, log in logged], [label(r, several) for r, _ in logged])

    def question_html(self, question: str) -> str:
        """One question: what it asked and expected, every run's score and numbers, and the logged runs compared."""
        records = self.runs(question)
        first = records[0]
        several = len({r.get("repeat", 0) for r in records}) > 1
        summaries = [_summary(label(r, several), r) for r in records]
        scores = [f'<span class="rlm-cmp-score">{float(r.get("score") or 0):.2f}</span>' for r in records]
        facts = (f'<div class="rlm-note">{escape(first.get("kind", ""))} · expected: '
                 f'{escape(json.dumps(first.get("expected"), ensure_ascii=False))}</div>'
                 f'<pre>{escape(first.get("query", ""))}</pre>')
        try:
            view = compare_html.body(self.compare(question, repeat=None if several else 0), numbers=False)
        except ConfigError as exc:
            view = f'<div class="rlm-empty">{escape(exc)}</div>'
        return facts + compare_html.table(summaries, {"score": scores}) + view

    def to_html(self, *, standalone: bool = False) -> str:
        """Every question, each a ``<details>`` row (its scores) that opens to its runs side by side."""
        rows = []
        for question in self.questions():
            records = self.runs(question)
            several = len({r.get("repeat", 0) for r in records}) > 1
            scores = " ".join(
                f'<span class="rlm-cmp-chip" style="border-color:{compare_html.score_colour(r.get("score"))}">'
                f'{escape(label(r, several))} <span class="rlm-cmp-score">{float(r.get("score") or 0):.2f}</span>'
                "</span>" for r in records)
            rows.append(f'<details class="rlm-cmp-question" data-question="{escape(question)}"><summary>'
                        f'<b>{escape(question)}</b> · {escape(records[0].get("kind", ""))} · {scores}</summary>'
                        f"{self.question_html(question)}</details>")
        fragment = (f'<style>{compare_html.css()}</style><div class="rlm-view rlm-compare"><div class="rlm-cmp-title">'
                    f'{escape(self.path.name)}: {len(rows)} questions, {len(self.records)} runs</div>'
                    '<div class="rlm-note">Open a question to see every method\'s run of it.</div>'
                    f'{"".join(rows)}</div>')
        return page(fragment, f"rlm · {self.path.name}") if standalone else fragment



def _summary(name: str, record: dict[str, Any]) -> RunSummary:
    """A results line as a row of the comparison table (a text method has no iterations)."""
    calls = int(record.get("calls") or 0)
    sub_calls = int(record.get("sub_calls") or 0) + int(record.get("failed_sub_calls") or 0)
    return RunSummary(
        label=name, stopped=str(record.get("stopped") or "final"), answer=record.get("answer"),
        iterations=None, root_calls=calls - sub_calls, sub_calls=sub_calls,
        failed_calls=int(record.get("failed_sub_calls") or 0), prompt_tokens=int(record.get("prompt_tokens") or 0),
        completion_tokens=int(record.get("completion_tokens") or 0),
        cost_usd=record.get("cost_usd"), seconds=float(record.get("seconds") or 0.0), log=record.get("log"),
    )
