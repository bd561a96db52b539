"""``rlm view run.jsonl``: turn a trace log into one HTML page that opens offline."""

from __future__ import annotations

from pathlib import Path

from .trace import Trace


def write_page(log: str | Path, output: str | Path | None = None) -> Path:
    """Write the log's page (next to it by default) and return its path.

    Raises ``FileNotFoundError``, ``TraceFormatError`` or ``UnicodeDecodeError`` for a log
    that is missing or unreadable, and ``ValueError`` for one that holds no events.
    """
    trace = Trace.from_jsonl(log)
    if not trace:
        raise ValueError(f"{log} holds no events")
    target = Path(output) if output else Path(log).with_suffix(".html")
    trace.save_html(target)
    return target
