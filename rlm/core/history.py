"""Keep the root's conversation short: older outputs shrink, and near the window older turns compact.

Every turn's output is read again by every later root call, so it costs once per turn that
follows: ten turns that each printed 20,000 characters came to 217k root input tokens. So
the latest output stays whole and each earlier one shrinks, once, to its head and tail
(``OlderOutputs``) whatever the window. A small-window root (a 16k local model, say) would
still die a few turns in with ``ContextWindowExceeded``: near its window older turns compact
to a line each (``compact``): the system prompt, the query and the latest turns stay
whole, and what came between becomes one message saying what the root wrote, ran and saw.
The REPL keeps every variable, so nothing is lost that the root stored.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .parsing import find_code_blocks, prose_of

#: Compact once the history passes this share of the root's window (room for the reply).
COMPACT_AT = 0.7
#: Characters kept of each compacted turn's text (what the root wrote down), code, and output.
PROSE_CHARS, CODE_CHARS, OUTPUT_CHARS = 240, 240, 360
#: Compacted turns listed one by one at most; older ones are only counted.
MAX_LINES = 40

Message = dict[str, Any]


def _short(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


class OlderOutputs:
    """The latest output message stays whole; the one before it shrinks to its short form, once.

    Each message changes once at most, so a provider's prompt cache still holds all that came before it.
    """

    def __init__(self) -> None:
        self._latest: tuple[Message, str] | None = None

    def add(self, message: Message, short: str) -> None:
        """``message`` is the newest output (sent whole); the previous one now reads as its short form."""
        if self._latest is not None:
            self._latest[0]["content"] = self._latest[1]
        self._latest = (message, short)


def _line(n: int, reply: str, feedback: str) -> str:
    """One compacted turn: what the root wrote down, the code it ran, and the start of what it saw."""
    blocks, wrote = find_code_blocks(reply), prose_of(reply)
    parts = [f"wrote: {_short(wrote, PROSE_CHARS)}"] if wrote else []
    if blocks:
        parts.append(f"ran: {_short('; '.join(blocks), CODE_CHARS)}")
    framing = ("Turn ", "`", "Block ")  # the message's own lines, not what the code printed
    seen = "\n".join(line for line in feedback.split("\n") if not line.startswith(framing))
    return f"- turn {n}: {'; '.join(parts) or '(empty reply)'} -> {_short(seen, OUTPUT_CHARS)}"


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
            f"[{len(old)} earlier turn(s) were compacted to fit your context window: below, what you wrote, ran and "
            "saw in each. The REPL still holds every variable they made: SHOW_VARS() lists them; print what you "
            "need again.]\n" + "\n".join(lines))}
        shorter = [*head, summary, *[m for a, u in recent for m in ((a, u) if a else (u,))]]
        if count(shorter) <= budget or kept == 0:
            return shorter, len(old)
    return None
