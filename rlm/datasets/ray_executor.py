"""``rlm.map_rlm(contexts, query, executor="ray")``: each completion a Ray task, on a laptop or a cluster.

Why: a completion runs root code in a sandbox, which costs CPU and memory on the host;
past a few at once one machine is the limit, not the endpoint. Ray spreads them over
a cluster's workers. Each worker process keeps one engine, built from the driver's
``Settings`` (shipped whole, never restated) with its own sandbox pool (warm kernels are
reused from task to task). Every model call on every worker first takes a slot from one
``SharedLimit`` actor, so the RLM's ``max_concurrent``, ``Endpoint.rpm`` and ``Endpoint.tpm``
hold for the whole cluster, not per worker.
The driver awaits the tasks and commits each result to the checkpoint as it finishes:
the same ``map_rlm`` loop, the same resume semantics. Ray is an extra: ``pip install 'rlm[ray]'``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import importlib
import itertools
import uuid
from typing import TYPE_CHECKING, Any

from ..config import Settings
from ..core.result import Origin
from ..engine import Engine
from ..errors import ConfigError, RLMError, WorkerError
from ..lm.dispatcher import request_tokens
from ..lm.limiter import AdaptiveLimiter
from ..lm.pricing import Pricing
from ..lm.tokens import message_chars
from ..lm.types import Completion, Usage

if TYPE_CHECKING:
    from ..core.result import RLMResult
    from ..lm.dispatcher import Dispatcher
    from ..trace.trace import Trace


def _ray() -> Any:
    try:
        return importlib.import_module("ray")
    except ImportError:
        raise ConfigError("map_rlm(executor='ray') needs Ray: pip install 'rlm[ray]'") from None


class SharedLimit:
    """A Ray actor holding the cluster's call slots: ``max_concurrent`` in flight, ``rpm`` and ``tpm`` a minute.

    The same limiter an engine uses, without its adaptation (each worker's own limiter
    backs off on 429s): one for the whole cluster, living on the actor's loop.
    """

    def __init__(self, max_concurrent: int, rpm: float | None, tpm: float | None, max_pause: float) -> None:
        self._limiter = AdaptiveLimiter(max_concurrent, rpm=rpm, tpm=tpm, max_pause=max_pause, adaptive=False)
        self._held: dict[int, tuple[Any, contextlib.AsyncExitStack]] = {}
        self._ids = itertools.count()

    async def acquire(self, tokens: float) -> int:
        """Wait for a slot for a request of about ``tokens``; returns its id for ``release``."""
        stack = contextlib.AsyncExitStack()
        slot = await stack.enter_async_context(self._limiter.slot(tokens))
        n = next(self._ids)
        self._held[n] = (slot, stack)
        return n

    async def release(self, n: int, used: float | None) -> None:
        """Give slot ``n`` back, charging the tokens the call really used against the TPM cap."""
        slot, stack = self._held.pop(n)
        if used is not None:
            slot.used(used)
        await stack.aclose()


class LimitedClient:
    """An ``LMClient`` that holds a slot of the ``SharedLimit`` actor around each call (used on the workers)."""

    #: Nobody watches a worker's root reply as it streams.
    streams = False

    def __init__(self, inner: Any, limit: Any) -> None:
        self.inner, self.limit = inner, limit

    async def complete(self, messages: list[dict[str, Any]], *, model: str, **opts: Any) -> Completion:
        tokens = request_tokens(message_chars(messages), opts)
        n = await self.limit.acquire.remote(tokens)
        used: float | None = None
        try:
            completion: Completion = await self.inner.complete(messages, model=model, **opts)
            used = completion.usage.total_tokens
            return completion
        finally:
            self.limit.release.remote(n, used)

    async def context_windows(self) -> dict[str, int]:
        ask = getattr(self.inner, "context_windows", None)
        return dict(await ask()) if ask is not None else {}


@dataclasses.dataclass(frozen=True)
class WorkerSpec:
    """What a worker builds its engine from: the driver's settings, whole, its price table, the cluster's limit.

    The table carries the context windows the driver learned, so no worker asks the endpoint again.
    """

    settings: Settings
    pricing: Pricing
    limit: Any

    def engine(self) -> Engine:
        """The worker's engine: the driver's settings, each call also holding a slot of the cluster's limit."""
        return Engine(self.settings, pricing=self.pricing, gate=lambda client: LimitedClient(client, self.limit))


#: This worker process's engine for the map it serves now: (the map's key, the engine).
_worker: dict[str, Any] = {}


def complete_on_worker(key: str, spec: WorkerSpec, context: Any, query: str, schema: Any) -> RLMResult:
    """The Ray task: one completion with this worker's engine (built once per map, its sandbox pool reused)."""
    if _worker.get("key") != key:
        old = _worker.get("engine")
        if old is not None:
            old.close()
        _worker.update(key=key, engine=spec.engine())
    engine: Engine = _worker["engine"]
    return engine.answer(context, query, schema=schema, view=False)  # its origin stays here: it does not pickle


def _replay(dispatcher: Dispatcher, trace: Trace, parent: str, prefix: str) -> None:
    """A worker's events into the map's trace, under the map's batch span (ids prefixed: processes count apart)."""
    for event in trace:
        dispatcher.tracer.emit(event.kind, prefix + event.id, prefix + event.parent if event.parent else parent,
                               **event.data)


def _unwrapped(ray: Any, exc: BaseException, i: int) -> BaseException:
    """The ``RLMError`` a task raised, as itself; a worker that died or could not run it as ``WorkerError``."""
    cause = getattr(exc, "cause", None)
    if isinstance(exc, ray.exceptions.RayTaskError) and isinstance(cause, RLMError):
        return cause
    return WorkerError(f"the Ray task of item {i} failed: {type(exc).__name__}: {exc}", cause=cause or exc)


class RayWork:
    """``map_rlm``'s work on Ray: start the shared limit, ship the settings once, run each item as a task."""

    @classmethod
    async def start(cls, engine: Engine, dispatcher: Dispatcher, items: list[Any], query: str, schema: Any,
                    results: dict[int, RLMResult]) -> RayWork:
        """Connect to Ray first (off rlm's loop: starting a local Ray takes seconds)."""
        ray = _ray()
        if not ray.is_initialized():
            await asyncio.to_thread(ray.init)  # RAY_ADDRESS or a local Ray; ray.init(address=...) first for a cluster
        return cls(ray, engine, dispatcher, items, query, schema, results)

    def __init__(self, ray: Any, engine: Engine, dispatcher: Dispatcher, items: list[Any], query: str, schema: Any,
                 results: dict[int, RLMResult]) -> None:
        self.ray = ray
        s = engine.settings
        self.limit = ray.remote(SharedLimit).remote(s.max_concurrent, s.endpoint.rpm, s.endpoint.tpm,
                                                    engine.retry.max_server_delay)
        try:
            self.spec = ray.put(WorkerSpec(s, engine.pricing, self.limit))
        except Exception as exc:  # whatever cannot be pickled: say which settings must
            ray.kill(self.limit)
            raise ConfigError(f"map_rlm(executor='ray') cannot send this RLM's settings to Ray workers "
                              f"({type(exc).__name__}: {exc}); tools, schema and Endpoint(client=...) must pickle"
                              ) from exc
        # No retries by Ray: a completion that killed its worker would do so again, and pay again; a rerun retries.
        self.task = ray.remote(max_retries=0)(complete_on_worker)
        self.key = uuid.uuid4().hex
        self.engine, self.dispatcher, self.items, self.query, self.schema, self.results = (
            engine, dispatcher, items, query, schema, results)

    async def __call__(self, i: int, parent: str) -> tuple[str, Usage, float, dict[str, Any]]:
        ref = self.task.remote(self.key, self.spec, self.items[i], self.query, self.schema)
        try:
            result: RLMResult = await asyncio.wrap_future(ref.future())
        except asyncio.CancelledError:
            self.ray.cancel(ref)
            raise
        except self.ray.exceptions.RayError as exc:
            raise _unwrapped(self.ray, exc, i) from exc
        _replay(self.dispatcher, result.trace, parent, f"{i}.")
        for name, usage in result.usage.by_model.items():
            self.dispatcher.meter.add(name, usage)
        self.results[i] = dataclasses.replace(result, origin=Origin(self.engine, self.items[i]))
        return result.text, result.usage.total, result.seconds, {"stopped": result.stopped,
                                                                  "iterations": result.iterations}

    def close(self) -> None:
        self.ray.kill(self.limit)
