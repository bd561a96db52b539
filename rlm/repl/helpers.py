"""Helpers root code can call in the REPL, shared by every REPL implementation.

``chunk`` and ``count_tokens`` are pure and run where root code runs: the in-process
REPL calls these, and the sandbox kernel its own copies of the same modules
(``repl/chunking.py``, ``lm/counter.py``), so the context never crosses the bridge.
"""

from __future__ import annotations

from typing import Any

from ..lm.counter import count_tokens
from .chunking import chunk

__all__ = ["PURE_HELPERS", "chunk", "count_tokens"]

#: Helpers that need no host: a REPL puts these in its namespace as they are.
PURE_HELPERS: dict[str, Any] = {"chunk": chunk, "count_tokens": count_tokens}
