"""rlm as a service: an OpenAI-compatible endpoint (``rlm serve``) and an MCP server (``rlm mcp``).

Both put the same ``Service`` (``rlm.serve.runs``) behind a protocol: one RLM per
served model name, sharing one upstream limiter, one cache and one kernel pool, so a
burst of requests cannot exceed the upstream's limits. What a request may ask for and
how much it may spend come from the server's ``ServeConfig`` (``rlm.serve.config``),
never from the request. See docs/serve.md.
"""

from __future__ import annotations

from .config import ModelRoute, ServeConfig, load_config

__all__ = ["ModelRoute", "ServeConfig", "load_config"]
