"""Test doubles: a scripted OpenAI-compatible server with fault injection."""

from __future__ import annotations

from rlm.testing.faults import Fault
from rlm.testing.server import ScriptedLM, ScriptedRequest

__all__ = ["Fault", "ScriptedLM", "ScriptedRequest"]
