"""Where root code runs. ``REPLEnv`` is the seed-compatible facade."""

from .compat import REPLEnv, REPLResult, Sub_RLM

__all__ = ["REPLEnv", "REPLResult", "Sub_RLM"]
