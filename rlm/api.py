"""``RLM``: the public entry point. One async core, a thin blocking facade."""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import os
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from . import runtime
from .config import BatchAPI, Endpoint, Limits, as_via
from .control import RunControl
from .core.conversation import Conversation
from .core.host import ToolCall, current_tool
from .core.loop import LoopSettings, RootLoop
from .core.result import RLMResult
from .core.tools import as_tools
from .errors import Cancelled, ConfigError
from .lm.batch import Dispatcher
from .lm.budget import Budget, BudgetLedger
from .lm.cache import Cache, as_cache
from .lm.client import require_endpoint
from .lm.hedge import Hedge, as_hedge
from .lm.limiter import AdaptiveLimiter
from .lm.pricing import as_pricing
from .maps import Admit, MapResult, run_map, run_map_rlm
from .repl.base import REPL
from .repl.kernel import KernelREPL
from .repl.local import LocalREPL
from .repl.sandbox.config import SandboxConfig
from .repl.sandbox.pool import KernelPool
from .trace.events import Subscriber, Tracer
from .trace.jsonl import JsonlWriter
from .trace.progress import Listener
from .trace.trace import Trace
from .widgets import watch
from .wiring import check_budget, check_counts, clients, learn_windows, progress_subscribers

if TYPE_CHECKING:
    from .core.estimate import Estimate
    from .core.fork import Fork
    from .session import Session

T = TypeVar("T")
#: Work a blocking or awaitable call runs on rlm's loop, given the subscribers and the Stop handle.
Start = Callable[[list[Subscriber], RunControl], Coroutine[Any, Any, T]]

SANDBOXES = ("kernel", "local")


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
    (step timeout, output read back, children limits) and ``endpoint=Endpoint(...)``
    (timeout, retries, transport, rate caps, prices, a client of your own) hold the rest.
    ``tools``: functions (a dict by name, or a list) root code may call; they run here,
    in the host, with plain-data arguments and results. ``hedge=True`` (or a ``Hedge``)
    re-sends a batch's stragglers once its slots would sit idle (off: a duplicate costs).
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
        tools: Mapping[str, Callable[..., Any]] | Sequence[Callable[..., Any]] | None = None,
        hedge: bool | Hedge | None = None,
    ) -> None:
        sandbox_config = sandbox if isinstance(sandbox, SandboxConfig) else SandboxConfig()
        sandbox = "kernel" if isinstance(sandbox, SandboxConfig) else sandbox
        if sandbox not in SANDBOXES:
            raise ConfigError(f"sandbox={sandbox!r} is not available; choose one of {SANDBOXES} or a SandboxConfig")
        check_counts(max_concurrent=max_concurrent, max_iterations=max_iterations, max_depth=max_depth)
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
            max_children=limits.max_children,
            max_descendants=limits.max_descendants,
            tools=as_tools(tools),
            prompt=None if limits.prompt is None else str(limits.prompt),
        )
        self.retry = endpoint.retry_policy
        # Both transports must send the same request: refuse what the SDK's create() would not take.
        # A caller's own client decides for itself what it accepts.
        if endpoint.client is None:
            from .lm.options import check_call_options

            check_call_options(endpoint.call_options)
        self.client, self.sub_client = clients(endpoint, base_url, api_key)
        self._address = (base_url, api_key)  # for clients made on demand: the Batch API's
        self.sandbox = sandbox
        # Kernels start on first use; each completion gets a fresh one; close() or GC kills them.
        self.kernels: KernelPool | None = KernelPool(sandbox_config) if sandbox == "kernel" else None
        self.call_options = endpoint.call_options
        self.subscribers: list[Subscriber] = []
        self.log_dir = log_dir
        self.pricing = as_pricing(endpoint.pricing)
        self.budget = check_budget(budget, self.pricing, (model, sub_model or model))
        self.cache = as_cache(cache)
        self.hedge = as_hedge(hedge)
        if not (progress is None or isinstance(progress, bool) or callable(progress)):
            raise ConfigError(f"progress must be True, False, None (auto) or a callable, got {progress!r}")
        self.progress = progress
        # One limiter for every call this RLM makes, across batches, children and completions.
        self._windows_asked = False
        self.limiter = AdaptiveLimiter(max_concurrent, rpm=endpoint.rpm, tpm=endpoint.tpm,
                                       max_pause=self.retry.max_server_delay)

    def sibling(self, model: str, sub_model: str | None = None) -> RLM:
        """An RLM of other models that shares this one's limiter, kernel pool, clients, cache and prices.

        Why: several models served over one upstream (``rlm serve``) must queue every call
        for the same slots and every run for the same kernels. Everything else (limits,
        budget, sandbox) is this one's; closing either closes the shared kernels.
        """
        twin = copy.copy(self)
        twin.settings = dataclasses.replace(self.settings, model=model, sub_model=sub_model or model)
        twin.budget = check_budget(self.budget, self.pricing, (model, sub_model or model))
        twin.subscribers = []
        twin._windows_asked = False  # the shared prices learn the new models' windows on first use
        return twin

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
        self, context: Any, query: str, subscribers: list[Subscriber], control: RunControl | None = None,
        conversation: Conversation | None = None, schema: Any = None, within: ToolCall | None = None,
        fork: Fork | None = None,
    ) -> RLMResult:
        await self._first_use()
        if within is not None:
            return await self._run_within(within, context, query, schema)
        dispatcher, writer = self._dispatcher(subscribers)
        loop = RootLoop(settings=self.settings, dispatcher=dispatcher, repl_factory=self._make_repl)
        if control is not None:
            control.bind()
        try:
            result = await loop.run(context, query, conversation=conversation, schema=schema, fork=fork)
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
        trace = Trace(result.trace, path=writer.path) if writer is not None else result.trace
        return dataclasses.replace(result, trace=trace, origin=(self, context))

    async def _run_within(self, call: ToolCall, context: Any, query: str, schema: Any) -> RLMResult:
        """A completion a tool started: a child of the tool's run, under its budget, trace and Stop."""
        task = asyncio.current_task()
        if task is not None:
            call.spawned.add(task)
        try:
            return await call.host.run.child(call.span).run(context, query, schema=schema)
        finally:
            if task is not None:
                call.spawned.discard(task)

    def _within(self) -> ToolCall | None:
        """The tool call of this RLM's run that the caller is inside, if any."""
        call = current_tool.get()
        return call if call is not None and call.host.run.dispatcher.limiter is self.limiter else None

    async def _first_use(self) -> None:
        """Before each run: an endpoint to call; once per RLM, local models' context windows from it."""
        require_endpoint(self.client)
        if not self._windows_asked:
            self._windows_asked = True
            await learn_windows(self.pricing, {self.settings.model, self.settings.sub_model},
                                self.sub_client or self.client)

    async def acompletion(
        self, context: Any, query: str, *, schema: Any = None, subscribers: list[Subscriber] | None = None,
        view: bool | None = None,
    ) -> RLMResult:
        """Awaitable ``completion``. The work runs on rlm's own loop, so the caller's stays free."""
        return await self._aanswer(context, query, schema=schema, subscribers=subscribers, view=view)

    def completion(
        self, context: Any, query: str, *, schema: Any = None, subscribers: list[Subscriber] | None = None,
        view: bool | None = None,
    ) -> RLMResult:
        """Answer ``query`` over ``context`` (str, list, dict or pathlib.Path); blocks until done.

        ``schema``: a pydantic model, dataclass or TypedDict; ``result.answer`` is then a
        validated instance (``result.text`` the root's text) or ``AnswerError`` is raised.
        Interrupting (Ctrl-C, or the notebook's stop button) cancels every in-flight
        sub-call within a second and leaves this object ready for the next call.
        In a notebook (``view=None``) a live view of the run is shown; its Stop button
        ends the run and ``Cancelled`` is raised with the partial result on ``.partial``.
        """
        return self._answer(context, query, schema=schema, subscribers=subscribers, view=view)

    def estimate(self, context: Any, query: str) -> Estimate:
        """What a completion of ``query`` over ``context`` is likely to cost, without calling a model.

        A range of sub-calls, tokens and dollars (priced from the pricing table) for the
        plans the system prompt suggests; see ``rlm.core.estimate``.
        """
        from .core.estimate import estimate

        s = self.settings
        sandbox = self.kernels.config if self.kernels is not None else self.sandbox
        return estimate(context, query, model=s.model, sub_model=s.sub_model, pricing=self.pricing,
                        max_iterations=s.max_iterations, can_recurse=s.max_depth > 1, sandbox=sandbox)

    def fork(self, source: Any, *, at: int, code: str, context: Any, schema: Any = None,
             subscribers: list[Subscriber] | None = None, view: bool | None = None) -> RLMResult:
        """Branch a finished run at step ``at``: replay steps 1..at-1 from its record, run ``code`` as step ``at``.

        ``source`` is a trace log's path (``log_dir``), a ``Trace`` or an ``RLMResult``;
        ``context`` is the one the run had. The replayed steps make no model call; from
        step ``at`` on the root continues live. ``result.fork(at=..., code=...)`` is the same.
        """
        from .forks import plan

        planned, query = plan(source, at, code, self.pricing)
        return self._blocking(lambda subs, control: self._run(context, query, subs, control, None, schema,
                                                              fork=planned), subscribers, view)

    def session(self, context: Any = None) -> Session:
        """Several questions over one REPL and one conversation: ``s.ask(q)``, ``await s.aask(q)``.

        Variables and the root's history persist; earlier answers are in the REPL as
        ``answers``. ``with rlm.session(context) as s:`` closes its kernel at the end.
        """
        from .session import Session

        return Session(self, context)

    def map(self, prompts: Iterable[str], *, checkpoint: str | os.PathLike[str] | None = None,
            max_concurrent: int | None = None, model: str | None = None, via: str | BatchAPI = "calls",
            subscribers: list[Subscriber] | None = None, view: bool | None = None) -> MapResult:
        """One sub-call per prompt, answers in order (failures as ``FailedCall``); see ``rlm.maps``.

        With ``checkpoint="runs/x.sqlite"`` each answer is committed as it arrives and a
        rerun sends only what is missing or failed. The ``Budget`` covers the whole map.
        ``via="batch"`` (or a ``BatchAPI``) sends the prompts through the provider's Batch API, at half price.
        """
        return self._blocking(lambda subs, control: run_map(
            self, prompts, checkpoint=checkpoint, max_concurrent=max_concurrent, model=model, subscribers=subs,
            control=control, via=as_via(via)), subscribers, view)

    async def amap(self, prompts: Iterable[str], *, checkpoint: str | os.PathLike[str] | None = None,
                   max_concurrent: int | None = None, model: str | None = None, via: str | BatchAPI = "calls",
                   subscribers: list[Subscriber] | None = None, view: bool | None = None) -> MapResult:
        """Awaitable ``map``."""
        return await self._awaitable(lambda subs, control: run_map(
            self, prompts, checkpoint=checkpoint, max_concurrent=max_concurrent, model=model, subscribers=subs,
            control=control, via=as_via(via)), subscribers, view)

    def map_rlm(self, contexts: Iterable[Any] | os.PathLike[str], query: str, *,
                checkpoint: str | os.PathLike[str] | None = None, max_concurrent: int | None = None,
                schema: Any = None, executor: str = "local",
                subscribers: list[Subscriber] | None = None, view: bool | None = None) -> MapResult:
        """One completion of ``query`` per context (``RLMResult``s in order); resumable like ``map``.

        ``contexts``: any contexts, or a folder's ``Path``: one completion per document or text file in it.

        Each completion has its own ``Budget``, as with ``completion``; they share this RLM's limiter.
        ``executor="ray"`` runs each completion as a Ray task (``rlm.ray_executor``).
        """
        return self._blocking(lambda subs, control: run_map_rlm(
            self, contexts, query, checkpoint=checkpoint, max_concurrent=max_concurrent, schema=schema,
            subscribers=subs, control=control, executor=executor), subscribers, view)

    async def amap_rlm(self, contexts: Iterable[Any] | os.PathLike[str], query: str, *,
                       checkpoint: str | os.PathLike[str] | None = None, max_concurrent: int | None = None,
                       schema: Any = None, executor: str = "local", subscribers: list[Subscriber] | None = None,
                       view: bool | None = None, admit: Admit | None = None) -> MapResult:
        """Awaitable ``map_rlm``. ``admit``: entered around each item's completion (a server's run slot)."""
        return await self._awaitable(lambda subs, control: run_map_rlm(
            self, contexts, query, checkpoint=checkpoint, max_concurrent=max_concurrent, schema=schema,
            subscribers=subs, control=control, executor=executor, admit=admit), subscribers, view)

    async def _aanswer(
        self, context: Any, query: str, *, schema: Any, subscribers: list[Subscriber] | None,
        view: bool | None, conversation: Conversation | None = None,
    ) -> RLMResult:
        within = self._within()
        return await self._awaitable(
            lambda subs, control: self._run(context, query, subs, control, conversation, schema, within),
            subscribers, False if within else view)

    def _answer(
        self, context: Any, query: str, *, schema: Any, subscribers: list[Subscriber] | None,
        view: bool | None, conversation: Conversation | None = None,
    ) -> RLMResult:
        within = self._within()
        return self._blocking(
            lambda subs, control: self._run(context, query, subs, control, conversation, schema, within),
            subscribers, False if within else view)

    async def _awaitable(self, start: Start[T], subscribers: list[Subscriber] | None, view: bool | None) -> T:
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

    def _blocking(self, start: Start[T], subscribers: list[Subscriber] | None, view: bool | None) -> T:
        """Run ``start``'s work on rlm's loop and wait; Ctrl-C keeps what was done on ``.partial``."""
        control = RunControl()
        with watch(view, control) as viewers:
            try:
                return runtime.run(start([*(subscribers or []), *viewers], control))
            except KeyboardInterrupt as interrupt:
                # Ctrl-C stays a KeyboardInterrupt, carrying what was done, as Cancelled does.
                interrupt.partial = control.partial  # type: ignore[attr-defined]
                raise

    def _dispatcher(self, subscribers: list[Subscriber], tracer: Tracer | None = None) -> tuple[
            Dispatcher, JsonlWriter | None]:
        """One run's dispatcher: its tracer (subscribers, progress, the JSONL log) and budget, the RLM's limiter.

        With ``tracer``, a dispatcher of its own (usage, budget) whose events join that trace.
        """
        writer = JsonlWriter(self.log_dir) if self.log_dir is not None and tracer is None else None
        logs: list[Subscriber] = [writer] if writer is not None else []
        if tracer is None:
            tracer = Tracer([*self.subscribers, *subscribers, *progress_subscribers(self.progress), *logs])
        dispatcher = Dispatcher(
            self.client, pricing=self.pricing, budget=BudgetLedger(self.budget, self.pricing), cache=self.cache,
            limiter=self.limiter, tracer=tracer, call_options=self.call_options,
            retry=self.retry, sub_client=self.sub_client, stream=self.endpoint.stream, hedge=self.hedge,
        )
        return dispatcher, writer

    def __repr__(self) -> str:
        s = self.settings
        return f"RLM(model={s.model!r}, sub_model={s.sub_model!r}, sandbox={self.sandbox!r})"
