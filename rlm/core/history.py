"""Keep the root's conversation inside its context window: compact older turns.

A small-window root (a 16k local model, say) would otherwise die a few turns in with
``ContextWindowExceeded``. The REPL keeps every variable, so older turns can shrink to a
line each: the system prompt, the query and the latest turns stay whole, and what came
between becomes one message saying what was run and what it printed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .parsing import find_code_blocks

#: Compact once the history passes this share of the root's window (room for the reply).
COMPACT_AT = 0.7
#: Characters kept of each compacted turn's code and of its output.
CODE_CHARS, OUTPUT_CHARS = 240, 360
#: Compacted turns listed one by one at most; older ones are only counted.
MAX_LINES = 40

Message = dict[str, Any]


def _short(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _line(n: int, reply: str, feedback: str) -> str:
    code = "; ".join(find_code_blocks(reply)) or reply
    return f"- turn {n}: {_short(code, CODE_CHARS)} -> {_short(feedback, OUTPUT_CHARS)}"


def compact(messages: list[Message], window: int, count: Callable[[list[Message]], int]) -> tuple[
        list[Message], int] | None:
    """A shorter history when ``messages`` pass ``COMPACT_AT`` of ``window`` tokens, and how many turns shrank.

    ``messages`` are [system, first user, (assistant, user)*]; the first two and as many
    of the latest turns as fit stay whole. None when nothing needs compacting.
    """
    budget = int(window * COMPACT_AT)
    if sum(len(str(m.get("content") or "")) for m in messages) < budget * 2 or count(messages) <= budget:
        return None
    head, turns = messages[:2], messages[2:]
    pairs: list[tuple[Message | None, Message]] = []
    i = 0
    while i < len(turns):
        if turns[i].get("role") == "assistant" and i + 1 < len(turns):
            pairs.append((turns[i], turns[i + 1]))
            i += 2
        else:
            pairs.append((None, turns[i]))
            i += 1
    for kept in range(len(pairs) - 1, -1, -1):
        old, recent = pairs[: len(pairs) - kept], pairs[len(pairs) - kept:]
        lines = [_line(n + 1, str(a.get("content") or "") if a else "", str(u.get("content") or ""))
                 for n, (a, u) in enumerate(old)]
        if len(lines) > MAX_LINES:
            lines = [f"- turns 1-{len(lines) - MAX_LINES}: (omitted)", *lines[-MAX_LINES:]]
        summary = {"role": "user", "content": (
            f"[{len(old)} earlier turn(s) were compacted to fit your context window. The REPL still holds every "
            "variable they made: print what you need again.]\n" + "\n".join(lines))}
        shorter = [*head, summary, *[m for a, u in recent for m in ((a, u) if a else (u,))]]
        if count(shorter) <= budget or kept == 0:
            return shorter, len(old)
    return None
