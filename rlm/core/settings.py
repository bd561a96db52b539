"""What the root loop reads of the settings: a protocol, so the loop imports nothing above it.

``rlm.config.Settings`` is the one value that has all of it (and the defaults); the
loop, its children and the host read that value itself, never a copy of its numbers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from .tools import Tool


class LoopSettings(Protocol):
    """The knobs of one root loop (shared by its recursive children)."""

    @property
    def model(self) -> str: ...

    @property
    def sub_model(self) -> str: ...

    @property
    def max_iterations(self) -> int: ...

    @property
    def max_depth(self) -> int: ...

    @property
    def max_output_chars(self) -> int: ...

    @property
    def max_children(self) -> int: ...

    @property
    def max_descendants(self) -> int: ...

    @property
    def tools(self) -> Mapping[str, Tool]: ...

    @property
    def prompt(self) -> str | None:
        """The root's system prompt template (``Limits.prompt``, checked); None is rlm's own."""
        ...

    def check_model(self, fn: str, model: str | None) -> str:
        """The model a sub-call uses; a model the user did not configure is a ``ValueError``."""
        ...
