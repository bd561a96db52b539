"""rlm's pytest plugin (the ``pytest11`` entry point ``rlm``): fixtures for testing code that uses rlm.

Installed with rlm, so ``def test_x(scripted_lm): ...`` works in any project's tests with
no conftest. The server starts only when a test asks for the fixture: loading the plugin
imports nothing heavy.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from .server import ScriptedLM


@pytest.fixture
def scripted_lm() -> Iterator[ScriptedLM]:
    """A running ``ScriptedLM`` on 127.0.0.1 with the default script; stopped after the test.

    Reassign ``root``, ``sub`` or ``latency`` in the test, and point an ``RLM`` at it with
    ``RLM("root", "sub", base_url=scripted_lm.base_url, api_key="x")``.
    """
    from .server import ScriptedLM

    with ScriptedLM() as lm:
        yield lm
