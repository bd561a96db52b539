"""``RLM``: the public entry point. One async core, a thin blocking facade."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import sys
from typing import Any

from .. import runtime
from ..errors import Cancelled, ConfigError
from ..lm.batch import Dispatcher
from ..lm.budget import Budget, BudgetLedger, output_cap_key
from ..lm.cache import Cache, as_cache
from ..lm.client import LMClient, OpenAIClient
from ..lm.limiter import AdaptiveLimiter
from ..lm.pricing import Pricing, PricingArg, as_pricing
from ..lm.retry import RetryPolicy
from ..lm.transport import FastClient, check_call_options
from ..repl.base import REPL
from ..repl.kernel import KernelREPL
from ..repl.kernel_pool import KernelPool
from ..repl.local import LocalREPL
from ..repl.sandbox_env import SandboxConfig
from ..trace.events import Subscriber, Tracer
from ..trace.jsonl import JsonlWriter
from ..trace.progress import ConsoleProgress, Listener, ProgressModel, isatty
from ..trace.trace import Trace
from ..widgets import watch
from .control import RunControl
from .loop import LoopSettings, RootLoop
from .result import RLMResult

SANDBOXES = ("kernel", "local")
TRANSPORTS = ("auto", "openai", "fast")


class RLM:
    """A Recursive Language Model over an OpenAI-compatible endpoint.

    Example::

        from rlm import RLM
        rlm = RLM(model="gpt-5", sub_model="gpt-5-mini")
        result = rlm.completion(context=big_text, query="Which sections mention the merger?")
        print(result.answer, result.usage)

    ``completion`` blocks and works in scripts, notebook cells and inside a running
    event loop; ``await rlm.acompletion(...)`` is the same run without blocking.
    One ``RLM`` may serve many completions, one after another or at once.

    ``budget=Budget(max_calls, max_tokens, max_cost_usd, max_time_s)`` limits each
    completion with its sub-calls and children; at a limit the run stops and
    ``completion`` raises ``BudgetExceeded`` whose ``.partial`` is the result so far
    (``stopped="budget"``). ``pricing`` adds or overrides model prices and context
    windows. ``cache=True`` (or a path) stores completions on disk and shares
    identical calls in flight: a re-run costs no model calls. ``progress``: a
    one-line progress display on stderr (default: on when stderr is a terminal),
    or a callable that receives every ``Progress`` snapshot.

    ``transport``: ``"openai"`` sends every call through the openai SDK, ``"fast"``
    through rlm's lean aiohttp client (same wire format, same errors), and ``"auto"``
    (default) uses the SDK for root calls and the lean client for sub-calls, the hot
    path. ``client=`` replaces both. ``max_concurrent`` caps calls in flight across
    everything this RLM runs; it shrinks on 429s and grows back. ``rpm``/``tpm`` cap
    requests and tokens per minute. Failed calls are retried ``max_retries`` times
    (5xx, timeouts, dropped connections; never 400/401/403/404/422), 429s up to 20 times
    within the server's Retry-After; ``retry=RetryPolicy(...)`` sets it all.
    """

    def __init__(
        self,
        model: str = "gpt-5",
        sub_model: str | None = None,
        *,
        models: tuple[str, ...] | list[str] = (),
        base_url: str | None = None,
        api_key: str | None = None,
        client: LMClient | None = None,
        sandbox: str | SandboxConfig = "kernel",
        max_concurrent: int = 32,
        max_iterations: int = 20,
        max_depth: int = 1,
        max_output_chars: int = 20_000,
        step_timeout: float | None = None,
        timeout: float = 120.0,
        max_retries: int = 5,
        retry: RetryPolicy | None = None,
        transport: str = "auto",
        rpm: float | None = None,
        tpm: float | None = None,
        call_options: dict[str, Any] | None = None,
        subscribers: list[Subscriber] | None = None,
        budget: Budget | None = None,
        pricing: Pricing | PricingArg = None,
        cache: bool | str | os.PathLike[str] | Cache | None = None,
        progress: bool | Listener | None = None,
        log_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        sandbox_config = sandbox if isinstance(sandbox, SandboxConfig) else SandboxConfig()
        sandbox = "kernel" if isinstance(sandbox, SandboxConfig) else sandbox
        if sandbox not in SANDBOXES:
            raise ConfigError(f"sandbox={sandbox!r} is not available; choose one of {SANDBOXES} or a SandboxConfig")
        for name, value in (("max_concurrent", max_concurrent), ("max_iterations", max_iterations), ("max_depth", max_depth)):
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be an int >= 1, got {value!r}")
        self.settings = LoopSettings(
            model=model,
            sub_model=sub_model or model,
            max_iterations=max_iterations,
            max_depth=max_depth,
            max_output_chars=max_output_chars,
            models=tuple(models),
        )
        if transport not in TRANSPORTS:
            raise ConfigError(f"transport={transport!r} is not available; choose one of {TRANSPORTS}")
        if not isinstance(max_retries, int) or max_retries < 0:
            raise ConfigError(f"max_retries must be an int >= 0, got {max_retries!r}")
        # max_retries=0 turns retries off altogether, 429s included.
        self.retry = retry or RetryPolicy(max_attempts=max_retries + 1, max_rate_limited=20 if max_retries else 1)
        # The SDK's own retries stay off (max_retries=0): the dispatcher retries every call once, one policy.
        # Both transports must send the same request: refuse what the SDK's create() would not take.
        # A caller's own client decides for itself what it accepts.
        if client is None:
            check_call_options(call_options or {})
        self.sub_client: LMClient | None = None
        if client is not None:
            self.client: LMClient = client
        elif transport == "fast":
            self.client = FastClient(api_key=api_key, base_url=base_url, timeout=timeout)
        else:
            self.client = OpenAIClient(api_key=api_key, base_url=base_url, timeout=timeout, max_retries=0)
            if transport == "auto":
                self.sub_client = FastClient(api_key=api_key, base_url=base_url, timeout=timeout)
        self.sandbox = sandbox
        self.step_timeout = step_timeout
        # Kernels start on first use and are reused across completions; close() or GC kills them.
        self.kernels: KernelPool | None = KernelPool(sandbox_config) if sandbox == "kernel" else None
        self.max_concurrent = max_concurrent
        self.call_options = dict(call_options or {})
        self.subscribers: list[Subscriber] = list(subscribers or [])
        self.log_dir = log_dir
        self.pricing = as_pricing(pricing)
        self.budget = _check_budget(budget, self.pricing, (model, sub_model or model))
        self.cache = as_cache(cache)
        if not (progress is None or isinstance(progress, bool) or callable(progress)):
            raise ConfigError(f"progress must be True, False, None (auto) or a callable, got {progress!r}")
        self.progress = progress
        # One limiter for every call this RLM makes, across batches, children and completions.
        self._windows_asked = False
        self.limiter = AdaptiveLimiter(max_concurrent, rpm=rpm, tpm=tpm, max_pause=self.retry.max_server_delay)

    def _make_repl(self) -> REPL:
        if self.kernels is not None:
            return KernelREPL(self.kernels, step_timeout=self.step_timeout)
        return LocalREPL(step_timeout=self.step_timeout)

    def close(self) -> None:
        """Kill this RLM's sandbox kernels now (garbage collection and interpreter exit also do)."""
        if self.kernels is not None:
            self.kernels.close()

    async def aclose(self) -> None:
        """Awaitable ``close``."""
        if self.kernels is not None:
            if runtime.on_runtime_thread():
                await self.kernels.aclose()
            else:
                await asyncio.wrap_future(runtime.submit(self.kernels.aclose()))

    def __enter__(self) -> RLM:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> RLM:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _run(
        self, context: Any, query: str, subscribers: list[Subscriber], control: RunControl | None = None
    ) -> RLMResult:
        if not self._windows_asked:  # once per RLM: the first completion learns local models' windows
            self._windows_asked = True
            models = {self.settings.model, self.settings.sub_model}
            await self.pricing.learn_windows(self.sub_client or self.client, models)
        writer = JsonlWriter(self.log_dir) if self.log_dir is not None else None
        logs: list[Subscriber] = [writer] if writer is not None else []
        tracer = Tracer([*self.subscribers, *subscribers, *self._progress_subscribers(), *logs])
        dispatcher = Dispatcher(
            self.client, pricing=self.pricing, budget=BudgetLedger(self.budget, self.pricing), cache=self.cache, limiter=self.limiter, tracer=tracer, call_options=self.call_options,
            retry=self.retry, sub_client=self.sub_client, output_cap_key=output_cap_key(getattr(self.client, "base_url", None)),
        )
        loop = RootLoop(settings=self.settings, dispatcher=dispatcher, repl_factory=self._make_repl)
        if control is not None:
            control.bind()
        try:
            result = await loop.run(context, query)
        except asyncio.CancelledError:
            if control is None or not control.stop_requested:
                raise
            raise Cancelled(
                "the run was stopped; .partial holds its steps, usage and trace so far",
                partial=loop.partial_result(),
            ) from None
        finally:
            if writer is not None:
                writer.close()
        if writer is not None:
            result = dataclasses.replace(result, trace=Trace(result.trace, path=writer.path))
        return result

    def _progress_subscribers(self) -> list[Subscriber]:
        """A fresh progress model per run: the console line, a callable, or nothing."""
        progress = self.progress
        if progress is None:
            progress = isatty(sys.stderr)
        if progress is True:
            return [ProgressModel(ConsoleProgress())]
        if callable(progress):
            return [ProgressModel(progress)]
        return []

    async def acompletion(
        self, context: Any, query: str, *, subscribers: list[Subscriber] | None = None,
        view: bool | None = None,
    ) -> RLMResult:
        """Awaitable ``completion``. The work runs on rlm's own loop, so the caller's stays free."""
        nested = runtime.on_runtime_thread()
        control = RunControl()
        with watch(False if nested else view, control) as viewers:
            coro = self._run(context, query, [*(subscribers or []), *viewers], control)
            if nested:
                return await coro
            return await asyncio.wrap_future(runtime.submit(coro))

    def completion(
        self, context: Any, query: str, *, subscribers: list[Subscriber] | None = None,
        view: bool | None = None,
    ) -> RLMResult:
        """Answer ``query`` over ``context`` (str, list, dict or pathlib.Path); blocks until done.

        Interrupting (Ctrl-C, or the notebook's stop button) cancels every in-flight
        sub-call within a second and leaves this object ready for the next call.
        In a notebook (``view=None``) a live view of the run is shown; its Stop button
        ends the run and ``Cancelled`` is raised with the partial result on ``.partial``.
        """
        control = RunControl()
        with watch(view, control) as viewers:
            return runtime.run(self._run(context, query, [*(subscribers or []), *viewers], control))

    def __repr__(self) -> str:
        s = self.settings
        return f"RLM(model={s.model!r}, sub_model={s.sub_model!r}, sandbox={self.sandbox!r})"


def _check_budget(budget: Budget | None, pricing: Pricing, models: tuple[str, str]) -> Budget | None:
    """Fail at construction, not mid-run, when a dollar limit meets a model with no price."""
    if budget is None:
        return None
    if not isinstance(budget, Budget):
        raise ConfigError(f"budget must be a rlm.Budget, got {type(budget).__name__}")
    if budget.max_cost_usd is not None:
        for name in models:
            if not pricing.is_priced(name):
                raise ConfigError(
                    f"Budget(max_cost_usd=...) needs a price for model {name!r}; pass "
                    f"RLM(pricing={{{name!r}: ModelInfo(input_per_mtok=..., output_per_mtok=...)}})"
                )
    return budget
