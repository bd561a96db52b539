"""What tests script a root model to write."""

from __future__ import annotations


def code(*lines: str) -> str:
    """A root reply that is one ```repl block of ``lines``."""
    return "```repl\n" + "\n".join(lines) + "\n```"
