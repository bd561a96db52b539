"""What a session keeps between questions: one REPL, the root's history, the answers so far."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..repl.base import REPL


@dataclass
class Conversation:
    """The state a ``Session`` hands to each question's root loop.

    ``messages`` persist (and are compacted near the root's window like any run's);
    ``answers`` is mirrored into the REPL as ``answers`` after every question.
    """

    repl: REPL
    messages: list[dict[str, Any]] = field(default_factory=list)
    answers: list[Any] = field(default_factory=list)
    contexts: int = 1
    started: bool = False

    def next_context_name(self) -> str:
        """``context_2``, ``context_3``, ...: where a later question's context goes."""
        self.contexts += 1
        return f"context_{self.contexts}"


def follow_up_message(query: str, answered: int, added: tuple[str, str] | None) -> str:
    """A session's next question, after the root answered ``answered`` of them."""
    parts = [f"A new question in the same session. Your {answered} earlier answer(s) are in the REPL as "
             "`answers` (a list, oldest first); every variable you made is still there."]
    if added is not None:
        name, description = added
        parts.append(f"This question brings more context, loaded as the variable `{name}`:\n{description}")
    parts.append(f"The query:\n{query}")
    return "\n\n".join(parts)
