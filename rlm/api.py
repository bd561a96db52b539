"""``RLM``: the public entry point. One async core, a thin blocking facade."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import sys
from typing import Any

from . import runtime
from .config import Endpoint, Limits
from .control import RunControl
from .core.loop import LoopSettings, RootLoop
from .core.result import RLMResult
from .errors import Cancelled, ConfigError, LMError
from .lm.batch import Dispatcher
from .lm.budget import Budget, BudgetLedger
from .lm.cache import Cache, as_cache
from .lm.client import LMClient, OpenAIClient
from .lm.limiter import AdaptiveLimiter
from .lm.pricing import Pricing, as_pricing
from .repl.base import REPL
from .repl.kernel import KernelREPL
from .repl.local import LocalREPL
from .repl.sandbox.config import SandboxConfig
from .repl.sandbox.pool import KernelPool
from .trace.events import Subscriber, Tracer
from .trace.jsonl import JsonlWriter
from .trace.progress import ConsoleProgress, Listener, ProgressModel, isatty
from .trace.trace import Trace
from .widgets import watch

SANDBOXES = ("kernel", "local")
#: The longest a first completion waits for an endpoint's ``/models`` listing.
WINDOW_LOOKUP_S = 5.0
log = logging.getLogger("rlm")


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

    ``sandbox``: ``"kernel"`` (default; a ``SandboxConfig`` sets its limits) or
    ``"local"`` (in-process, not isolated). ``max_concurrent`` caps calls in flight
    across everything this RLM runs; it shrinks on 429s and grows back.
    ``budget=Budget(max_calls, max_tokens, max_cost_usd, max_time_s)`` limits each
    completion with its sub-calls and children; at a limit the run stops and
    ``completion`` raises ``BudgetExceeded`` whose ``.partial`` is the result so far.
    ``cache=True`` (or a path) stores completions on disk and shares identical calls in
    flight: a re-run costs no model calls. ``progress``: a one-line display on stderr
    (default: on when stderr is a terminal), or a callable that receives every
    ``Progress`` snapshot. ``log_dir``: a JSONL trace per run. ``limits=Limits(...)``
    (step timeout, output read back) and ``endpoint=Endpoint(...)`` (timeout, retries,
    transport, rate caps, prices, a client of your own) hold the rest.
    ``subscribers`` (a list attribute) receive every trace event of every run.
    """

    def __init__(
        self,
        model: str = "gpt-5",
        sub_model: str | None = None,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        sandbox: str | SandboxConfig = "kernel",
        max_concurrent: int = 32,
        max_iterations: int = 20,
        max_depth: int = 1,
        budget: Budget | None = None,
        cache: bool | str | os.PathLike[str] | Cache | None = None,
        progress: bool | Listener | None = None,
        log_dir: str | os.PathLike[str] | None = None,
        limits: Limits | None = None,
        endpoint: Endpoint | None = None,
    ) -> None:
        sandbox_config = sandbox if isinstance(sandbox, SandboxConfig) else SandboxConfig()
        sandbox = "kernel" if isinstance(sandbox, SandboxConfig) else sandbox
        if sandbox not in SANDBOXES:
            raise ConfigError(f"sandbox={sandbox!r} is not available; choose one of {SANDBOXES} or a SandboxConfig")
        for name, value in (
            ("max_concurrent", max_concurrent), ("max_iterations", max_iterations), ("max_depth", max_depth),
        ):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{name} must be an int >= 1, got {value!r}")
        for group, given, kind in (("limits", limits, Limits), ("endpoint", endpoint, Endpoint)):
            if given is not None and not isinstance(given, kind):
                raise ConfigError(f"{group} must be a rlm.{kind.__name__}, got {type(given).__name__}")
        self.limits = limits = limits or Limits()
        self.endpoint = endpoint = endpoint or Endpoint()
        self.settings = LoopSettings(
            model=model,
            sub_model=sub_model or model,
            max_iterations=max_iterations,
            max_depth=max_depth,
            max_output_chars=limits.max_output_chars,
            models=endpoint.models,
        )
        self.retry = endpoint.retry_policy
        # Both transports must send the same request: refuse what the SDK's create() would not take.
        # A caller's own client decides for itself what it accepts.
        if endpoint.client is None:
            from .lm.options import check_call_options

            check_call_options(endpoint.call_options)
        self.client, self.sub_client = _clients(endpoint, base_url, api_key)
        self.sandbox = sandbox
        # Kernels start on first use; each completion gets a fresh one; close() or GC kills them.
        self.kernels: KernelPool | None = KernelPool(sandbox_config) if sandbox == "kernel" else None
        self.call_options = endpoint.call_options
        self.subscribers: list[Subscriber] = []
        self.log_dir = log_dir
        self.pricing = as_pricing(endpoint.pricing)
        self.budget = _check_budget(budget, self.pricing, (model, sub_model or model))
        self.cache = as_cache(cache)
        if not (progress is None or isinstance(progress, bool) or callable(progress)):
            raise ConfigError(f"progress must be True, False, None (auto) or a callable, got {progress!r}")
        self.progress = progress
        # One limiter for every call this RLM makes, across batches, children and completions.
        self._windows_asked = False
        self.limiter = AdaptiveLimiter(max_concurrent, rpm=endpoint.rpm, tpm=endpoint.tpm,
                                       max_pause=self.retry.max_server_delay)

    def _make_repl(self) -> REPL:
        if self.kernels is not None:
            return KernelREPL(self.kernels, step_timeout=self.limits.step_timeout)
        return LocalREPL(step_timeout=self.limits.step_timeout)

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
            await self._learn_windows()
        writer = JsonlWriter(self.log_dir) if self.log_dir is not None else None
        logs: list[Subscriber] = [writer] if writer is not None else []
        tracer = Tracer([*self.subscribers, *subscribers, *self._progress_subscribers(), *logs])
        dispatcher = Dispatcher(
            self.client, pricing=self.pricing, budget=BudgetLedger(self.budget, self.pricing), cache=self.cache,
            limiter=self.limiter, tracer=tracer, call_options=self.call_options,
            retry=self.retry, sub_client=self.sub_client, stream=self.endpoint.stream,
        )
        loop = RootLoop(settings=self.settings, dispatcher=dispatcher, repl_factory=self._make_repl)
        if control is not None:
            control.bind()
        try:
            result = await loop.run(context, query)
        except asyncio.CancelledError:
            if control is not None:
                control.partial = loop.partial_result()
            if control is None or not control.stop_requested:
                raise
            raise Cancelled(
                "the run was stopped; .partial holds its steps, usage and trace so far",
                partial=control.partial,
            ) from None
        finally:
            if writer is not None:
                writer.close()
        if writer is not None:
            result = dataclasses.replace(result, trace=Trace(result.trace, path=writer.path))
        return result

    async def _learn_windows(self) -> None:
        """Ask the endpoint (``client.context_windows()``, when it has one) for windows the table lacks.

        Why: the context-window guard and the root's prompt need the sub-model's window,
        and a local server knows it (vLLM's ``max_model_len``); without it a prompt pasted
        whole is sent and fails, or is cut, at the server. Best effort, at most 5 s.
        """
        missing = self.pricing.missing_windows({self.settings.model, self.settings.sub_model})
        ask = getattr(self.sub_client or self.client, "context_windows", None)
        if not missing or ask is None:
            return
        try:
            windows = await asyncio.wait_for(ask(), WINDOW_LOOKUP_S)
        except (LMError, asyncio.TimeoutError) as exc:
            log.debug("no context windows from the endpoint: %s", exc)
            return
        for model in missing & set(windows):
            self.pricing.add_window(model, windows[model])

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
            try:
                return await asyncio.wrap_future(runtime.submit(coro))
            except asyncio.CancelledError as cancelled:
                # The run unwinds on rlm's loop; give it a moment to leave what it did.
                for _ in range(50):
                    if control.partial is not None:
                        break
                    await asyncio.sleep(0.02)
                cancelled.partial = control.partial  # type: ignore[attr-defined]
                raise

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
            try:
                return runtime.run(self._run(context, query, [*(subscribers or []), *viewers], control))
            except KeyboardInterrupt as interrupt:
                # Ctrl-C stays a KeyboardInterrupt, carrying what was done, as Cancelled does.
                interrupt.partial = control.partial  # type: ignore[attr-defined]
                raise

    def __repr__(self) -> str:
        s = self.settings
        return f"RLM(model={s.model!r}, sub_model={s.sub_model!r}, sandbox={self.sandbox!r})"


def _clients(endpoint: Endpoint, base_url: str | None, api_key: str | None) -> tuple[LMClient, LMClient | None]:
    """The root client and (``transport="auto"``) a lean one for sub-calls, the hot path.

    The SDK's own retries stay off (``max_retries=0``): the dispatcher retries every call
    once, under one policy.
    """
    if endpoint.client is not None:
        return endpoint.client, None
    from .lm.transport import FastClient  # aiohttp and the openai SDK load here, not at `import rlm`

    if endpoint.transport == "fast":
        return FastClient(api_key=api_key, base_url=base_url, timeout=endpoint.timeout), None
    root = OpenAIClient(api_key=api_key, base_url=base_url, timeout=endpoint.timeout, max_retries=0)
    if endpoint.transport == "auto":
        return root, FastClient(api_key=api_key, base_url=base_url, timeout=endpoint.timeout)
    return root, None


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
