"""Runs side by side: ``rlm.compare(a, b, ...)`` for 2 to 8 results, traces or saved logs.

Each run is folded by ``RunState`` (the one model behind every view of a run) and drawn
by the run renderer in ``rlm.trace.html``, so a run in a comparison looks as it does
alone. What a comparison adds: one table of outcomes and costs, the steps of every run
aligned by iteration, where each run's code first differs from the first run's, and
the latency timelines on one shared time axis.

Example::

    view = rlm.compare(result_a, result_b, labels=["gpt-5", "gpt-5-mini"])
    view                          # in a notebook: the comparison
    view.table()                  # the numbers, one dict per run
    view.save_html("ab.html")     # the same as one page that opens offline
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from . import compare_html
from .endings import ending
from .markup import HtmlView
from .outcomes import Divergence, RunSummary
from .state import RunState
from .trace import Trace

MIN_RUNS, MAX_RUNS = 2, 8


class Comparison(HtmlView):
    """2 to 8 runs folded for a side-by-side view; displays itself in a notebook.

    ``runs``: a ``RunSummary`` per run; ``divergences``: one per run after the first;
    ``parts``: each run's view parts (``RunState.parts()``); ``span_ms``: the shared axis.
    """

    def __init__(self, traces: Sequence[Trace], labels: Sequence[str]) -> None:
        if not MIN_RUNS <= len(traces) <= MAX_RUNS:
            raise ConfigError(f"compare() takes {MIN_RUNS} to {MAX_RUNS} runs, got {len(traces)}")
        if len(labels) != len(traces):
            raise ConfigError(f"compare() got {len(labels)} labels for {len(traces)} runs")
        self.traces = list(traces)
        self.labels = _unique([str(label) for label in labels])
        self.parts = [RunState(trace).parts() for trace in self.traces]
        self.runs = [_summary(label, parts, trace) for label, parts, trace in
                     zip(self.labels, self.parts, self.traces, strict=True)]
        base = _code_steps(self.parts[0])
        self.divergences = [_diverge(self.labels[0], base, label, _code_steps(parts))
                            for label, parts in zip(self.labels[1:], self.parts[1:], strict=True)]

    @property
    def span_ms(self) -> float:
        """The longest run's duration: every timeline is drawn on this axis."""
        return max(float(p["header"].get("elapsed") or 0.0) for p in self.parts) * 1000

    def table(self) -> list[dict[str, Any]]:
        """One dict per run: its label, ending, answer, iterations, calls, tokens, cost and seconds."""
        return [asdict(run) for run in self.runs]

    def to_html(self, *, standalone: bool = False) -> str:
        """The comparison as an HTML fragment, or as a whole page that opens offline."""
        if standalone:
            return compare_html.document(self)
        return compare_html.render(self)


    def __repr__(self) -> str:
        rows = [f"{r.label}: {r.stopped}, {r.iterations} iterations, {r.sub_calls} sub-calls, "
                f"{r.prompt_tokens + r.completion_tokens:,} tokens, {r.seconds:.2f} s" for r in self.runs]
        return "Comparison(\n  " + "\n  ".join(rows + [str(d) for d in self.divergences]) + "\n)"


def compare(*runs: Any, labels: Sequence[str] | None = None) -> Comparison:
    """2 to 8 runs side by side: answers, aligned steps, first divergence, costs, shared timeline.

    Each run is an ``RLMResult``, a ``Trace``, an exception with a ``.partial`` result
    (a failed or stopped run), or the path of a JSONL log. One mapping of label -> run
    also works. Labels default to the logs' file names, else ``A``, ``B``, ...
    Example::

        rlm.compare(baseline, edited, labels=["baseline", "edited prompt"])
        rlm.compare("logs/a.jsonl", "logs/b.jsonl").save_html("ab.html")
    """
    if len(runs) == 1 and isinstance(runs[0], Mapping):
        labels = [str(k) for k in runs[0]] if labels is None else labels
        runs = tuple(runs[0].values())
    traces = []
    for i, run in enumerate(runs):
        try:
            traces.append(Trace.of(run))
        except TypeError as exc:
            raise ConfigError(f"compare(): run {i + 1}: {exc}") from None
    if labels is None:
        labels = [Path(run).stem if isinstance(run, (str, os.PathLike)) else chr(ord("A") + i)
                  for i, run in enumerate(runs)]
    return Comparison(traces, list(labels))


def _unique(labels: list[str]) -> list[str]:
    """Labels as given, a repeated one numbered (two logs of the same name, say)."""
    seen: dict[str, int] = {}
    out = []
    for label in labels:
        seen[label] = seen.get(label, 0) + 1
        out.append(label if seen[label] == 1 and labels.count(label) == 1 else f"{label} ({seen[label]})")
    return out


def _summary(label: str, parts: dict[str, Any], trace: Trace) -> RunSummary:
    header, calls = parts["header"], parts["calls"]
    progress = header.get("progress") or {}
    status = str(header.get("status") or "running")
    stopped = ending(status, bool(header.get("fallback")))
    forked = header.get("forked")
    roles, statuses = calls["role"], calls["status"]
    answer = header.get("answer")
    return RunSummary(
        label=label, stopped=stopped, answer=None if answer is None else str(answer),
        iterations=len(parts["iterations"]), root_calls=roles.count("R"),
        sub_calls=sum(1 for r in roles if r != "R"),
        failed_calls=sum(1 for r, s in zip(roles, statuses, strict=True) if r != "R" and s == "e"),
        prompt_tokens=int(progress.get("prompt_tokens") or 0),
        completion_tokens=int(progress.get("completion_tokens") or 0),
        cost_usd=progress.get("cost_usd"), seconds=float(header.get("elapsed") or 0.0),
        forked=f"{forked.get('origin')} at step {forked.get('at')}" if forked else None,
        log=str(trace.path) if trace.path is not None else None,
    )


def _code_steps(parts: dict[str, Any]) -> list[tuple[int, int, str]]:
    """(iteration, block, code) of every code step of the top-level run, in order."""
    return [(int(it.get("n") or 0), k + 1, str(step.get("code", "")))
            for it in parts["iterations"] for k, step in enumerate(it.get("steps") or [])]


def _diverge(base_label: str, base: list[tuple[int, int, str]], label: str,
             steps: list[tuple[int, int, str]]) -> Divergence:
    for i in range(max(len(base), len(steps))):
        mine = steps[i] if i < len(steps) else None
        theirs = base[i] if i < len(base) else None
        if mine is None or theirs is None or mine[2] != theirs[2]:
            return Divergence(label, base_label, iteration=mine[0] if mine else None, block=mine[1] if mine else None,
                              base_iteration=theirs[0] if theirs else None, base_block=theirs[1] if theirs else None,
                              base_code=theirs[2] if theirs else None, code=mine[2] if mine else None)
    return Divergence(label, base_label)
