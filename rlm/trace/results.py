"""A results file of many runs (``rlm bench ... --log-dir``), read by question: no views here.

A results file is JSONL, one finished run per line, as the quality benchmark writes it
(docs/benchmarks.md): the question (``id``, ``query``, ``expected``, ``kind``), the
``method`` (and ``prompt``, ``repeat``), the ``score``, ``answer``, ``stopped`` and costs,
and ``log``, the run's trace log relative to the file's folder (RLM methods, with
``--log-dir``). Nothing here imports the benchmark: any tool writing these fields gets
the same views (``rlm.trace.runs``) and exports (``rlm.trace.export``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..errors import ConfigError


def is_results_file(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a results file (its first line a run record), not a trace log."""
    try:
        with Path(path).open(encoding="utf-8") as fh:
            first = json.loads(fh.readline() or "null")
    except (OSError, ValueError):
        return False
    return isinstance(first, dict) and "key" in first and "method" in first and "kind" in first and "ts" not in first


def read_results(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Every run record of a results file; a cut-off or malformed line is skipped."""
    records = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and "id" in record and "method" in record:
            records.append(record)
    return records


def label(record: dict[str, Any], repeats: bool = False) -> str:
    """A run's name in a table or comparison: its method, its prompt if any, its repeat if there are several."""
    name = str(record["method"])
    if record.get("prompt") is not None:
        name += f" [{record['prompt']}]"
    return f"{name} r{record.get('repeat', 0)}" if repeats else name


class Results:
    """The runs of one results file, by question (the latest of each method, prompt and repeat)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise ConfigError(f"no results file at {self.path}")
        self.records = read_results(self.path)
        # A prompt edited since (same name, new digest) leaves its older runs in the file: the latest is shown.
        latest = {(r["id"], r["method"], r.get("prompt"), r.get("repeat", 0), r.get("identity")): r
                  for r in self.records}
        self.by_question: dict[str, list[dict[str, Any]]] = {}
        for record in latest.values():
            self.by_question.setdefault(str(record["id"]), []).append(record)

    def questions(self) -> list[str]:
        """Item ids, in the order their first run finished."""
        return list(self.by_question)

    def runs(self, question: str) -> list[dict[str, Any]]:
        """Every run record of ``question``."""
        if question not in self.by_question:
            known = ", ".join(list(self.by_question)[:5])
            raise ConfigError(f"{self.path} has no question {question!r} (it has {known}, ...)")
        return self.by_question[question]

    def log_of(self, record: dict[str, Any]) -> Path | None:
        """The run's trace log, if it was kept and is still there."""
        log = record.get("log")
        if not log:
            return None
        path = self.path.parent / str(log)
        return path if path.exists() else None
