"""Where root code runs. ``REPLEnv`` is the seed-compatible facade.

``from rlm.repl import REPLEnv`` loads the model client only when asked for it, so the
REPL modules themselves stay light.
"""

from __future__ import annotations

from typing import Any

__all__ = ["REPLEnv", "REPLResult", "Sub_RLM"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import compat

        return getattr(compat, name)
    raise AttributeError(f"module 'rlm.repl' has no attribute {name!r}")
