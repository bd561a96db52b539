"""How a run ended, as ``RLMResult.stopped`` says it and as a log's ``run.end`` records it.

Here, not beside the HTML views, so exporting or filtering runs by ending needs no view code.
"""

from __future__ import annotations

from typing import Literal, get_args

#: Why a run ended. Only "final" is an answer the root chose to give from a complete reply.
StopReason = Literal["final", "max_iterations", "cut_off", "fallback", "failed_call", "budget", "error", "cancelled"]
#: Every way a run can end, and "unfinished" for a log with no end.
ENDINGS: tuple[str, ...] = (*get_args(StopReason), "unfinished")


def ending(status: str, fallback: bool) -> str:
    """A run's end status (``run.end``'s, or "running" with no end) as ``RLMResult.stopped`` says it."""
    if status == "ok":
        return "max_iterations" if fallback else "final"
    return "unfinished" if status == "running" else status
