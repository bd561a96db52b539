"""A run's progress as short lines a person reads while it works, from its trace events.

The OpenAI endpoint streams these lines as reasoning deltas (clients that show
reasoning show them; others ignore them); the MCP server sends them as the message of
its progress notifications, with the count of model calls done as the progress.
"""

from __future__ import annotations

from ..trace.events import Event

#: The most of a step's code a line quotes.
CODE_CHARS = 160


class Narrator:
    """Folds events into lines; ``__call__`` returns the line an event adds, or None.

    Not thread-safe: feed it from one thread (the server's loop, after the hop).
    """

    def __init__(self) -> None:
        self.calls_done = 0
        self.calls_failed = 0
        self.calls_total = 0
        self.tokens = 0
        self.cost_usd = 0.0
        #: A map's items (completions of their own, depth 0 under the map's run) that ended.
        self.items_done = 0
        self._step = 0
        self._root: str | None = None
        self._items: set[str] = set()

    def __call__(self, event: Event) -> str | None:
        kind, data = event.kind, event.data
        if kind.startswith("call."):
            self._call(kind, data)
            return None
        if kind == "run.start":
            if self._root is None:
                self._root = event.id
                return None
            if data.get("depth") == 0:  # not a child: a map's item
                self._items.add(event.id)
                return f"Item {len(self._items)}: a run over {_short(str(data.get('context', '')), 100)}"
            return f"rlm_query: a recursive run on {_short(str(data.get('query', '')), 80)!r}"
        if kind == "run.end" and event.id != self._root:
            status = data.get("status", "done")
            if event.id in self._items:
                self.items_done += 1
                return f"Item done ({status}): {self.items_done} of the map's items · {self.summary()}"
            return f"A recursive run ended ({status}) · {self.summary()}"
        if kind == "run.estimate":
            return _estimate(data)
        if kind == "iteration.start":
            self._step = int(data.get("n") or self._step + 1)
            return f"Step {self._step}: the root model writes code"
        if kind == "exec.start":
            code = str(data.get("code") or "")
            lines = [line for line in code.splitlines() if line.strip()]
            first = _short(lines[0].strip(), CODE_CHARS) if lines else ""
            return f"Step {self._step}: running {len(lines)} line(s) of code: {first}"
        if kind == "exec.end":
            error = str(data.get("error") or "").strip()
            said = f"; it raised {_short(error.splitlines()[-1], 200)}" if error else ""
            return f"Step {self._step} done{said} · {self.summary()}"
        if kind == "batch.start":
            return f"llm_batch: {data.get('n', 0)} sub-calls to {data.get('model', 'the sub-model')}"
        if kind == "batch.end":
            failed = data.get("failed") or 0
            return f"llm_batch done{f', {failed} failed' if failed else ''} · {self.summary()}"
        return None

    def _call(self, kind: str, data: dict[str, object]) -> None:
        if kind == "call.start":
            self.calls_total += 1
        elif kind == "call.end":
            self.calls_done += 1
            self.calls_failed += data.get("status") == "error"
            self.tokens += _int(data.get("prompt_tokens")) + _int(data.get("completion_tokens"))
            cost = data.get("cost_usd")
            if isinstance(cost, (int, float)):
                self.cost_usd += cost

    def summary(self) -> str:
        """``12/15 model calls · 48,210 tokens · $0.0210``."""
        failed = f" ({self.calls_failed} failed)" if self.calls_failed else ""
        cost = f" · ${self.cost_usd:.4f}" if self.cost_usd else ""
        return f"{self.calls_done}/{self.calls_total} model calls{failed} · {self.tokens:,} tokens{cost}"


def _int(value: object) -> int:
    return value if isinstance(value, int) else 0


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _estimate(data: dict[str, object]) -> str | None:
    calls, cost = data.get("sub_calls"), data.get("cost_usd")
    if not isinstance(calls, list) or len(calls) != 2:
        return None
    dollars = f", ${cost[0]:.4f}–${cost[1]:.4f}" if isinstance(cost, list) and len(cost) == 2 else ""
    return f"Estimate: {calls[0]:,}–{calls[1]:,} sub-calls{dollars}"
