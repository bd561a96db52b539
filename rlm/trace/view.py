"""``rlm view``: trace logs as one HTML page that opens offline.

One log is its run's page; 2 to 8 logs are the runs side by side (``rlm.compare``); a
results file of ``rlm bench ... --log-dir`` is every question, each opening to every
method's run of it (``rlm.trace.runs``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .compare import MAX_RUNS, compare
from .results import is_results_file
from .runs import BenchRuns
from .trace import Trace


def write_page(log: str | Path, output: str | Path | None = None) -> Path:
    """Write the log's page (next to it by default) and return its path.

    Raises ``FileNotFoundError``, ``TraceFormatError`` or ``UnicodeDecodeError`` for a log
    that is missing or unreadable, and ``ValueError`` for one that holds no events.
    """
    if is_results_file(log):
        target = Path(output) if output else Path(log).with_suffix(".html")
        return BenchRuns(log).save_html(target)
    trace = Trace.from_jsonl(log)
    if not trace:
        raise ValueError(f"{log} holds no events")
    target = Path(output) if output else Path(log).with_suffix(".html")
    trace.save_html(target)
    return target


def write_pages(logs: Sequence[str | Path], output: str | Path | None = None) -> Path:
    """One log's page, or 2 to 8 logs side by side (``<first log>-compare.html`` by default); see ``write_page``."""
    if len(logs) == 1:
        return write_page(logs[0], output)
    if len(logs) > MAX_RUNS:
        raise ValueError(f"rlm view compares at most {MAX_RUNS} logs, got {len(logs)}")
    traces = [Trace.load(log) for log in logs]
    for log, trace in zip(logs, traces, strict=True):
        if not trace:
            raise ValueError(f"{log} holds no events")
    first = Path(logs[0])
    target = Path(output) if output else first.with_name(f"{first.stem}-compare.html")
    return compare(*traces, labels=[Path(log).stem for log in logs]).save_html(target)
