"""The two small groups of ``RLM`` settings that most users never touch.

``RLM(...)`` keeps the common knobs flat (models, endpoint address and key, sandbox,
iterations, depth, concurrency, budget, cache, progress, logs); these hold the rest,
each said once:

    RLM("gpt-5", limits=Limits(step_timeout=60), endpoint=Endpoint(timeout=30, retries=0))
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigError
from .lm.client import LMClient
from .lm.pricing import Pricing, PricingArg
from .lm.retry import RetryPolicy

TRANSPORTS = ("auto", "openai", "fast")
#: How ``rlm.map(..., via=...)`` sends its prompts: one call each, or the provider's Batch API.
VIAS = ("calls", "batch")


@dataclass(frozen=True)
class Limits:
    """Limits of one root loop, per completion (its children share them).

    ``max_output_chars``: how much output the root reads back per turn, shared by the
    code blocks of its reply (head and tail of each). ``step_timeout``: seconds one
    REPL step may run before it is interrupted, in either sandbox. ``max_children``:
    recursive children (``rlm_query``) in flight at once per parent; ``max_descendants``:
    children of all depths one completion may start. The host enforces both: code in
    the REPL cannot change them. ``prompt``: the root's system prompt template, its text
    or a ``pathlib.Path`` to a file, checked here for what the loop needs
    (``rlm.core.template``); None is rlm's own.
    """

    max_output_chars: int = 10_000
    step_timeout: float = 600.0
    max_children: int = 8
    max_descendants: int = 256
    prompt: str | os.PathLike[str] | None = None

    def __post_init__(self) -> None:
        if self.prompt is not None:
            from .core.template import check_prompt, load_prompt

            object.__setattr__(self, "prompt", check_prompt(load_prompt(self.prompt)))
        for name in ("max_children", "max_descendants"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"Limits.{name} must be an int >= 1, got {value!r}")
        if not isinstance(self.max_output_chars, int) or self.max_output_chars < 100:
            raise ConfigError(f"Limits.max_output_chars must be an int >= 100, got {self.max_output_chars!r}")
        if isinstance(self.step_timeout, bool) or not isinstance(self.step_timeout, (int, float)) \
                or not self.step_timeout > 0:
            raise ConfigError(f"Limits.step_timeout must be a positive number of seconds, got {self.step_timeout!r}")


@dataclass(frozen=True)
class Endpoint:
    """How rlm talks to the model endpoint.

    ``timeout``: seconds per request. ``retries``: how many times a failed call is
    retried (5xx, timeouts, dropped connections; never 400/401/403/404/422; 429s get
    their own allowance within the server's Retry-After), or a full ``RetryPolicy``.
    ``transport``: ``"auto"`` sends root calls through the openai SDK and sub-calls
    through rlm's lean aiohttp client, ``"openai"`` or ``"fast"`` all through one.
    ``rpm``/``tpm`` cap requests and tokens per minute. ``call_options`` go into every
    request (``extra_body``, ``temperature``, ...). ``pricing`` adds or overrides model
    prices and context windows. ``client`` replaces rlm's own clients. ``models``: further
    models root code may name in ``llm_query(..., model=...)`` (the root and sub-model
    always may). ``stream``: root replies stream into the trace (``call.delta``), the live
    view and the progress line as they are generated, where the endpoint streams; ``False``
    asks for whole replies only. Sub-calls are always read whole.
    """

    timeout: float = 120.0
    retries: int | RetryPolicy = 5
    transport: str = "auto"
    rpm: float | None = None
    tpm: float | None = None
    call_options: dict[str, Any] = field(default_factory=dict)
    pricing: Pricing | PricingArg = None
    client: LMClient | None = None
    models: tuple[str, ...] = ()
    stream: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.stream, bool):
            raise ConfigError(f"Endpoint.stream must be True or False, got {self.stream!r}")
        if self.transport not in TRANSPORTS:
            raise ConfigError(f"Endpoint.transport={self.transport!r} is not available; choose one of {TRANSPORTS}")
        retries = self.retries
        if not isinstance(retries, RetryPolicy) and (isinstance(retries, bool) or not isinstance(retries, int)
                                                      or retries < 0):
            raise ConfigError(f"Endpoint.retries must be an int >= 0 or a RetryPolicy, got {retries!r}")
        if isinstance(self.models, str) or not all(isinstance(m, str) for m in self.models):
            raise ConfigError(f"Endpoint.models must be a tuple of model names, got {self.models!r}")
        object.__setattr__(self, "models", tuple(self.models))
        object.__setattr__(self, "call_options", dict(self.call_options or {}))

    @property
    def retry_policy(self) -> RetryPolicy:
        """``retries`` as a policy: an int n is n retries, and 0 turns retries off, 429s included."""
        if isinstance(self.retries, RetryPolicy):
            return self.retries
        return RetryPolicy(max_attempts=self.retries + 1, max_rate_limited=20 if self.retries else 1)


@dataclass(frozen=True)
class BatchAPI:
    """How ``rlm.map(prompts, via=BatchAPI(...))`` uses the provider's Batch API (``via="batch"``: these defaults).

    ``poll_s``: seconds between status checks (a batch takes minutes to hours). ``window``:
    the ``completion_window`` asked for (OpenAI takes only ``"24h"``). ``max_requests`` and
    ``max_bytes``: the most one batch's input file may hold (OpenAI: 50,000 requests,
    200 MB); a bigger map is sent as several batches.
    """

    poll_s: float = 30.0
    window: str = "24h"
    max_requests: int = 50_000
    max_bytes: int = 190_000_000

    def __post_init__(self) -> None:
        if isinstance(self.poll_s, bool) or not isinstance(self.poll_s, (int, float)) or not self.poll_s > 0:
            raise ConfigError(f"BatchAPI.poll_s must be a positive number of seconds, got {self.poll_s!r}")
        for name in ("max_requests", "max_bytes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"BatchAPI.{name} must be an int >= 1, got {value!r}")
        if not isinstance(self.window, str) or not self.window:
            raise ConfigError(f"BatchAPI.window must be a completion window such as '24h', got {self.window!r}")


def as_via(via: object) -> BatchAPI | None:
    """``map(via=...)``: ``"calls"`` (None: one request per prompt), ``"batch"`` or a ``BatchAPI``."""
    if isinstance(via, BatchAPI):
        return via
    if via not in VIAS:
        raise ConfigError(f"via={via!r} is not available; choose one of {VIAS} or a rlm.BatchAPI(...)")
    return BatchAPI() if via == "batch" else None
