"""Progress of a run, derived from its trace events: done/total, in flight, failed, tokens, cost, ETA.

``ProgressModel`` is a ``Tracer`` subscriber that folds ``batch.*`` and ``call.*``
events into a ``Progress`` snapshot and hands it to listeners: the notebook widget
draws it, ``ConsoleProgress`` writes one updating line to stderr outside notebooks.

Counting: every ``llm_batch`` announces its size at ``batch.start``, so ``total``
knows a batch's items before they start; every other call (root turns,
``llm_query``) adds one when it starts. Cache hits and refused calls (budget,
context window) emit a call span too, so each batch item ends exactly once.
While a root reply streams (``call.delta``), ``streaming`` holds its last characters.
While a map waits on a provider batch (``batch.poll``), ``waiting`` says how far it got.
"""

from __future__ import annotations

import asyncio
import collections
import shutil
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO

from .events import Event, Subscriber

#: ETA and rate look at completions in this many recent seconds.
RATE_WINDOW_S = 10.0
#: Provider batch statuses after which a batch is no longer waited on.
_SETTLED = frozenset({"completed", "failed", "expired", "cancelled"})
#: How much of a streaming root reply a snapshot carries: more than a terminal line shows.
STREAMING_CHARS = 240


@dataclass(frozen=True, slots=True)
class Progress:
    """One snapshot of a run's model calls. ``eta_s`` is None until a rate is known.

    ``streaming``: the last characters of the root reply being streamed, "" when none is.
    ``waiting``: the provider batches a map waits on, as last polled (``batch in_progress 120/500``).
    """

    done: int = 0
    total: int = 0
    in_flight: int = 0
    failed: int = 0
    cancelled: int = 0
    cached: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_prompt_tokens: int = 0
    cost_usd: float | None = None
    elapsed_s: float = 0.0
    rate: float = 0.0
    eta_s: float | None = None
    finished: bool = False
    streaming: str = ""
    waiting: str = ""

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def line(self) -> str:
        """``rlm 412/1000 calls · 64 in flight · 3 failed · 1.2M tokens · $0.4210 · 38.1/s · ETA 15s``."""
        parts = [f"rlm {self.done:,}/{self.total:,} calls"]
        if self.waiting:
            parts.append(self.waiting)
        if self.in_flight:
            parts.append(f"{self.in_flight} in flight")
        if self.failed:
            parts.append(f"{self.failed} failed")
        if self.cancelled:
            parts.append(f"{self.cancelled} cancelled")
        if self.cached:
            parts.append(f"{self.cached} cached")
        parts.append(f"{_si(self.tokens)} tokens")
        if self.cached_prompt_tokens:
            parts.append(f"{_si(self.cached_prompt_tokens)} cached")
        if self.cost_usd is not None:
            parts.append(f"${self.cost_usd:.4f}")
        if self.rate > 0:
            parts.append(f"{self.rate:.1f}/s")
        if self.finished:
            parts.append(f"done in {_duration(self.elapsed_s)}")
        elif self.eta_s is not None:
            parts.append(f"ETA {_duration(self.eta_s)}")
        return " · ".join(parts)


def _si(n: int) -> str:
    for size, suffix in ((1_000_000_000, "G"), (1_000_000, "M"), (1_000, "k")):
        if n >= size:
            return f"{n / size:.1f}{suffix}"
    return str(n)


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f}s" if seconds >= 10 else f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes < 60 else f"{minutes // 60}h{minutes % 60:02d}m"


Listener = Callable[[Progress], None]


class ProgressModel:
    """Folds trace events into ``Progress``; subscribe it to a ``Tracer``.

    Example::

        model = ProgressModel(lambda p: print(p.done, p.total, p.eta_s))
        rlm.completion(context, query, subscribers=[model])

    Listeners run on the thread that emitted the event (rlm's loop thread) after
    every call or batch event; they should be quick and throttle their own drawing.
    """

    def __init__(self, *listeners: Listener, clock: Callable[[], float] = time.monotonic) -> None:
        self._listeners: list[Listener] = list(listeners)
        self._clock = clock
        self._lock = threading.Lock()
        self._started: float | None = None
        self._open: set[str] = set()
        self._batches: dict[str, list[int]] = {}  # id -> [announced, started]
        self._finished_at: float | None = None
        self._recent: collections.deque[float] = collections.deque()
        self._done = self._total = self._failed = self._cancelled = self._cached = 0
        self._prompt = self._completion = self._cached_prompt = 0
        self._cost: float | None = None
        self._root_run: str | None = None
        self._root_calls: set[str] = set()
        self._reply_call: str | None = None
        self._reply = ""
        self._polled: dict[str, tuple[str, str]] = {}  # provider batch id -> its last status and line

    def __call__(self, event: Event) -> None:
        kind, data = event.kind, event.data
        with self._lock:
            now = self._clock()
            if kind == "run.start" and self._root_run is None:
                self._root_run = event.id
                self._started = now
                return
            if kind == "run.end":
                if event.id != self._root_run:
                    return
                self._finished_at = now
            elif kind == "batch.start":
                self._batches[event.id] = [int(data.get("n") or 0), 0]
                self._total += int(data.get("n") or 0)
            elif kind == "batch.end":
                announced, started = self._batches.pop(event.id, [0, 0])
                self._total -= max(0, announced - started)  # items a cancelled batch never started
            elif kind == "call.start":
                self._call_started(event, now)
            elif kind == "call.end":
                if not self._call_ended(event, now):
                    return
            elif kind == "batch.poll":
                status = str(data.get("status"))
                answered = int(data.get("completed") or 0) + int(data.get("failed") or 0)
                self._polled[str(data.get("batch_id"))] = (
                    status, f"batch {status} {answered:,}/{int(data.get('total') or 0):,}")
            elif kind in ("call.delta", "call.retry"):
                if not self._streamed(event):
                    return
            else:
                return
            snapshot = self._snapshot(now)
        for fn in tuple(self._listeners):
            fn(snapshot)

    def _streamed(self, event: Event) -> bool:
        """A root reply's next text (or a retry, which starts it over); False when nothing shown changed."""
        if event.id not in self._root_calls:
            return False
        if event.kind == "call.retry" or self._reply_call != event.id:
            self._reply_call, self._reply = event.id, ""
        self._reply = (self._reply + str(event.data.get("text") or ""))[-STREAMING_CHARS:]
        return True

    def _call_started(self, event: Event, now: float) -> None:
        if self._started is None:
            self._started = now
        if event.data.get("role") == "root":
            self._root_calls.add(event.id)
        self._open.add(event.id)
        batch = self._batches.get(event.parent or "")
        if batch is not None and batch[1] < batch[0]:
            batch[1] += 1
        else:
            self._total += 1

    def _call_ended(self, event: Event, now: float) -> bool:
        if event.id not in self._open:
            return False
        self._open.discard(event.id)
        self._root_calls.discard(event.id)
        if event.id == self._reply_call:
            self._reply_call, self._reply = None, ""
        data = event.data
        self._done += 1
        status = data.get("status")
        if status == "cancelled":  # stopped by the user or a budget deadline, not an endpoint failure
            self._cancelled += 1
        elif status != "ok":
            self._failed += 1
        if data.get("cached"):
            self._cached += 1
        self._prompt += int(data.get("prompt_tokens") or 0)  # a cache hit reports none: it cost none
        self._completion += int(data.get("completion_tokens") or 0)
        self._cached_prompt += int(data.get("cached_prompt_tokens") or 0)
        cost = data.get("cost_usd")
        if cost is not None:
            self._cost = (self._cost or 0.0) + float(cost)
        self._recent.append(now)
        return True

    def _snapshot(self, now: float) -> Progress:
        end = self._finished_at if self._finished_at is not None else now
        elapsed = end - self._started if self._started is not None else 0.0
        while self._recent and self._recent[0] < now - RATE_WINDOW_S:
            self._recent.popleft()
        span = min(RATE_WINDOW_S, elapsed)
        rate = len(self._recent) / span if span > 0 and self._recent else 0.0
        remaining = max(0, self._total - self._done)
        eta = remaining / rate if rate > 0 else (0.0 if remaining == 0 and self._done else None)
        return Progress(
            done=self._done, total=self._total, in_flight=len(self._open), failed=self._failed,
            cancelled=self._cancelled, cached=self._cached,
            prompt_tokens=self._prompt, completion_tokens=self._completion, cached_prompt_tokens=self._cached_prompt,
            cost_usd=self._cost, elapsed_s=elapsed, rate=rate, eta_s=eta,
            finished=self._finished_at is not None, streaming=self._reply,
            waiting=" · ".join(line for status, line in self._polled.values() if status not in _SETTLED),
        )

    def snapshot(self) -> Progress:
        with self._lock:
            return self._snapshot(self._clock())


class ConsoleProgress:
    """One self-updating progress line on stderr (a TTY), for scripts and terminals.

    Redraws at most every ``interval`` seconds, plus once when the run ends; a snapshot
    the throttle skipped is drawn when the interval is over (on the running event loop),
    so the line never stays behind. While the root's reply streams, the line ends with
    its latest words, as far as the terminal is wide. On a stream that is not a terminal
    (a log file, CI) it prints a plain line at most every ``log_interval`` seconds
    instead, so logs are not flooded with ``\\r``.
    """

    def __init__(
        self, stream: TextIO | None = None, *, interval: float = 0.1, log_interval: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stream = stream
        self.interval = interval
        self.log_interval = log_interval
        self._clock = clock
        self._last: float | None = None
        self._width = 0
        self._lock = threading.Lock()
        self._pending: Progress | None = None
        self._timer: asyncio.TimerHandle | None = None

    @property
    def stream(self) -> Any:
        return self._stream if self._stream is not None else sys.stderr

    def __call__(self, progress: Progress) -> None:
        if progress.total == 0 and not progress.finished:
            return
        stream = self.stream
        tty = isatty(stream)
        now = self._clock()
        with self._lock:
            wait = self.interval if tty else self.log_interval
            if not progress.finished and self._last is not None and now - self._last < wait:
                if tty:
                    self._draw_later(progress, self._last + wait - now)
                return
            self._draw(progress, stream, tty, now)

    def _draw_later(self, progress: Progress, delay: float) -> None:
        """Keep the newest skipped snapshot and draw it once the interval is over (the lock is held)."""
        self._pending = progress
        if self._timer is not None:
            return
        try:
            self._timer = asyncio.get_running_loop().call_later(delay, self._draw_pending)
        except RuntimeError:  # fed from a thread without a loop: the next snapshot draws
            self._pending = None

    def _draw_pending(self) -> None:
        with self._lock:
            self._timer = None
            pending, self._pending = self._pending, None
            if pending is not None:
                self._draw(pending, self.stream, True, self._clock())

    def _draw(self, progress: Progress, stream: Any, tty: bool, now: float) -> None:
        """Write one line (the lock is held); a snapshot waiting to be drawn is older, so it is dropped."""
        self._pending = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._last = None if progress.finished else now  # the next run draws at once
        line = progress.line()
        if tty:
            columns = shutil.get_terminal_size((120, 24)).columns - 1
            line = with_reply(line, progress.streaming, columns)
            stream.write("\r" + line + " " * max(0, self._width - len(line)) + ("\n" if progress.finished else ""))
            self._width = 0 if progress.finished else len(line)
        else:
            stream.write(line + "\n")
        stream.flush()

    def model(self) -> ProgressModel:
        """A fresh ``ProgressModel`` (one per run) that draws through this line."""
        return ProgressModel(self)


def with_reply(line: str, reply: str, width: int) -> str:
    """``line`` and the tail of ``reply`` on one line of ``width``: ``rlm 1/1 calls · … the root's latest words``."""
    text = " ".join(reply.split())
    room = width - len(line) - 3
    if not text or room < 12:
        return line[:width]
    return f"{line} · {text if len(text) <= room else '…' + text[-(room - 1):]}"


def isatty(stream: Any) -> bool:
    """Whether ``stream`` is a terminal; False for anything that cannot say."""
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def progress_subscribers(progress: bool | Listener | None) -> list[Subscriber]:
    """A fresh progress model per run: the console line (default: when stderr is a terminal), a callable, or nothing."""
    if progress is None:
        progress = isatty(sys.stderr)
    if progress is True:
        return [ProgressModel(ConsoleProgress())]
    if callable(progress):
        return [ProgressModel(progress)]
    return []
