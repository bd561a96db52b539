"""``Checkpoint``: a map's answers in SQLite, each committed as it completes.

A crash (even SIGKILL) loses at most the calls in flight: SQLite in WAL mode makes every
committed row durable against the process dying. A rerun reads what is done and sends
only the rest. The file records what produced the answers (the kind of map, the model,
the options, the query) and a hash of each item's input, so a changed prompt or model is
refused rather than silently mixed with old answers. A map sent through a provider's
Batch API also records each batch (its input file, its id, the items it carries) the
moment it exists, so a rerun after a crash polls that batch instead of paying twice.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS items (
    idx INTEGER PRIMARY KEY, input_hash TEXT NOT NULL, status TEXT NOT NULL,
    answer TEXT, error TEXT, prompt_tokens INTEGER, completion_tokens INTEGER, seconds REAL, finished REAL,
    extra TEXT
);
CREATE TABLE IF NOT EXISTS batches (
    file_id TEXT PRIMARY KEY, batch_id TEXT, status TEXT NOT NULL, items TEXT NOT NULL, created REAL
);
"""
#: A batch's status in the checkpoint before its results are collected.
OPEN_BATCH = ("uploaded", "submitted")


def input_hash(value: Any) -> str:
    """A stable hash of one item's input (a prompt, or a context and the query)."""
    data = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=repr, ensure_ascii=False)
    return hashlib.sha256(data.encode("utf-8", "surrogatepass")).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class Row:
    """One finished item: ``status`` is ``"ok"`` or ``"failed"`` (retried on a rerun)."""

    index: int
    input_hash: str
    status: str
    answer: str | None
    error: str | None
    prompt_tokens: int
    completion_tokens: int
    seconds: float
    #: What else the map keeps per item (a completion's stop reason, iterations, cost).
    extra: dict[str, Any]


@dataclass(frozen=True, slots=True)
class BatchRecord:
    """One provider batch of a map: ``status`` is ``"uploaded"`` (file sent, no batch known yet),
    ``"submitted"``, or the provider's final status once its results were committed.

    ``items`` maps each item's index to the hash of the input it was sent with.
    """

    file_id: str
    batch_id: str | None
    status: str
    items: dict[int, str]

    @property
    def open(self) -> bool:
        return self.status in OPEN_BATCH


class Checkpoint:
    """The SQLite file of one map. Example: ``Checkpoint("runs/x.sqlite").to_dataframe()``."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable against a killed process
        self._db.executescript(_SCHEMA)

    def bind(self, meta: dict[str, Any]) -> None:
        """Record what produces these answers, or refuse a file written by something else."""
        found = dict(self._db.execute("SELECT key, value FROM meta WHERE key != 'items'").fetchall())
        wanted = {k: json.dumps(v, sort_keys=True, default=repr) for k, v in meta.items()}
        if not found:
            with self._db:
                self._db.executemany("INSERT INTO meta VALUES (?, ?)", wanted.items())
            return
        changed = sorted(k for k in wanted if found.get(k) != wanted[k])
        if changed:
            raise ConfigError(
                f"checkpoint {self.path} was written with other settings ({', '.join(changed)} differ: "
                f"{', '.join(f'{k} was {found.get(k)}' for k in changed)}); use a new checkpoint file, "
                "or delete this one"
            )

    def set_items(self, n: int) -> None:
        """How many items the map has now (a rerun may add more)."""
        self._db.execute("INSERT OR REPLACE INTO meta VALUES ('items', ?)", (json.dumps(n),))

    def done(self, hashes: list[str]) -> dict[int, Row]:
        """The items already answered (``status="ok"``); a changed input at the same index is refused."""
        rows = {row.index: row for row in self.rows()}
        for index, row in rows.items():
            if index < len(hashes) and row.input_hash != hashes[index]:
                raise ConfigError(
                    f"checkpoint {self.path}: item {index}'s input changed since it was answered; "
                    "use a new checkpoint file for new inputs, or delete this one"
                )
        return {i: r for i, r in rows.items() if r.status == "ok" and i < len(hashes)}

    def record(self, index: int, digest: str, *, answer: str | None, error: str | None,
               prompt_tokens: int = 0, completion_tokens: int = 0, seconds: float = 0.0,
               extra: dict[str, Any] | None = None) -> None:
        """Commit one finished item at once (autocommit: one transaction per row)."""
        self._db.execute(
            "INSERT OR REPLACE INTO items VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (index, digest, "failed" if error is not None else "ok", answer, error, prompt_tokens,
             completion_tokens, seconds, time.time(), json.dumps(extra or {}, default=repr)),
        )

    def add_batch(self, file_id: str, items: dict[int, str]) -> None:
        """Record an uploaded batch file and the items it carries, before the batch is created."""
        self._db.execute("INSERT INTO batches VALUES (?, NULL, 'uploaded', ?, ?)",
                         (file_id, json.dumps(items), time.time()))

    def set_batch(self, file_id: str, batch_id: str, status: str = "submitted") -> None:
        """The batch made from ``file_id`` (``"submitted"``), or its final status once collected."""
        self._db.execute("UPDATE batches SET batch_id = ?, status = ? WHERE file_id = ?", (batch_id, status, file_id))

    def batches(self) -> list[BatchRecord]:
        """Every batch this map sent, oldest first."""
        return [BatchRecord(f, b, s, {int(k): v for k, v in json.loads(items).items()}) for f, b, s, items in
                self._db.execute("SELECT file_id, batch_id, status, items FROM batches ORDER BY created, rowid")]

    def rows(self) -> Iterator[Row]:
        """Every finished item, in input order."""
        for values in self._db.execute(
                "SELECT idx, input_hash, status, answer, error, prompt_tokens, completion_tokens, seconds, extra "
                "FROM items ORDER BY idx"):
            yield Row(values[0], values[1], values[2], values[3], values[4], values[5] or 0, values[6] or 0,
                      values[7] or 0.0, json.loads(values[8] or "{}"))

    def meta(self) -> dict[str, Any]:
        return {k: json.loads(v) for k, v in self._db.execute("SELECT key, value FROM meta")}

    def status(self) -> dict[str, Any]:
        """How far the map got: items, answered, failed, tokens (``rlm map --status``)."""
        rows = list(self.rows())
        total = self.meta().get("items")
        return {"path": str(self.path), "items": total, "answered": sum(r.status == "ok" for r in rows),
                "failed": sum(r.status == "failed" for r in rows),
                "prompt_tokens": sum(r.prompt_tokens for r in rows),
                "completion_tokens": sum(r.completion_tokens for r in rows)}

    def to_jsonl(self, path: str | os.PathLike[str]) -> Path:
        """Every finished item as one JSON object per line, in input order."""
        out = Path(path)
        with out.open("w", encoding="utf-8") as fh:
            for row in self.rows():
                fh.write(json.dumps({"index": row.index, "status": row.status, "answer": row.answer,
                                     "error": row.error, "prompt_tokens": row.prompt_tokens,
                                     "completion_tokens": row.completion_tokens, "seconds": row.seconds,
                                     **row.extra},
                                    ensure_ascii=False) + "\n")
        return out

    def to_dataframe(self) -> Any:
        """The items as a pandas DataFrame (pandas is not a dependency of rlm: install it to use this)."""
        try:
            pd = importlib.import_module("pandas")
        except ImportError:
            raise ConfigError("to_dataframe() needs pandas: pip install pandas") from None
        return pd.DataFrame([{"index": r.index, "status": r.status, "answer": r.answer, "error": r.error,
                              "prompt_tokens": r.prompt_tokens, "completion_tokens": r.completion_tokens,
                              "seconds": r.seconds, **r.extra} for r in self.rows()]).set_index("index")

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Checkpoint:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
