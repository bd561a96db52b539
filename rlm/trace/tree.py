"""Rebuild the span tree (run > iteration > exec > batch > call) from a flat event list.

Why a separate pass: events arrive interleaved (a batch's calls overlap, child runs
nest inside code steps), and a log may end mid-run after a crash or a Stop; the tree
must still come out whole, with unfinished spans marked ``running``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from .events import Event


@dataclass(slots=True)
class Span:
    """One span: its start and end events folded together.

    ``data`` is the start event's data updated with the end event's; ``notes`` are
    point events (``call.retry``) that named this span.
    """

    kind: str
    id: str
    parent: str | None
    start: float
    end: float | None = None
    data: dict[str, Any] = field(default_factory=dict)
    children: list[Span] = field(default_factory=list)
    notes: list[Event] = field(default_factory=list)

    @property
    def status(self) -> str:
        """``running`` until the span ends; then ``ok``, ``error`` or ``cancelled``."""
        if self.end is None:
            return "running"
        status = self.data.get("status")
        if status:
            return str(status)
        return "error" if self.data.get("error") else "ok"

    @property
    def seconds(self) -> float | None:
        """Wall time from start to end, or None while running."""
        return None if self.end is None else self.end - self.start

    def walk(self) -> Iterator[Span]:
        """This span and every span below it, depth first, in start order."""
        yield self
        for child in self.children:
            yield from child.walk()

    def find(self, kind: str) -> list[Span]:
        """Every span of ``kind`` at or below this one."""
        return [s for s in self.walk() if s.kind == kind]


def build_tree(events: Iterable[Event]) -> list[Span]:
    """The root spans (normally one run) with their children, in start order.

    A span whose parent never appears (a log cut short at the front) becomes a root
    rather than being dropped.
    """
    spans: dict[str, Span] = {}
    order: list[Span] = []
    for event in events:
        phase = event.phase
        if phase == "start":
            span = Span(event.span, event.id, event.parent, event.ts, data=dict(event.data))
            spans[event.id] = span
            order.append(span)
        elif phase == "end":
            ended = spans.get(event.id)
            if ended is None:  # the start was lost; keep what the end says
                ended = Span(event.span, event.id, event.parent, event.ts)
                spans[event.id] = ended
                order.append(ended)
            ended.end = event.ts
            ended.data.update(event.data)
        else:
            target = spans.get(event.id)
            if target is not None:
                target.notes.append(event)
    roots: list[Span] = []
    for span in order:
        parent = spans.get(span.parent) if span.parent else None
        (parent.children if parent is not None else roots).append(span)
    return roots
