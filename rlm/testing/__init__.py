"""Test doubles: a scripted OpenAI-compatible server with fault injection."""

from __future__ import annotations

from rlm.testing.corpus import Report, make_report
from rlm.testing.faults import Fault
from rlm.testing.server import ScriptedLM, ScriptedRequest
from rlm.testing.simulated import simulated_lm

__all__ = ["Fault", "Report", "ScriptedLM", "ScriptedRequest", "make_report", "simulated_lm"]
