"""One event stream for a run: logs, widgets, progress and results all subscribe to it.

Events form a span tree (run > iteration > exec > batch > call, and child runs for
recursion): each span emits ``<kind>.start`` and ``<kind>.end`` with the same id.
Other kinds (``call.retry``, ``call.delta``, ``batch.poll``, ``run.estimate``, ``run.fork``, ``run.context``) are
point events attached to the span whose id they carry.

What each kind carries in ``data`` (all JSON-able; keys may be absent):

- ``run``: start: query, model, depth, context; end: status, answer, iterations, fallback, seconds;
  ``run.estimate`` (a top-level run, as it starts): tokens, sub_calls, total_tokens, cost_usd
  (``[low, high]`` each); ``run.fork``: origin, at, origin_log; ``run.context`` (documents, once
  read where root code runs): description (its first line), chars, tokens, documents (name, kind,
  pages, unit, chars, skipped), failed (``[name, why]``)
- ``iteration``: start: n, fallback; end: blocks, final
- ``exec``: start: code; end: stdout, stderr, error, seconds, final
- ``batch``: start: n, max_concurrent, model; end: status, failed; ``batch.poll`` (a map
  via the Batch API): batch_id, status, completed, failed, total
- ``call``: start: model, role, prompt_chars; end: status (ok | error | cancelled),
  seconds, prompt_tokens, completion_tokens, cost_usd, error, cached
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("rlm")

_ids = itertools.count(1)


def new_id(prefix: str) -> str:
    """A short id, unique within the process."""
    return f"{prefix}-{next(_ids)}"


@dataclass(frozen=True, slots=True)
class Event:
    """One thing that happened. ``kind`` is e.g. ``"call.end"``; ``data`` is JSON-able."""

    kind: str
    id: str
    parent: str | None
    ts: float
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def span(self) -> str:
        """The span kind: ``"call"`` for ``"call.end"``."""
        return self.kind.partition(".")[0]

    @property
    def phase(self) -> str:
        """``"start"``, ``"end"``, or the name of a point event (``"retry"``)."""
        return self.kind.partition(".")[2]

    def to_dict(self) -> dict[str, Any]:
        """The event as one JSON object (one line of a trace log)."""
        return {"kind": self.kind, "id": self.id, "parent": self.parent, "ts": self.ts, "data": self.data}

    @classmethod
    def from_dict(cls, obj: dict[str, Any]) -> Event:
        """Inverse of ``to_dict``; raises ``KeyError``/``TypeError`` on a malformed object."""
        return cls(str(obj["kind"]), str(obj["id"]), obj.get("parent"), float(obj["ts"]), dict(obj.get("data") or {}))


Subscriber = Callable[[Event], None]

#: The span kinds, outermost first.
SPAN_KINDS = ("run", "iteration", "exec", "batch", "tool", "call")


class Tracer:
    """Fans events out to subscribers and keeps them for the result.

    A subscriber that raises is logged and dropped from that event only: a broken
    view must never fail the run it is watching.
    """

    def __init__(self, subscribers: list[Subscriber] | None = None, *, keep: bool = True) -> None:
        self.events: list[Event] = []
        self._subscribers: list[Subscriber] = list(subscribers or [])
        self._keep = keep
        self._lock = threading.Lock()

    def emit(self, kind: str, span_id: str, parent: str | None, **data: Any) -> Event:
        event = Event(kind, span_id, parent, time.time(), data)
        with self._lock:
            if self._keep:
                self.events.append(event)
            subscribers = tuple(self._subscribers)
        for fn in subscribers:
            try:
                fn(event)
            except Exception:
                log.exception("trace subscriber %r failed on %s", fn, kind)
        return event

    def start(self, kind: str, parent: str | None, **data: Any) -> str:
        """Open a span and return its id."""
        span_id = new_id(kind)
        self.emit(f"{kind}.start", span_id, parent, **data)
        return span_id

    def end(self, kind: str, span_id: str, parent: str | None, **data: Any) -> None:
        self.emit(f"{kind}.end", span_id, parent, **data)
