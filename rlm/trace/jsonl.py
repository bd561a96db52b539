"""Trace logs: one JSON object per line, one file per completion.

Why JSONL: a run that crashes or is stopped still leaves every event written so far
(each line is flushed as it happens), and a reader can skip a half-written last line.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from ..errors import TraceFormatError
from .events import Event

log = logging.getLogger("rlm")


def _default(value: Any) -> Any:
    """Anything JSON cannot hold is logged as its text, never dropped silently."""
    return str(value)


def dumps(event: Event) -> str:
    """One log line (without the newline)."""
    return json.dumps(event.to_dict(), default=_default, ensure_ascii=False)


class JsonlWriter:
    """A ``Tracer`` subscriber that appends each event to ``log_dir/<time>-<run id>.jsonl``.

    The file is created at the first event and closed when the outermost run ends.
    ``name``: the file's name instead (``rlm serve`` names each trace with a random token,
    what a client needs to read it back). ``private``: the file is this user's only, 0600
    in a directory made 0700, created new and never through a symlink.
    Example::

        writer = JsonlWriter("logs")
        rlm.completion(text, query, subscribers=[writer])
        print(writer.path)
    """

    def __init__(self, log_dir: str | os.PathLike[str], *, name: str | None = None, private: bool = False) -> None:
        self.log_dir = Path(log_dir)
        self.name = name
        self.private = private
        #: Where the trace is, once its first event was written.
        self.path: Path | None = None
        self._file: IO[str] | None = None
        self._root: str | None = None
        self._lock = threading.Lock()

    def __call__(self, event: Event) -> None:
        with self._lock:
            if self._file is None:
                if self.path is not None:  # closed: the run it logged is over
                    return
                self._open(event)
            assert self._file is not None
            self._file.write(dumps(event) + "\n")
            self._file.flush()
            if event.kind == "run.end" and event.id == self._root:
                self._close()

    def _open(self, first: Event) -> None:
        stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(first.ts))
        path = self.log_dir / (self.name or f"{stamp}-{first.id}.jsonl")
        if self.private:
            self.log_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(self.log_dir, 0o700)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            self._file = os.fdopen(fd, "w", encoding="utf-8")
        else:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            self._file = path.open("w", encoding="utf-8")
        self.path = path
        self._root = first.id if first.kind == "run.start" else None
        # A private trace's name is what lets a client read it back: not for a server's log.
        log.log(logging.DEBUG if self.private else logging.INFO, "rlm: writing the trace to %s", self.path)

    def _close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def close(self) -> None:
        """Close the file now (a run that never reached ``run.end``)."""
        with self._lock:
            self._close()


def iter_events(path: str | os.PathLike[str]) -> Iterator[Event]:
    """Events of a log file in order; a truncated last line is skipped.

    Raises ``TraceFormatError`` naming the line for anything else that is not an event.
    """
    with Path(path).open(encoding="utf-8") as fh:
        lines = fh.readlines()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            yield Event.from_dict(obj)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            if number == len(lines) and not line.endswith("\n"):
                log.warning("rlm: %s ends with a partial line (the run was cut off); skipped", path)
                return
            raise TraceFormatError(f"{path}:{number}: not a trace event ({exc})", path=str(path), line=number) from exc
