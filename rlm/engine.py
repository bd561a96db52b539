"""``Engine``: what ``RLM(...)`` builds from its settings, once, and the one lifecycle of every run.

Why one object: a completion, a session's question, a map, a provider batch map and a
Ray worker's completion all need the same things (the clients, the limiter every call
shares, the prices, the cache, the hedge policy, the kernel pool) and the same
lifecycle around their work (``open_run``: a tracer feeding the subscribers, the progress
line and the JSONL log; Stop; the result so far kept when the run ends early). Said once
here, the facade only delegates, and no way of running reaches into another's privates.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import dataclasses
import logging
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

from . import runtime
from .config import Settings
from .core.conversation import Conversation
from .core.fork import Fork, plan
from .core.host import ToolCall, current_tool
from .core.loop import RootLoop
from .core.result import Origin, RLMResult
from .errors import Cancelled, ConfigError, LMError, RLMError
from .lm.budget import Budget, BudgetLedger
from .lm.cache import as_cache
from .lm.client import LMClient, OpenAIClient
from .lm.dispatcher import Dispatcher
from .lm.endpoint import NoEndpoint, has_endpoint, require_endpoint
from .lm.hedge import as_hedge
from .lm.limiter import AdaptiveLimiter
from .lm.pricing import Pricing, as_pricing
from .repl.base import REPL
from .repl.kernel_repl import KernelREPL
from .repl.local import LocalREPL
from .repl.sandbox.pool import KernelPool
from .runtime import RunControl
from .trace.events import Event, Subscriber, Tracer
from .trace.jsonl import JsonlWriter
from .trace.progress import progress_subscribers
from .trace.trace import Trace
from .widgets import watch

if TYPE_CHECKING:
    from .core.estimate import Estimate

T = TypeVar("T")
#: Work a blocking or awaitable call runs on rlm's loop, given the subscribers and the Stop handle.
Start = Callable[[list[Subscriber], RunControl], Coroutine[Any, Any, T]]
#: Wraps each of an engine's clients so every call also takes a cluster-wide slot (a Ray worker's engine).
Gate = Callable[[LMClient], LMClient]

#: The longest a first run waits for an endpoint's ``/models`` listing.
WINDOW_LOOKUP_S = 5.0
log = logging.getLogger("rlm")


class Run:
    """One run on the engine: its dispatcher (tracer, usage, budget), and how to tell what it did so far."""

    def __init__(self, engine: Engine, dispatcher: Dispatcher, writer: JsonlWriter | None) -> None:
        self.engine = engine
        self.dispatcher = dispatcher
        self.tracer = dispatcher.tracer
        self.writer = writer
        self._partial: Callable[[], Any] = lambda: None

    def keep(self, partial: Callable[[], Any]) -> None:
        """How to build the result so far, should the run end early (Stop, Ctrl-C, an error)."""
        self._partial = partial

    def partial(self) -> Any:
        return self._partial()

    def trace(self, events: Iterable[Event]) -> Trace:
        """The run's events as a ``Trace`` that names its JSONL log, if one was written."""
        return Trace(events, path=self.writer.path if self.writer is not None else None)

    def loop(self, *, dispatcher: Dispatcher | None = None, parent_span: str | None = None) -> RootLoop:
        """A root loop on this run (or on ``dispatcher``, one of its own whose events join this run's trace)."""
        return RootLoop(settings=self.engine.settings, dispatcher=dispatcher or self.dispatcher,
                        repl_factory=self.engine.make_repl, parent_span=parent_span)

    def own_dispatcher(self) -> Dispatcher:
        """A dispatcher with usage and budget of its own whose events join this run's trace (a map_rlm item)."""
        return self.engine.dispatcher(self.tracer)


class Engine:
    """What ``RLM(...)`` builds, once: clients, limiter, pricing, cache, hedge, kernel pool, settings.

    ``pricing``: a table to use instead of one made from the settings (a Ray worker gets
    its driver's, with the context windows it learned). ``gate``: a Ray worker's engine,
    whose calls also take a slot of the cluster's limit (which keeps ``rpm`` and ``tpm``
    for the whole cluster); it shows no progress, writes no log and streams nothing.
    """

    def __init__(self, settings: Settings, *, pricing: Pricing | None = None, gate: Gate | None = None) -> None:
        if not isinstance(settings, Settings):
            raise ConfigError(f"Engine takes a rlm.config.Settings, got {type(settings).__name__}")
        self.settings = settings
        endpoint = settings.endpoint
        self.pricing = pricing if pricing is not None else as_pricing(endpoint.pricing)
        self.budget = check_budget(settings.budget, self.pricing, (settings.model, settings.sub_model))
        # Both transports must send the same request: refuse what the SDK's create() would not take.
        # A caller's own client decides for itself what it accepts.
        if endpoint.client is None:
            from .lm.options import check_call_options

            check_call_options(endpoint.call_options)
        self.client, self.sub_client = clients(settings, lean=gate is not None)
        if gate is not None:
            self.client, self.sub_client = gate(self.client), None
        self.observed = gate is None
        self.retry = endpoint.retry_policy
        self.cache = as_cache(endpoint.cache)
        self.hedge = as_hedge(endpoint.hedge)
        # One limiter for every call this engine makes, across batches, children, completions and maps.
        local = gate is None  # a gated engine's rates hold for the cluster, at the gate
        self.limiter = AdaptiveLimiter(settings.max_concurrent, rpm=endpoint.rpm if local else None,
                                       tpm=endpoint.tpm if local else None, max_pause=self.retry.max_server_delay)
        # Kernels start on first use; each completion gets a fresh one; close() or GC kills them.
        config = settings.sandbox_config
        self.kernels: KernelPool | None = KernelPool(config) if config is not None else None
        #: Receive every trace event of every run.
        self.subscribers: list[Subscriber] = []
        self._windows_asked = False

    def sibling(self, model: str, sub_model: str | None = None) -> Engine:
        """An engine of other models sharing this one's limiter, kernel pool, clients, cache, hedge and prices.

        Why: several models served over one upstream (``rlm serve``) must queue every call
        for the same slots and every run for the same kernels. Everything else (limits,
        budget, sandbox) is this one's; closing either closes the shared kernels.
        """
        settings = dataclasses.replace(self.settings, model=model, sub_model=sub_model or model)
        twin = copy.copy(self)
        twin.settings = settings
        twin.budget = check_budget(settings.budget, self.pricing, (settings.model, settings.sub_model))
        twin.subscribers = []
        twin._windows_asked = False  # the shared prices learn the new models' windows on first use
        return twin

    def make_repl(self) -> REPL:
        """A fresh REPL for one completion (or one session): a sandbox kernel, or in-process."""
        timeout, cap = self.settings.limits.step_timeout, self.settings.capture_chars
        if self.kernels is not None:
            return KernelREPL(self.kernels, step_timeout=timeout, max_capture_chars=cap)
        return LocalREPL(step_timeout=timeout, max_capture_chars=cap)

    def dispatcher(self, tracer: Tracer) -> Dispatcher:
        """A dispatcher for one run: usage and budget of its own, the engine's limiter, clients and cache."""
        return Dispatcher(
            self.client, pricing=self.pricing, budget=BudgetLedger(self.budget, self.pricing), cache=self.cache,
            limiter=self.limiter, tracer=tracer, call_options=self.settings.endpoint.call_options,
            retry=self.retry, sub_client=self.sub_client, stream=self.settings.endpoint.stream, hedge=self.hedge,
        )

    @contextlib.asynccontextmanager
    async def open_run(self, subscribers: Iterable[Subscriber], control: RunControl) -> AsyncIterator[Run]:
        """The lifecycle of every run: an endpoint to call (else, before anything starts, the error saying
        what to set), a dispatcher and tracer (the subscribers, progress, the JSONL log), Stop.

        A run that ends early keeps what it did (``Run.keep``): on ``control.partial``, and
        on the error's ``.partial``; a Stop ends it with ``Cancelled`` carrying it.
        """
        await self.first_use()
        settings = self.settings
        writer = JsonlWriter(settings.log_dir) if self.observed and settings.log_dir is not None else None
        shown: list[Subscriber] = [*progress_subscribers(settings.progress)] if self.observed else []
        if writer is not None:
            shown.append(writer)
        run = Run(self, self.dispatcher(Tracer([*self.subscribers, *subscribers, *shown])), writer)
        control.bind()
        try:
            yield run
        except asyncio.CancelledError:
            control.partial = run.partial()
            if not control.stop_requested:
                raise
            raise Cancelled("the run was stopped; .partial holds its steps, usage and trace so far",
                            partial=control.partial) from None
        except RLMError as exc:
            if exc.partial is None:
                exc.partial = run.partial()
            control.partial = exc.partial
            raise
        finally:
            if writer is not None:
                writer.close()

    async def complete(
        self, context: Any, query: str, subscribers: list[Subscriber], control: RunControl, *,
        conversation: Conversation | None = None, schema: Any = None, fork: Fork | None = None,
        within: ToolCall | None = None,
    ) -> RLMResult:
        """One completion (a session's question with ``conversation``, a fork with ``fork``) on rlm's loop."""
        if within is not None:
            await self.first_use()
            return await self._complete_within(within, context, query, schema)
        async with self.open_run(subscribers, control) as run:
            loop = run.loop()
            run.keep(loop.partial_result)
            result = await loop.run(context, query, conversation=conversation, schema=schema, fork=fork)
        return dataclasses.replace(result, trace=run.trace(result.trace), origin=Origin(self, context))

    async def _complete_within(self, call: ToolCall, context: Any, query: str, schema: Any) -> RLMResult:
        """A completion a tool started: a child of the tool's run, under its budget, trace and Stop."""
        task = asyncio.current_task()
        if task is not None:
            call.spawned.add(task)
        try:
            return await call.host.run.child(call.span).run(context, query, schema=schema)
        finally:
            if task is not None:
                call.spawned.discard(task)

    def within(self) -> ToolCall | None:
        """The tool call of this engine's run that the caller is inside, if any."""
        call = current_tool.get()
        return call if call is not None and call.host.run.dispatcher.limiter is self.limiter else None

    def answer(self, context: Any, query: str, *, schema: Any = None, subscribers: list[Subscriber] | None = None,
               view: bool | None = None, conversation: Conversation | None = None) -> RLMResult:
        """A completion, blocking; inside one of this engine's tools, a child of the tool's run."""
        within = self.within()
        return self.blocking(lambda subs, control: self.complete(
            context, query, subs, control, conversation=conversation, schema=schema, within=within),
            subscribers, False if within else view)

    async def aanswer(self, context: Any, query: str, *, schema: Any = None,
                      subscribers: list[Subscriber] | None = None, view: bool | None = None,
                      conversation: Conversation | None = None) -> RLMResult:
        """Awaitable ``answer``."""
        within = self.within()
        return await self.awaitable(lambda subs, control: self.complete(
            context, query, subs, control, conversation=conversation, schema=schema, within=within),
            subscribers, False if within else view)

    def fork(self, source: Any, *, at: int, code: str, context: Any, schema: Any = None,
             subscribers: list[Subscriber] | None = None, view: bool | None = None) -> RLMResult:
        """A finished run branched at step ``at`` (see ``RLM.fork``); blocking."""
        planned, query = plan(source, at, code, self.pricing)
        return self.blocking(lambda subs, control: self.complete(context, query, subs, control, schema=schema,
                                                                 fork=planned), subscribers, view)

    def estimate(self, context: Any, query: str) -> Estimate:
        """What a completion is likely to cost, without calling a model (``rlm.core.estimate``)."""
        from .core.estimate import estimate

        s = self.settings
        return estimate(context, query, model=s.model, sub_model=s.sub_model, pricing=self.pricing,
                        max_iterations=s.max_iterations, can_recurse=s.max_depth > 1,
                        sandbox=s.sandbox_config or "local")

    async def awaitable(self, start: Start[T], subscribers: list[Subscriber] | None, view: bool | None) -> T:
        """Run ``start``'s work on rlm's loop without blocking the caller's; a live view in a notebook."""
        nested = runtime.on_runtime_thread()
        control = RunControl()
        with watch(False if nested else view, control) as viewers:
            coro = start([*(subscribers or []), *viewers], control)
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

    def blocking(self, start: Start[T], subscribers: list[Subscriber] | None, view: bool | None) -> T:
        """Run ``start``'s work on rlm's loop and wait; Ctrl-C keeps what was done on ``.partial``."""
        control = RunControl()
        with watch(view, control) as viewers:
            try:
                return runtime.run(start([*(subscribers or []), *viewers], control))
            except KeyboardInterrupt as interrupt:
                # Ctrl-C stays a KeyboardInterrupt, carrying what was done, as Cancelled does.
                interrupt.partial = control.partial  # type: ignore[attr-defined]
                raise

    async def first_use(self) -> None:
        """Before each run: an endpoint to call; once per engine, local models' context windows from it."""
        require_endpoint(self.client)
        if not self._windows_asked:
            self._windows_asked = True
            await learn_windows(self.pricing, {self.settings.model, self.settings.sub_model},
                                self.sub_client or self.client)

    def close(self) -> None:
        """Kill the engine's sandbox kernels now (garbage collection and interpreter exit also do)."""
        if self.kernels is not None:
            self.kernels.close()

    async def aclose(self) -> None:
        """Awaitable ``close``."""
        if self.kernels is not None:
            if runtime.on_runtime_thread():
                await self.kernels.aclose()
            else:
                await asyncio.wrap_future(runtime.submit(self.kernels.aclose()))


def clients(settings: Settings, *, lean: bool = False) -> tuple[LMClient, LMClient | None]:
    """The root client and (``transport="auto"``) a lean one for sub-calls, the hot path.

    With neither a key nor a URL (arguments or environment), a ``NoEndpoint``.
    ``lean``: one lean client for all calls where the transport allows (nobody watches a
    Ray worker's root replies stream). The SDK's own retries stay off (``max_retries=0``):
    the dispatcher retries every call once, under one policy.
    """
    endpoint = settings.endpoint
    if endpoint.client is not None:
        return endpoint.client, None
    if not has_endpoint(settings.api_key, settings.base_url):
        return NoEndpoint(), None  # RLM(...) and estimate() need no endpoint; a run says what to set
    from .lm.transport import FastClient  # aiohttp and the openai SDK load here, not at `import rlm`

    key, url, timeout = settings.api_key, settings.base_url, endpoint.timeout
    if endpoint.transport == "fast" or (lean and endpoint.transport == "auto"):
        return FastClient(api_key=key, base_url=url, timeout=timeout), None
    root = OpenAIClient(api_key=key, base_url=url, timeout=timeout, max_retries=0)
    if endpoint.transport == "auto":
        return root, FastClient(api_key=key, base_url=url, timeout=timeout)
    return root, None


def check_budget(budget: Budget | None, pricing: Pricing, models: tuple[str, str]) -> Budget | None:
    """Fail at construction, not mid-run, when a dollar limit meets a model with no price."""
    if budget is not None and budget.max_cost_usd is not None:
        for name in models:
            if not pricing.is_priced(name):
                raise ConfigError(
                    f"Budget(max_cost_usd=...) needs a price for model {name!r}; pass RLM(endpoint=Endpoint("
                    f"pricing={{{name!r}: ModelInfo(input_per_mtok=..., output_per_mtok=...)}}))"
                )
    return budget


async def learn_windows(pricing: Pricing, models: set[str], client: LMClient) -> None:
    """Ask the endpoint (``client.context_windows()``, when it has one) for windows the table lacks.

    Why: the context-window guard and the root's prompt need the sub-model's window,
    and a local server knows it (vLLM's ``max_model_len``); without it a prompt pasted
    whole is sent and fails, or is cut, at the server. Best effort, at most 5 s.
    """
    missing = pricing.missing_windows(models)
    ask = getattr(client, "context_windows", None)
    if not missing or ask is None:
        return
    try:
        windows = await asyncio.wait_for(ask(), WINDOW_LOOKUP_S)
    except (LMError, asyncio.TimeoutError) as exc:
        log.debug("no context windows from the endpoint: %s", exc)
        return
    for model in missing & set(windows):
        pricing.add_window(model, windows[model])
