"""``RLM``: the public entry point, a thin facade. Every method delegates to the engine (``rlm.engine``)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .config import BatchAPI, Endpoint, Limits, Settings, as_via
from .core.result import RLMResult
from .core.tools import as_tools
from .datasets.maps import Admit, MapResult, run_map, run_map_rlm
from .engine import Engine, Start
from .lm.budget import Budget
from .repl.sandbox.config import SandboxConfig
from .trace.events import Subscriber
from .trace.progress import Listener

if TYPE_CHECKING:
    from .core.estimate import Estimate
    from .lm.limiter import AdaptiveLimiter
    from .lm.pricing import Pricing
    from .repl.sandbox.pool import KernelPool
    from .session import Session

PathArg = str | os.PathLike[str] | None


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
    ``progress``: a one-line display on stderr (default: on when stderr is a terminal),
    or a callable that receives every ``Progress`` snapshot. ``log_dir``: a JSONL trace
    per run. ``limits=Limits(...)`` (step timeout, output read back, children limits)
    and ``endpoint=Endpoint(...)`` (timeout, retries, transport, rate caps, prices, the
    on-disk ``cache``, ``hedge``-ing of stragglers, a client of your own) hold the rest.
    ``tools``: functions (a dict by name, or a list) root code may call; they run here,
    in the host, with plain-data arguments and results.
    ``subscribers`` (a list attribute) receive every trace event of every run.
    Every default is ``rlm.config.Settings``'s; ``.settings`` is what this RLM was built with.
    """

    def __init__(
        self,
        model: str = Settings.model,
        sub_model: str | None = None,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        sandbox: str | SandboxConfig = Settings.sandbox,
        max_concurrent: int = Settings.max_concurrent,
        max_iterations: int = Settings.max_iterations,
        max_depth: int = Settings.max_depth,
        budget: Budget | None = None,
        progress: bool | Listener | None = None,
        log_dir: str | os.PathLike[str] | None = None,
        limits: Limits | None = None,
        endpoint: Endpoint | None = None,
        tools: Mapping[str, Callable[..., Any]] | Sequence[Callable[..., Any]] | None = None,
    ) -> None:
        settings = Settings(
            model=model, sub_model=sub_model or "", base_url=base_url, api_key=api_key, sandbox=sandbox,
            max_concurrent=max_concurrent, max_iterations=max_iterations, max_depth=max_depth, budget=budget,
            progress=progress, log_dir=log_dir, limits=Limits() if limits is None else limits,
            endpoint=Endpoint() if endpoint is None else endpoint, tools=as_tools(tools),
        )
        self._engine = Engine(settings)

    @classmethod
    def _over(cls, engine: Engine) -> RLM:
        """A facade over an engine already built (``sibling``)."""
        rlm = cls.__new__(cls)
        rlm._engine = engine
        return rlm

    def sibling(self, model: str, sub_model: str | None = None) -> RLM:
        """An RLM of other models that shares this one's limiter, kernel pool, clients, cache and prices.

        Why: several models served over one upstream (``rlm serve``) must queue every call
        for the same slots and every run for the same kernels. Everything else (limits,
        budget, sandbox) is this one's; closing either closes the shared kernels.
        """
        return RLM._over(self._engine.sibling(model, sub_model))

    @property
    def settings(self) -> Settings:
        """Everything this RLM was built with (frozen; a Ray worker receives it whole)."""
        return self._engine.settings

    @property
    def engine(self) -> Engine:
        """What the settings built: clients, limiter, pricing, cache, kernel pool, and the run lifecycle."""
        return self._engine

    @property
    def subscribers(self) -> list[Subscriber]:
        """Receive every trace event of every run of this RLM; append to it."""
        return self._engine.subscribers

    @property
    def sandbox(self) -> str:
        """Where root code runs: ``"kernel"`` (the sandbox; ``settings.sandbox`` may hold its config) or ``"local"``."""
        return "kernel" if self._engine.kernels is not None else "local"

    @property
    def kernels(self) -> KernelPool | None:
        """The sandbox kernels (None with ``sandbox="local"``)."""
        return self._engine.kernels

    @property
    def limiter(self) -> AdaptiveLimiter:
        """The one limiter every call of this RLM takes a slot of."""
        return self._engine.limiter

    @property
    def pricing(self) -> Pricing:
        """Prices and context windows (``Endpoint.pricing`` over the built-in table, and what the endpoint said)."""
        return self._engine.pricing

    def close(self) -> None:
        """Kill this RLM's sandbox kernels now (garbage collection and interpreter exit also do)."""
        self._engine.close()

    async def aclose(self) -> None:
        """Awaitable ``close``."""
        await self._engine.aclose()

    def __enter__(self) -> RLM:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> RLM:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def acompletion(
        self, context: Any, query: str, *, schema: Any = None, subscribers: list[Subscriber] | None = None,
        view: bool | None = None,
    ) -> RLMResult:
        """Awaitable ``completion``. The work runs on rlm's own loop, so the caller's stays free."""
        return await self._engine.aanswer(context, query, schema=schema, subscribers=subscribers, view=view)

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
        return self._engine.answer(context, query, schema=schema, subscribers=subscribers, view=view)

    def estimate(self, context: Any, query: str) -> Estimate:
        """What a completion of ``query`` over ``context`` is likely to cost, without calling a model.

        A range of sub-calls, tokens and dollars (priced from the pricing table) for the
        plans the system prompt suggests; see ``rlm.core.estimate``.
        """
        return self._engine.estimate(context, query)

    def fork(self, source: Any, *, at: int, code: str, context: Any, schema: Any = None,
             subscribers: list[Subscriber] | None = None, view: bool | None = None) -> RLMResult:
        """Branch a finished run at step ``at``: replay steps 1..at-1 from its record, run ``code`` as step ``at``.

        ``source`` is a trace log's path (``log_dir``), a ``Trace`` or an ``RLMResult``;
        ``context`` is the one the run had. The replayed steps make no model call; from
        step ``at`` on the root continues live. ``result.fork(at=..., code=...)`` is the same.
        """
        return self._engine.fork(source, at=at, code=code, context=context, schema=schema, subscribers=subscribers,
                                 view=view)

    def session(self, context: Any = None) -> Session:
        """Several questions over one REPL and one conversation: ``s.ask(q)``, ``await s.aask(q)``.

        Variables and the root's history persist; earlier answers are in the REPL as
        ``answers``. ``with rlm.session(context) as s:`` closes its kernel at the end.
        """
        from .session import Session

        return Session(self._engine, context)

    def map(self, prompts: Iterable[str], *, checkpoint: PathArg = None, max_concurrent: int | None = None,
            model: str | None = None, via: str | BatchAPI = "calls", subscribers: list[Subscriber] | None = None,
            view: bool | None = None) -> MapResult:
        """One sub-call per prompt, answers in order (failures as ``FailedCall``); see ``rlm.datasets.maps``.

        With ``checkpoint="runs/x.sqlite"`` each answer is committed as it arrives and a
        rerun sends only what is missing or failed. The ``Budget`` covers the whole map.
        ``via="batch"`` (or a ``BatchAPI``) sends the prompts through the provider's Batch API, at half price.
        """
        return self._engine.blocking(self._map(prompts, checkpoint, max_concurrent, model, via), subscribers, view)

    async def amap(self, prompts: Iterable[str], *, checkpoint: PathArg = None, max_concurrent: int | None = None,
                   model: str | None = None, via: str | BatchAPI = "calls",
                   subscribers: list[Subscriber] | None = None, view: bool | None = None) -> MapResult:
        """Awaitable ``map``."""
        return await self._engine.awaitable(self._map(prompts, checkpoint, max_concurrent, model, via), subscribers,
                                            view)

    def _map(self, prompts: Iterable[str], checkpoint: PathArg, max_concurrent: int | None, model: str | None,
             via: str | BatchAPI) -> Start[MapResult]:
        """A map's work: one call per prompt, or (``via``) the provider's Batch API."""
        engine, batch = self._engine, as_via(via)
        if batch is None:
            return lambda subs, control: run_map(engine, prompts, checkpoint=checkpoint, max_concurrent=max_concurrent,
                                                 model=model, subscribers=subs, control=control)
        from .datasets.provider_batch import run_batch_map  # the openai SDK's batch types load only for batch maps

        return lambda subs, control: run_batch_map(engine, prompts, checkpoint=checkpoint, model=model, via=batch,
                                                   subscribers=subs, control=control)

    def map_rlm(self, contexts: Iterable[Any] | os.PathLike[str], query: str, *, checkpoint: PathArg = None,
                max_concurrent: int | None = None, schema: Any = None, executor: str = "local",
                subscribers: list[Subscriber] | None = None, view: bool | None = None) -> MapResult:
        """One completion of ``query`` per context (``RLMResult``s in order); resumable like ``map``.

        ``contexts``: any contexts, or a folder's ``Path``: one completion per document or text file in it.

        Each completion has its own ``Budget``, as with ``completion``; they share this RLM's limiter.
        ``executor="ray"`` runs each completion as a Ray task (``rlm.datasets.ray_executor``).
        """
        engine = self._engine
        return engine.blocking(lambda subs, control: run_map_rlm(
            engine, contexts, query, checkpoint=checkpoint, max_concurrent=max_concurrent, schema=schema,
            subscribers=subs, control=control, executor=executor), subscribers, view)

    async def amap_rlm(self, contexts: Iterable[Any] | os.PathLike[str], query: str, *, checkpoint: PathArg = None,
                       max_concurrent: int | None = None, schema: Any = None, executor: str = "local",
                       subscribers: list[Subscriber] | None = None, view: bool | None = None,
                       admit: Admit | None = None) -> MapResult:
        """Awaitable ``map_rlm``. ``admit``: entered around each item's completion (a server's run slot)."""
        engine = self._engine
        return await engine.awaitable(lambda subs, control: run_map_rlm(
            engine, contexts, query, checkpoint=checkpoint, max_concurrent=max_concurrent, schema=schema,
            subscribers=subs, control=control, executor=executor, admit=admit), subscribers, view)

    def __repr__(self) -> str:
        s = self.settings
        return f"RLM(model={s.model!r}, sub_model={s.sub_model!r}, sandbox={self.sandbox!r})"
