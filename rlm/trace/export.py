"""Runs as training data: the root's conversation as chat examples, from results, traces, logs or a bench.

The trace keeps the root's messages exactly as each root call sent them
(``history.sent``), so an example is what the model saw and what it replied: rlm's
system prompt, the context's description and preview, each REPL output as the root read
it (whole, or shrunk once a newer one came), a compaction's summary. Every root call with
a reply is trained on exactly once, on exactly the messages it was sent. A call whose
messages and reply are the start of a later call's messages, unchanged, shares that
call's example, so a run whose outputs never shrank and whose history was never
compacted is one example. Every other assistant turn in an example (trained on in
another example, or not written by the model in this run: a fork's replayed or edited
step) is context with ``weight: 0``. ``sub_calls=True`` adds every sub-call
(``llm_query``/``llm_batch`` item) whose prompt the trace holds whole, and every
recursive child's conversation.

Two layouts: ``"openai"``, the fine-tuning file (``{"messages": [...]}`` per line, roles
system/user/assistant), and ``"messages"``, the plain messages with the example's
``metadata`` (run, model, query, ending, answer, ``targets``: the indices of the messages
to train on; a benchmark's item, method, score and answer key). No secret goes in:
values of the environment's ``*_KEY``/``*_TOKEN``/``*_SECRET``/``*_PASSWORD`` variables,
``sk-...`` keys, bearer tokens and a URL's user:password are replaced by ``[redacted]``
wherever they appear, and no context text goes in beyond what the model was shown,
unless ``context=True`` asks for a result's.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .endings import ENDINGS, ending
from .events import Event
from .redact import REDACTED as REDACTED  # re-exported: the mask callers compare with
from .redact import Redactor
from .results import Results, is_results_file
from .trace import Trace

FORMATS = ("openai", "messages")


@dataclass(frozen=True)
class Example:
    """One training example: ``messages`` (role, content; ``weight`` 0 on a turn not to train on)."""

    messages: list[dict[str, Any]]
    #: "root": a top-level run's conversation; "child": an rlm_query run's; "sub": one sub-call.
    kind: str
    metadata: dict[str, Any] = field(default_factory=dict)

    def openai(self) -> dict[str, Any]:
        """The OpenAI fine-tuning line: ``{"messages": [...]}``, nothing else."""
        return {"messages": [dict(m) for m in self.messages]}

    def plain(self) -> list[dict[str, str]]:
        """The messages as role and content only, for trainers that take a list of messages."""
        return [{"role": str(m["role"]), "content": str(m["content"])} for m in self.messages]

    def to_dict(self) -> dict[str, Any]:
        """The ``"messages"`` layout: the plain messages and the metadata."""
        return {"messages": self.plain(), "metadata": dict(self.metadata)}


@dataclass
class Export:
    """Examples from many runs, and the runs left out with the reason."""

    examples: list[Example] = field(default_factory=list)
    runs: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def write(self, path: str | os.PathLike[str], format: str = "openai") -> Path:
        """One example per line, in ``format`` (``"openai"`` or ``"messages"``); returns the path."""
        if format not in FORMATS:
            raise ConfigError(f"format={format!r}: choose one of {', '.join(FORMATS)}")
        target = Path(path)
        with target.open("w", encoding="utf-8") as fh:
            for example in self.examples:
                line = example.openai() if format == "openai" else example.to_dict()
                fh.write(json.dumps(line, ensure_ascii=False) + "\n")
        return target

    def reasons(self) -> dict[str, int]:
        """How many runs (or sub-calls) were left out for each reason, in the order first met."""
        return dict(Counter(why for _, why in self.skipped))

    def __repr__(self) -> str:
        left = "; ".join(f"{n} {why}" for why, n in self.reasons().items())
        return f"Export({len(self.examples)} examples from {self.runs} runs" + (f"; skipped: {left})" if left else ")")


def stopped_of(events: Sequence[Event]) -> str:
    """How the top-level run ended, as ``RLMResult.stopped`` says it ("unfinished": no end in the log)."""
    root = next((e for e in events if e.kind == "run.start"), None)
    end = next((e for e in events if root is not None and e.kind == "run.end" and e.id == root.id), None)
    if end is None:
        return "unfinished"
    return ending(str(end.data.get("status") or "error"), bool(end.data.get("fallback")))


def examples(source: Any, *, sub_calls: bool = False, context: bool = False,
             secrets: Iterable[str] = ()) -> list[Example]:
    """The training examples of one run: an ``RLMResult``, a ``Trace``, a log's path, or an exception's partial.

    ``context=True`` adds the run's whole context to each example's metadata (only a
    result knows it: a log keeps what the model was shown, not the context).
    """
    return _examples(source, sub_calls=sub_calls, context=context, secrets=secrets)[0]


def _examples(source: Any, *, sub_calls: bool, context: bool, secrets: Iterable[str]) -> tuple[list[Example], int]:
    """The examples of one run, and how many of its sub-calls were left out for a prompt the trace cut."""
    trace = Trace.of(source)
    redact = Redactor(secrets)
    extra: dict[str, Any] = {}
    if context:
        origin = getattr(source, "origin", None)  # an RLMResult's rlm.core.result.Origin: its engine and context
        if origin is None or not hasattr(origin, "context"):
            raise ConfigError("context=True needs the RLMResult itself: a trace or log does not keep the context")
        given = origin.context
        extra["context"] = given if isinstance(given, (str, list, dict)) else str(given)
    return _from_events(list(trace), redact, sub_calls=sub_calls, extra=extra, log=trace.path)


def export(sources: Any, path: str | os.PathLike[str] | None = None, *, format: str = "openai",
           sub_calls: bool = False, stopped: Iterable[str] | None = ("final",), min_score: float | None = None,
           context: bool = False, secrets: Iterable[str] = ()) -> Export:
    """Training examples from runs, filtered by outcome, written to ``path`` as JSONL when given.

    ``sources``: one run or a list of them: results, traces, log paths, folders of logs
    (every ``*.jsonl`` under them), or a quality-bench results file (its logged runs, with
    their score and the answer key). ``stopped``: the endings kept (None: all);
    ``min_score``: a bench run's score at least this (a run with no score is left out).
    Example::

        rlm.export("bench-results/oolong.jsonl", "train.jsonl", min_score=1.0)
        rlm.export([result_a, result_b], format="messages").examples[0].plain()
    """
    if format not in FORMATS:
        raise ConfigError(f"format={format!r}: choose one of {', '.join(FORMATS)}")
    keep = None if stopped is None else set([stopped] if isinstance(stopped, str) else stopped)
    unknown = sorted(keep - set(ENDINGS)) if keep is not None else []
    if unknown:
        raise ConfigError(f"stopped: {', '.join(unknown)} is not an ending; choose from {', '.join(ENDINGS)}")
    out = Export()
    redact = Redactor(secrets)
    items = list(sources) if isinstance(sources, (list, tuple)) else [sources]
    for item in items:
        for name, run, bench in _runs(item):
            out.runs += 1
            trace = Trace.of(run) if run is not None else None
            why = _left_out(trace, bench, keep, min_score)
            if why is not None:
                out.skipped.append((name, why))
                continue
            found, cut = _examples(run if context else trace, sub_calls=sub_calls, context=context, secrets=secrets)
            if not found:
                out.skipped.append((name, "no root call with a reply in its trace"))
            if cut:
                out.skipped.append((name, f"{cut} sub-call(s) the trace does not keep whole (a long prompt's "
                                          "middle, or images)"))
            for example in found:
                if bench:
                    example.metadata["bench"] = redact.value(bench)
            out.examples.extend(found)
    if path is not None:
        out.write(path, format)
    return out


def _runs(source: Any) -> Iterable[tuple[str, Any, dict[str, Any]]]:
    """(name, run, bench metadata) of every run a source names."""
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if path.is_dir():
            logs = sorted(p for p in path.rglob("*.jsonl") if not is_results_file(p))
            yield from ((str(p), p, {}) for p in logs)
            return
        if not path.exists():
            raise ConfigError(f"no such file or folder: {path}")
        if is_results_file(path):
            yield from _bench_runs(Results(path))
            return
        yield str(path), path, {}
        return
    yield type(source).__name__, source, {}


#: What an example's ``metadata["bench"]`` keeps of a results line: the question, its answer key, the run's score.
BENCH_FIELDS = ("task", "id", "method", "prompt", "repeat", "kind", "query", "expected", "metric", "score", "stopped")


def _bench_runs(runs: Results) -> Iterable[tuple[str, Any, dict[str, Any]]]:
    for record in runs.records:
        name = f"{runs.path.name}: {record.get('id')} {record.get('method')}"
        yield name, runs.log_of(record), {k: record.get(k) for k in BENCH_FIELDS}


def _left_out(trace: Trace | None, bench: dict[str, Any], keep: set[str] | None,
              min_score: float | None) -> str | None:
    """Why a run is not exported (None: it is)."""
    if trace is None:
        return "no trace log (a text method, or run without --log-dir)"
    ending = bench.get("stopped") or stopped_of(trace)
    if keep is not None and ending not in keep:
        return f"stopped: {ending}"
    if min_score is not None:
        score = bench.get("score")
        if score is None:
            return "no score"
        if float(score) < min_score:
            return f"score below {min_score:g}"
    return None


def _from_events(events: list[Event], redact: Redactor, *, sub_calls: bool, extra: dict[str, Any],
                 log: Path | None) -> tuple[list[Example], int]:
    runs = [e for e in events if e.kind == "run.start"]
    out: list[Example] = []
    for run in runs:
        if run.parent is not None and not sub_calls:
            continue
        meta = {"run": run.id, "model": run.data.get("model"), "depth": run.data.get("depth", 0),
                "query": run.data.get("query"), **({"log": str(log)} if log is not None else {})}
        end = next((e for e in events if e.kind == "run.end" and e.id == run.id), None)
        if end is not None:
            meta["answer"] = end.data.get("answer")
        if run.parent is None:
            meta.update(stopped=stopped_of(events), **extra)
        kind = "root" if run.parent is None else "child"
        for messages in _conversations(events, run.id):
            targets = [k for k, m in enumerate(messages) if m.get("role") == "assistant" and "weight" not in m]
            out.append(Example(_clean(messages, redact), kind, redact.value({**meta, "targets": targets})))
    if not sub_calls:
        return out, 0
    subs, cut = _sub_examples(events, redact, log)
    return out + subs, cut


def _calls(events: list[Event], run_id: str) -> list[list[dict[str, Any]]]:
    """Each root call of the run with a whole, non-empty reply: the messages it was sent, then that reply.

    A call's messages are the previous call's first ``keep`` then its ``add`` (``history.sent``).
    """
    iterations = {e.id for e in events if e.kind == "iteration.start" and e.parent == run_id}
    sent = {e.id: e.data for e in events if e.kind == "history.sent" and e.id in iterations}
    roots = {e.id: e.parent for e in events if e.kind == "call.start" and e.data.get("role") == "root"
             and e.parent in iterations}
    replies: dict[str, str] = {}
    for e in events:
        if e.kind == "call.end" and e.id in roots and e.data.get("status") == "ok" and not e.data.get("reply_cut"):
            replies[str(roots[e.id])] = str(e.data.get("reply") or "")
    history: list[dict[str, Any]] = []
    calls = []
    for event in events:
        if event.kind != "iteration.start" or event.id not in sent:
            continue
        data = sent[event.id]
        history = history[: int(data.get("keep") or 0)] + [dict(m) for m in data.get("add") or []]
        reply = replies.get(event.id, "")
        if reply.strip():
            calls.append([*history, {"role": "assistant", "content": reply}])
    return calls


def _conversations(events: list[Event], run_id: str) -> list[list[dict[str, Any]]]:
    """The run's root calls as few examples as train each call once, on exactly the messages it was sent.

    A call shares a later call's example when its messages and reply are the first messages
    of that example, unchanged; once an older output has shrunk or turns were compacted,
    they are not, and the call is its own example. In an example, an assistant message is
    trained on (no ``weight``) only as the reply of the call it is assigned to; every other
    one, a turn the model did not write in this run (a fork's replayed or edited step) or
    one trained on in another example, is context with ``weight: 0``.
    """
    calls = _calls(events, run_id)

    def covers(j: int, i: int) -> bool:
        return len(calls[j]) > len(calls[i]) and calls[j][: len(calls[i])] == calls[i]

    heads = [j for j in range(len(calls)) if not any(covers(k, j) for k in range(len(calls)))]
    targets = {j: {len(calls[j]) - 1} for j in heads}
    for i in range(len(calls)):
        if i not in targets:  # the first example it begins, so it is trained once
            targets[next(j for j in heads if covers(j, i))].add(len(calls[i]) - 1)
    return [[dict(m, weight=0) if m.get("role") == "assistant" and k not in targets[j] else m
             for k, m in enumerate(calls[j])] for j in heads]


def _sub_examples(events: list[Event], redact: Redactor, log: Path | None) -> tuple[list[Example], int]:
    """Each sub-call whose whole prompt the trace kept (its only message), and how many it did not.

    A call's images are kept as metadata and at most a thumbnail, so a call with images is not whole.
    """
    starts = {e.id: e for e in events if e.kind == "call.start" and e.data.get("role") != "root"}
    out = []
    cut = 0
    for e in events:
        start = starts.get(e.id) if e.kind == "call.end" else None
        if start is None or e.data.get("status") != "ok" or e.data.get("reply_cut") or "reply" not in e.data:
            continue
        prompt = str(start.data.get("prompt") or "")
        if start.data.get("prompt_chars") != len(prompt) or start.data.get("images"):
            cut += 1
            continue
        meta = {"call": e.id, "model": start.data.get("model"), "targets": [1],
                **({"log": str(log)} if log is not None else {})}
        messages = [{"role": "user", "content": prompt}, {"role": "assistant", "content": str(e.data["reply"])}]
        out.append(Example(_clean(messages, redact), "sub", meta))
    return out, cut


def _clean(messages: list[dict[str, Any]], redact: Redactor) -> list[dict[str, Any]]:
    """Role, text content (parts joined) and weight of each message, secrets redacted."""
    out = []
    for message in messages:
        content = message.get("content")
        if isinstance(content, list):
            content = "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
        cleaned: dict[str, Any] = {"role": str(message.get("role")), "content": redact(str(content or ""))}
        if "weight" in message:
            cleaned["weight"] = message["weight"]
        out.append(cleaned)
    return out
