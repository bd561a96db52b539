"""``Trace``: a run's events as a tuple that also knows how to show, save and load itself."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import html
from .events import Event
from .jsonl import dumps, iter_events
from .markup import HtmlView
from .state import RunState
from .tree import Span, build_tree

if TYPE_CHECKING:
    from typing_extensions import Self


class Trace(tuple[Event, ...], HtmlView):
    """Every event of a run, in order. A tuple, so ``len``, indexing and iteration work.

    In a notebook it displays the run's view (counters, iterations, fan-out tree,
    latency timeline). Example::

        result = rlm.completion(text, query)
        result.trace                      # the view
        result.trace.to_jsonl("run.jsonl")
        Trace.load("run.jsonl").tree()[0].find("call")

    ``path`` is the log file the events were written to or read from, if any.
    """

    path: Path | None

    def __new__(cls, events: Iterable[Event] = (), *, path: str | os.PathLike[str] | None = None) -> Self:
        self = super().__new__(cls, events)
        self.path = Path(path) if path is not None else None
        return self

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Trace:
        """Load a log written by ``RLM(log_dir=...)`` or ``to_jsonl``; it displays as the run's record."""
        return cls(iter_events(path), path=path)

    from_jsonl = load

    @classmethod
    def of(cls, source: Any) -> Trace:
        """The trace of a run given as a ``Trace``, a result (its ``.trace``), an exception with a
        ``.partial`` result (a run that failed or was stopped), or the path of a JSONL log.

        Raises ``TypeError`` for anything else.
        """
        if isinstance(source, Trace):
            return source
        if isinstance(source, (str, os.PathLike)):
            return cls.load(source)
        for candidate in (source, getattr(source, "partial", None)):
            trace = getattr(candidate, "trace", None)
            if isinstance(trace, Trace):
                return trace
        raise TypeError(f"expected a Trace, an RLMResult, an exception with .partial or a log path, "
                        f"not {type(source).__name__}")

    def to_jsonl(self, path: str | os.PathLike[str]) -> Path:
        """Write one event per line; returns the path."""
        target = Path(path)
        with target.open("w", encoding="utf-8") as fh:
            for event in self:
                fh.write(dumps(event) + "\n")
        return target

    def tree(self) -> list[Span]:
        """The root spans (normally one run) with their children."""
        return build_tree(self)

    def parts(self) -> dict[str, Any]:
        """What a view shows, as JSON-able parts (see ``rlm.trace.state``)."""
        return RunState(self).parts(details=True)

    def to_html(self, *, standalone: bool = False) -> str:
        """The view as an HTML fragment, or as a whole page that opens offline."""
        parts = self.parts()
        if standalone:
            return html.document(parts, title=f"rlm · {parts['header'].get('query', '')[:80]}")
        return html.render(parts)


    def __repr__(self) -> str:
        runs = sum(1 for e in self if e.kind == "run.start")
        calls = sum(1 for e in self if e.kind == "call.start")
        where = f", path={str(self.path)!r}" if self.path else ""
        return f"Trace({len(self)} events, {runs} run{'s' if runs != 1 else ''}, {calls} calls{where})"
