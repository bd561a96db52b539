"""An opt-in on-disk cache of completions, and de-duplication of identical calls in flight.

Keyed on (model, messages, parameters), so re-running the same notebook costs no
model calls. SQLite in WAL mode: one file, atomic writes, safe for several
processes; a lookup is one indexed read on the runtime loop (tens of microseconds).

Everything cached is served again verbatim, whatever the temperature: that is the
point of turning it on. Only successful completions are stored. The endpoint is
not part of the key: use one cache path per endpoint if two serve different
models under the same name.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .types import Completion, Usage

log = logging.getLogger("rlm")

KEY_VERSION = "rlm-cache-v1"
FILE_NAME = "completions.sqlite3"
#: Request options that change how a call is made, not what it answers.
TRANSPORT_OPTIONS = frozenset({"timeout", "extra_headers", "extra_query"})


def default_dir() -> Path:
    """``$XDG_CACHE_HOME/rlm``, else ``~/.cache/rlm``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "rlm"


def cache_key(model: str, messages: list[dict[str, Any]], options: dict[str, Any]) -> str:
    """A stable hash of what determines a reply."""
    params = {k: v for k, v in options.items() if k not in TRANSPORT_OPTIONS}
    payload = json.dumps(
        [KEY_VERSION, model, messages, params], sort_keys=True, separators=(",", ":"), default=str
    )
    return hashlib.sha256(payload.encode()).hexdigest()


class Cache:
    """Completions on disk, plus the calls in flight that identical calls can join.

    Example::

        RLM("gpt-5", endpoint=Endpoint(cache=True))          # ~/.cache/rlm/completions.sqlite3
        RLM("gpt-5", endpoint=Endpoint(cache="runs/cache"))  # a directory, or a *.sqlite3 / *.db file

    ``hits``, ``misses`` and ``shared`` count lookups since this object was made.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        target = Path(path) if path is not None else default_dir()
        if target.suffix not in (".sqlite3", ".sqlite", ".db"):
            target = target / FILE_NAME
        self.path = target
        self.hits = self.misses = self.shared = 0
        self._lock = threading.Lock()
        self._pending: dict[str, asyncio.Future[Completion]] = {}
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            # The runtime loop thread uses it, but it is opened on the caller's: share it under a lock.
            self._db = sqlite3.connect(str(target), timeout=10.0, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS completions (key TEXT PRIMARY KEY, model TEXT, value TEXT, created REAL)"
            )
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(
                f"cannot open the rlm cache at {str(target)!r} ({exc}); pass Endpoint(cache=<a writable directory>)"
            ) from exc

    def get(self, key: str) -> Completion | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM completions WHERE key = ?", (key,)).fetchone()
        if row is None:
            self.misses += 1
            return None
        self.hits += 1
        return _decode(row[0])

    def put(self, key: str, completion: Completion) -> None:
        value = _encode(completion)
        try:
            with self._lock:
                self._db.execute(
                    "INSERT OR REPLACE INTO completions (key, model, value, created) VALUES (?, ?, ?, ?)",
                    (key, completion.model, value, time.time()),
                )
        except sqlite3.Error as exc:  # a full disk must not fail a call that succeeded
            log.warning("rlm cache: could not store a completion in %s: %s", self.path, exc)

    async def once(self, key: str, call: Callable[[], Awaitable[Completion]]) -> tuple[Completion, bool]:
        """Run ``call`` unless an identical one is in flight; then share its answer.

        Returns ``(completion, shared)``. If the call in flight fails, its followers
        get the same error (they asked the same thing); if it is cancelled, one of
        them makes the call itself. A reply cut short (``finish_reason="length"``) is
        shared but not stored: the cap that cut it may be a budget's reply allowance,
        which is not part of the key, and a later run without that budget must not
        get the cut reply.
        """
        while True:
            pending = self._pending.get(key)
            if pending is None:
                break
            try:
                completion = await asyncio.shield(pending)
            except asyncio.CancelledError:
                if pending.cancelled():  # the leader was cancelled, not us: go again
                    continue
                raise
            self.shared += 1
            return completion, True
        future: asyncio.Future[Completion] = asyncio.get_running_loop().create_future()
        self._pending[key] = future
        try:
            completion = await call()
        except BaseException as exc:
            if isinstance(exc, asyncio.CancelledError):
                future.cancel()
            else:
                future.set_exception(exc)
                future.exception()  # retrieved: no "never retrieved" warning without followers
            raise
        finally:
            del self._pending[key]
        if completion.finish_reason != "length":
            self.put(key, completion)
        future.set_result(completion)
        return completion, False

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM completions").fetchone()[0])

    def clear(self) -> None:
        """Forget every stored completion."""
        with self._lock:
            self._db.execute("DELETE FROM completions")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __reduce__(self) -> tuple[type[Cache], tuple[Path]]:
        """Pickled (a Ray worker's settings), it opens the same file there; its counters start at zero."""
        return Cache, (self.path,)

    def __repr__(self) -> str:
        return f"Cache({str(self.path)!r}, hits={self.hits}, misses={self.misses}, shared={self.shared})"


def _encode(completion: Completion) -> str:
    u = completion.usage
    return json.dumps({
        "text": completion.text, "model": completion.model, "seconds": completion.seconds,
        "finish_reason": completion.finish_reason,
        "usage": [u.calls, u.prompt_tokens, u.completion_tokens],
    })


def _decode(value: str) -> Completion:
    data = json.loads(value)
    calls, prompt, completion = data["usage"]
    return Completion(
        text=data["text"], model=data["model"], usage=Usage(calls, prompt, completion),
        seconds=data["seconds"], finish_reason=data["finish_reason"],
    )


def as_cache(value: bool | str | os.PathLike[str] | Cache | None) -> Cache | None:
    """``Endpoint(cache=...)``: False/None off, True the default directory, a path, or a Cache."""
    if value is None or value is False:
        return None
    if value is True:
        return Cache()
    if isinstance(value, Cache):
        return value
    if isinstance(value, (str, os.PathLike)):
        return Cache(value)
    raise ConfigError(f"cache must be True, False, a path or a rlm Cache, got {type(value).__name__}")
