"""Shared pytest fixtures."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from rlm.testing import ScriptedLM


@pytest.fixture
def scripted_lm() -> Iterator[ScriptedLM]:
    """A running ScriptedLM with defaults; tests reassign ``root``, ``sub`` or ``latency``."""
    with ScriptedLM() as lm:
        yield lm
