"""The settings of an ``RLM``, said once: ``Settings`` (everything it was built with) and the two
small groups most users never touch.

``RLM(...)`` keeps the common knobs flat (models, endpoint address and key, sandbox,
iterations, depth, concurrency, budget, progress, logs, tools); these hold the rest,
each said once:

    RLM("gpt-5", limits=Limits(step_timeout=60), endpoint=Endpoint(timeout=30, retries=0, cache=True))

Where each limit lives: what one completion's loop may do (iterations and depth flat, as
most users set them; step time, output read back, children in ``Limits``); what it may
spend (``Budget``: calls, tokens, dollars, time); how fast calls may go, for the whole
RLM and every Ray worker it uses (``max_concurrent`` flat; ``Endpoint.rpm``/``tpm``); what a
kernel may use of the machine (``SandboxConfig``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .core.template import check_prompt, load_prompt
from .core.tools import Tool
from .errors import ConfigError, check_int, check_seconds
from .lm.budget import Budget
from .lm.cache import Cache
from .lm.client import LMClient
from .lm.hedge import Hedge, as_hedge
from .lm.pricing import Pricing, PricingArg
from .lm.retry import RetryPolicy
from .repl.base import CAPTURE_CHARS
from .repl.sandbox.config import SandboxConfig
from .trace.progress import Listener

TRANSPORTS = ("auto", "openai", "fast")
#: How ``rlm.map(..., via=...)`` sends its prompts: one call each, or the provider's Batch API.
VIAS = ("calls", "batch")
SANDBOXES = ("kernel", "local")


@dataclass(frozen=True)
class Limits:
    """Limits of one root loop, per completion (its children share them).

    ``max_output_chars``: how much output the root reads back per turn, shared by the
    code blocks of its reply (head and tail of each); the one output cap (a step keeps
    that much of its output, and at least 2,000,000 characters for the trace: see
    ``Settings.capture_chars``). ``step_timeout``: seconds one
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
            object.__setattr__(self, "prompt", check_prompt(load_prompt(self.prompt)))
        for name in ("max_children", "max_descendants"):
            check_int(f"Limits.{name}", getattr(self, name))
        check_int("Limits.max_output_chars", self.max_output_chars, 100)
        if self.max_output_chars > CAPTURE_CHARS:
            raise ConfigError(f"Limits.max_output_chars must be at most {CAPTURE_CHARS:,} (what one step keeps "
                              "of its output, so its reply from the kernel fits one message), "
                              f"got {self.max_output_chars:,}")
        check_seconds("Limits.step_timeout", self.step_timeout)


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
    asks for whole replies only. Sub-calls are always read whole. ``cache=True`` (or a path,
    or a ``Cache``) stores completions on disk and shares identical calls in flight: a re-run
    costs no model calls. ``hedge=True`` (or a ``Hedge``) re-sends a batch's stragglers once
    its slots would sit idle (off by default: a duplicate costs).
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
    cache: bool | str | os.PathLike[str] | Cache | None = None
    hedge: bool | Hedge | None = None

    def __post_init__(self) -> None:
        if not (self.cache is None or isinstance(self.cache, (bool, str, os.PathLike, Cache))):
            raise ConfigError(f"Endpoint.cache must be True, False, a path or a rlm.Cache, "
                              f"got {type(self.cache).__name__}")
        as_hedge(self.hedge)
        if not isinstance(self.stream, bool):
            raise ConfigError(f"Endpoint.stream must be True or False, got {self.stream!r}")
        if self.transport not in TRANSPORTS:
            raise ConfigError(f"Endpoint.transport={self.transport!r} is not available; choose one of {TRANSPORTS}")
        if not isinstance(self.retries, RetryPolicy):
            check_int("Endpoint.retries (or a RetryPolicy)", self.retries, 0)
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
        check_seconds("BatchAPI.poll_s", self.poll_s)
        for name in ("max_requests", "max_bytes"):
            check_int(f"BatchAPI.{name}", getattr(self, name))
        if not isinstance(self.window, str) or not self.window:
            raise ConfigError(f"BatchAPI.window must be a completion window such as '24h', got {self.window!r}")


def as_via(via: object) -> BatchAPI | None:
    """``map(via=...)``: ``"calls"`` (None: one request per prompt), ``"batch"`` or a ``BatchAPI``."""
    if isinstance(via, BatchAPI):
        return via
    if via not in VIAS:
        raise ConfigError(f"via={via!r} is not available; choose one of {VIAS} or a rlm.BatchAPI(...)")
    return BatchAPI() if via == "batch" else None


@dataclass(frozen=True)
class Settings:
    """Everything an ``RLM`` was built with, checked: the single source of its defaults.

    ``RLM(...)``'s parameters are these fields (its defaults are read from here), the
    engine is built from this value alone (``rlm.engine.Engine``), the root loop reads
    it (``rlm.core.settings.LoopSettings``), and a Ray worker receives it whole: frozen
    and picklable (as long as the tools, a progress callable and ``Endpoint.client`` pickle).
    ``sub_model=""`` means the root model.
    """

    model: str = "gpt-5"
    sub_model: str = ""
    base_url: str | None = None
    api_key: str | None = field(default=None, repr=False)
    sandbox: str | SandboxConfig = "kernel"
    max_concurrent: int = 32
    max_iterations: int = 20
    max_depth: int = 1
    budget: Budget | None = None
    progress: bool | Listener | None = None
    log_dir: str | os.PathLike[str] | None = None
    limits: Limits = field(default_factory=Limits)
    endpoint: Endpoint = field(default_factory=Endpoint)
    tools: Mapping[str, Tool] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.model, str) or not self.model:
            raise ConfigError(f"model must be a model name, got {self.model!r}")
        if not self.sub_model:
            object.__setattr__(self, "sub_model", self.model)
        if not isinstance(self.sandbox, SandboxConfig) and self.sandbox not in SANDBOXES:
            raise ConfigError(f"sandbox={self.sandbox!r} is not available; choose one of {SANDBOXES} "
                              "or a SandboxConfig")
        for name in ("max_concurrent", "max_iterations", "max_depth"):
            check_int(name, getattr(self, name))
        for group, kind in (("limits", Limits), ("endpoint", Endpoint)):
            if not isinstance(getattr(self, group), kind):
                raise ConfigError(f"{group} must be a rlm.{kind.__name__}, got {type(getattr(self, group)).__name__}")
        if self.budget is not None and not isinstance(self.budget, Budget):
            raise ConfigError(f"budget must be a rlm.Budget, got {type(self.budget).__name__}")
        progress = self.progress
        if not (progress is None or isinstance(progress, bool) or callable(progress)):
            raise ConfigError(f"progress must be True, False, None (auto) or a callable, got {progress!r}")
        if self.limits.prompt is not None:  # a recursive run's template must teach rlm_query too
            check_prompt(str(self.limits.prompt), can_recurse=self.max_depth > 1)

    @property
    def sandbox_config(self) -> SandboxConfig | None:
        """The kernel sandbox's settings; None for the in-process ``"local"`` REPL."""
        if isinstance(self.sandbox, SandboxConfig):
            return self.sandbox
        return SandboxConfig() if self.sandbox == "kernel" else None

    @property
    def capture_chars(self) -> int:
        """What one step keeps of its output (head and tail) for the trace: ``CAPTURE_CHARS``, the
        bound of ``Limits.max_output_chars``, so the root is never short of what it may be sent.
        ``SandboxConfig(max_capture_chars=...)``, deprecated, still sets it for the kernel sandbox."""
        config = self.sandbox_config
        if config is not None and config.max_capture_chars is not None:
            return config.max_capture_chars
        return CAPTURE_CHARS

    # What the root loop reads (rlm.core.settings.LoopSettings), where it lives in the groups.
    @property
    def max_output_chars(self) -> int:
        return self.limits.max_output_chars

    @property
    def max_children(self) -> int:
        return self.limits.max_children

    @property
    def max_descendants(self) -> int:
        return self.limits.max_descendants

    @property
    def models(self) -> tuple[str, ...]:
        return self.endpoint.models

    @property
    def prompt(self) -> str | None:
        return None if self.limits.prompt is None else str(self.limits.prompt)

    def check_model(self, fn: str, model: str | None) -> str:
        """The model a sub-call uses; root code may not pick one the user did not configure."""
        if model is None:
            return self.sub_model
        if model not in (self.model, self.sub_model, *self.models):
            allowed = ", ".join(repr(m) for m in dict.fromkeys((self.model, self.sub_model, *self.models)))
            raise ValueError(f"{fn}(model={model!r}): root code may only use the configured models ({allowed}); "
                             "the user can allow more with RLM(endpoint=Endpoint(models=(...)))")
        return model
