"""Forking a finished run at a step: replay what it did up to there, then go on live from edited code.

A trace keeps each root reply, each code step and every call's reply with a hash of its
request. Replaying steps 1..k-1 runs their code again in a fresh REPL, with sub-calls
answered from the record (no model call, no cost); step k runs the user's code; then the
root continues live. Code is deterministic given its inputs, so a replayed step asks for
the calls it asked for before; one that asks for a call the record does not hold (the
context or the code changed) is an error that says which.
"""

from __future__ import annotations

import collections
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ForkError, LMError
from ..lm.dispatcher import Dispatcher
from ..lm.limiter import AdaptiveLimiter
from ..lm.pricing import Pricing
from ..lm.record import prompt_hash
from ..lm.retry import RetryPolicy
from ..lm.types import Completion, Message, Usage
from ..trace.events import Event, Tracer
from ..trace.trace import Trace

#: Replayed calls at once (they are answered from memory).
REPLAY_CONCURRENCY = 256


class ReplayMiss(LMError):
    """A replayed step asked for a call the record does not hold (it becomes that call's failure)."""


@dataclass(frozen=True, slots=True)
class Turn:
    """One recorded root turn: its reply and the code blocks it ran."""

    n: int
    reply: str
    blocks: tuple[str, ...]


@dataclass
class Record:
    """What a finished run's trace says it did, as a fork needs it."""

    run_id: str
    query: str
    turns: list[Turn]
    replies: dict[str, collections.deque[str]] = field(default_factory=dict)
    path: str | None = None

    @classmethod
    def from_events(cls, events: Iterable[Event], path: str | None = None) -> Record:
        """The top-level run's turns and every call's recorded reply, by request hash, in call order."""
        events = list(events)
        run = next((e for e in events if e.kind == "run.start" and e.parent is None), None)
        if run is None:
            raise ForkError("the trace holds no run to fork")
        iterations = [e for e in events if e.kind == "iteration.start" and e.parent == run.id
                      and not e.data.get("fallback")]
        root_reply: dict[str, str] = {}
        hashes: dict[str, str] = {}
        replies: dict[str, collections.deque[str]] = {}
        for event in events:
            if event.kind == "call.start" and event.data.get("prompt_hash"):
                hashes[event.id] = str(event.data["prompt_hash"])
            elif event.kind == "call.end" and event.id in hashes and "reply" in event.data \
                    and event.data.get("status") == "ok" and not event.data.get("reply_cut"):
                replies.setdefault(hashes[event.id], collections.deque()).append(str(event.data["reply"]))
        starts = {e.id: e for e in events if e.kind == "call.start"}
        for event in events:
            if event.kind == "call.end" and event.id in starts and starts[event.id].data.get("role") == "root":
                root_reply[str(starts[event.id].parent)] = str(event.data.get("reply", ""))
        turns: list[Turn] = []
        for it in iterations:
            blocks = tuple(str(e.data.get("code", "")) for e in events if e.kind == "exec.start" and e.parent == it.id)
            turns.append(Turn(int(it.data.get("n", len(turns) + 1)), root_reply.get(it.id, ""), blocks))
        return cls(run.id, str(run.data.get("query", "")), turns, replies, path)

    def check_step(self, at: int) -> None:
        if not isinstance(at, int) or isinstance(at, bool) or not 1 <= at <= len(self.turns):
            raise ForkError(f"fork(at={at!r}): the run has steps 1..{len(self.turns)}; pick one of them")
        missing = [t.n for t in self.turns[: at - 1] if not t.reply]
        if missing:
            raise ForkError(f"fork(at={at}): the record lacks the root's reply of step(s) {missing} "
                            "(a trace from before rlm kept replies); fork at step 1")


class ReplayClient:
    """An ``LMClient`` that answers from a record; what it could not answer is kept in ``misses``."""

    streams = False

    def __init__(self, record: Record) -> None:
        self._replies = {k: collections.deque(v) for k, v in record.replies.items()}
        self.misses: list[str] = []

    async def complete(self, messages: list[Message], *, model: str, **opts: Any) -> Completion:
        found = self._replies.get(prompt_hash(messages))
        if not found:
            last = str(messages[-1].get("content") if messages else "")
            self.misses.append(last[:200])
            raise ReplayMiss(f"the record holds no reply for this call (its prompt starts {last[:120]!r})",
                             model=model)
        started = time.perf_counter()
        return Completion(found.popleft(), model, Usage(), time.perf_counter() - started, "stop")


@dataclass
class Fork:
    """A fork to run: the record, the step it branches at, the code that step runs, and its replay."""

    record: Record
    at: int
    code: str
    client: ReplayClient
    #: Serves the replayed steps' calls from the record: its own tracer and meter, so they cost nothing.
    dispatcher: Dispatcher


def plan(source: Any, at: int, code: str, pricing: Pricing) -> tuple[Fork, str]:
    """The fork of ``source`` (a JSONL log path, a ``Trace`` or an ``RLMResult``) and the query it answers."""
    if not isinstance(code, str) or not code.strip():
        raise ForkError("fork(code=...) takes the Python code step k runs instead of the root's")
    trace = getattr(source, "trace", source)
    path = None
    if isinstance(source, (str, os.PathLike)):
        path = str(source)
        trace = Trace.from_jsonl(Path(source))
    if not isinstance(trace, Trace):
        raise ForkError(f"fork() takes a trace log's path, a Trace or an RLMResult, not {type(source).__name__}")
    record = Record.from_events(trace, path or (str(trace.path) if getattr(trace, "path", None) else None))
    record.check_step(at)
    client = ReplayClient(record)
    dispatcher = Dispatcher(client, limiter=AdaptiveLimiter(REPLAY_CONCURRENCY), tracer=Tracer(keep=False),
                            pricing=pricing, retry=RetryPolicy(max_attempts=1), stream=False)
    return Fork(record, at, code, client, dispatcher), record.query
