"""How the root is first shown a context it has not read: the head and the tail of its text.

The root plans from this glimpse, so it shows both ends (a log's last entries, a book's
last chapter, a table's last rows are often what a query is about) and says when it was
everything. Every kind of context uses it: ``rlm.core.prompts`` for str, list and dict,
and a file or document context's ``describe()`` for its text, so that the root reads one
format whatever it was given.
"""

from __future__ import annotations

import re

#: Characters shown from the start and from the end of a context's text.
HEAD_CHARS, TAIL_CHARS = 500, 300

_BACKTICKS = re.compile(r"`{3,}")


def fence(text: str, lang: str = "text") -> str:
    """``text`` in a fenced block that its own backticks cannot close."""
    longest = max((len(m) for m in _BACKTICKS.findall(text)), default=2)
    marks = "`" * (longest + 1)
    return f"{marks}{lang}\n{text}\n{marks}"


def head_and_tail(text: str, *, head: int = HEAD_CHARS, tail: int = TAIL_CHARS) -> tuple[str, bool]:
    """The start and end of ``text`` as the root reads them, and whether that is all of it.

    Example: a document context's ``describe()`` ends with ``head_and_tail(text)[0]``.
    """
    if len(text) <= head + tail:
        return f"All of it:\n{fence(text)}", True
    return (f"Its first {head:,} characters:\n{fence(text[:head])}\n"
            f"Its last {tail:,} characters:\n{fence(text[-tail:])}"), False
