"""Where model calls go, and what the endpoint there calls things.

The key and URL (from the arguments or the environment, with the error that says what to
set when there is neither), the reply cap's wire name (``max_completion_tokens`` for
OpenAI, ``max_tokens`` elsewhere) and the context windows a ``/models`` listing reports.
Both clients and the Batch API client read them here, so they send the same request.
"""

from __future__ import annotations

import os
from typing import Any

from ..errors import ConfigError
from .types import Completion, Message

#: The neutral option a caller caps a reply with; each client sends it under its endpoint's name.
MAX_OUTPUT_TOKENS = "max_output_tokens"
#: Where OpenAI-compatible servers put a model's context window in ``/models``:
#: vLLM's ``max_model_len``, OpenRouter's and LM Studio's ``context_length``, others'.
WINDOW_FIELDS = ("max_model_len", "context_length", "context_window", "max_context_length")


def resolve_endpoint(api_key: str | None, base_url: str | None) -> tuple[str, str | None]:
    """Pick the key and URL from the arguments or the environment.

    A base URL without a key is allowed (local servers rarely check keys); with
    neither, there is nothing we could talk to, so say what to set.
    """
    api_key = api_key or os.environ.get("OPENAI_API_KEY") or None
    base_url = base_url or os.environ.get("OPENAI_BASE_URL") or None
    if api_key is None and base_url is None:
        raise no_endpoint()
    return api_key or "not-needed", base_url


def no_endpoint() -> ConfigError:
    """The error for a model call with neither a key nor a URL, saying what to set."""
    return ConfigError(
        "no model endpoint configured: set OPENAI_API_KEY (and OPENAI_BASE_URL for a "
        "non-OpenAI server), or pass RLM(api_key=..., base_url=...). For a local "
        "OpenAI-compatible server (vLLM, llama.cpp, Ollama) base_url alone is enough."
    )


def has_endpoint(api_key: str | None, base_url: str | None) -> bool:
    """Whether the arguments or the environment name something to call."""
    return bool(api_key or base_url or os.environ.get("OPENAI_API_KEY") or os.environ.get("OPENAI_BASE_URL"))


class NoEndpoint:
    """The client of an ``RLM`` given no key and no URL: it is built and can ``estimate``; a call says what to set.

    Why not fail at ``RLM(...)``: estimating a run's cost, or configuring one in a notebook
    before the key is at hand, needs no endpoint. Every run checks first (``require_endpoint``),
    so nothing starts (no kernel) before the error.
    """

    base_url: str | None = None
    streams = False

    async def complete(self, messages: list[Message], *, model: str, **opts: Any) -> Completion:
        raise no_endpoint()


def require_endpoint(client: object) -> None:
    """Raise the ``ConfigError`` that says what to set, before a run starts, if there is nothing to call."""
    if isinstance(client, NoEndpoint):
        raise no_endpoint()


def is_openai_endpoint(base_url: str | None) -> bool:
    """Whether requests go to OpenAI's own API (no ``base_url`` means the SDK's default, OpenAI)."""
    return base_url is None or "api.openai.com" in base_url


def wire_options(opts: dict[str, Any], base_url: str | None) -> dict[str, Any]:
    """``opts`` with ``max_output_tokens`` under the name this endpoint takes.

    OpenAI's reasoning models reject ``max_tokens`` and want ``max_completion_tokens``;
    local OpenAI-compatible servers (llama.cpp, Ollama, older vLLM) know only ``max_tokens``.
    """
    if MAX_OUTPUT_TOKENS not in opts:
        return opts
    shaped = dict(opts)
    cap = shaped.pop(MAX_OUTPUT_TOKENS)
    shaped["max_completion_tokens" if is_openai_endpoint(base_url) else "max_tokens"] = cap
    return shaped


def listed_window(entry: dict[str, Any]) -> int | None:
    """The context window a ``/models`` entry reports, if it reports one."""
    for name in WINDOW_FIELDS:
        value = entry.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def windows_of(entries: list[dict[str, Any]]) -> dict[str, int]:
    """Model -> context window, for the entries of a ``/models`` listing that report one."""
    return {str(e["id"]): w for e in entries if "id" in e and (w := listed_window(e)) is not None}
