"""``rlm.fork(...)`` and ``result.fork(at=k, code=...)``: branch a finished run at a step.

The replayed steps' calls go to a dispatcher of their own, answered from the record:
they cost nothing, count against no budget and leave no call events; the forked run's
trace shows the replayed steps (``iteration.start`` with ``given``) and a ``run.fork``
event naming the origin run and the step.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .core.fork import Fork, Record, ReplayClient
from .errors import ForkError
from .lm.batch import Dispatcher
from .lm.limiter import AdaptiveLimiter
from .lm.pricing import Pricing
from .lm.retry import RetryPolicy
from .trace.events import Tracer
from .trace.trace import Trace

#: Replayed calls at once (they are answered from memory).
REPLAY_CONCURRENCY = 256


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
