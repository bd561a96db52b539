"""``rlm.map_rlm(contexts, query, executor="ray")``: each completion a Ray task, on a laptop or a cluster.

Why: a completion runs root code in a sandbox, which costs CPU and memory on the host;
past a few at once one machine is the limit, not the endpoint. Ray spreads them over
a cluster's workers. Each worker process keeps one RLM, built from the driver's settings,
with its own sandbox pool (warm kernels are reused from task to task). Every model call
on every worker first takes a slot from one ``SharedLimit`` actor, so the RLM's
``max_concurrent`` (and ``Endpoint.rpm``) hold for the whole cluster, not per worker.
The driver awaits the tasks and commits each result to the checkpoint as it finishes:
the same ``map_rlm`` loop, the same resume semantics. Ray is an extra: ``pip install 'rlm[ray]'``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib
import time
import uuid
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, RLMError, WorkerError
from ..lm.types import Completion, Usage

if TYPE_CHECKING:
    from ..api import RLM
    from ..core.result import RLMResult
    from ..lm.dispatcher import Dispatcher
    from ..trace.trace import Trace

def _ray() -> Any:
    try:
        return importlib.import_module("ray")
    except ImportError:
        raise ConfigError("map_rlm(executor='ray') needs Ray: pip install 'rlm[ray]'") from None


class SharedLimit:
    """A Ray actor holding the cluster-wide call slots: at most ``max_concurrent`` calls in flight, ``rpm`` a minute."""

    def __init__(self, max_concurrent: int, rpm: float | None) -> None:
        self._slots = asyncio.Semaphore(max_concurrent)
        self._gap = 60.0 / rpm if rpm else 0.0
        self._next = 0.0

    async def acquire(self) -> None:
        await self._slots.acquire()
        if self._gap:
            now = time.monotonic()
            wait, self._next = max(0.0, self._next - now), max(now, self._next) + self._gap
            await asyncio.sleep(wait)

    def release(self) -> None:
        self._slots.release()


class LimitedClient:
    """An ``LMClient`` that holds a slot of the ``SharedLimit`` actor around each call (used on the workers)."""

    #: Nobody watches a worker's root reply as it streams.
    streams = False

    def __init__(self, inner: Any, limit: Any) -> None:
        self._inner, self._limit = inner, limit

    async def complete(self, messages: list[dict[str, Any]], *, model: str, **opts: Any) -> Completion:
        await self._limit.acquire.remote()
        try:
            completion: Completion = await self._inner.complete(messages, model=model, **opts)
            return completion
        finally:
            self._limit.release.remote()

    async def context_windows(self) -> dict[str, int]:
        ask = getattr(self._inner, "context_windows", None)
        return dict(await ask()) if ask is not None else {}


def worker_spec(rlm: RLM, limit: Any) -> dict[str, Any]:
    """What a worker needs to build the same RLM: its settings, without the driver's cache, logs and display.

    ``api_key`` travels only if it was given; else each worker reads its own ``OPENAI_API_KEY``.
    """
    s = rlm.settings
    base_url, api_key = rlm._address
    return {
        "model": s.model, "sub_model": s.sub_model, "base_url": base_url, "api_key": api_key,
        "sandbox": rlm.kernels.config if rlm.kernels is not None else "local",
        "max_concurrent": rlm.limiter.max_concurrent, "max_iterations": s.max_iterations, "max_depth": s.max_depth,
        "budget": rlm.budget, "limits": rlm.limits, "endpoint": rlm.endpoint, "pricing": rlm.pricing,
        "tools": {name: tool.fn for name, tool in s.tools.items()}, "limit": limit,
    }


#: This worker process's RLM for the map it serves now: (the map's key, the RLM).
_worker: dict[str, Any] = {}


def _build(spec: dict[str, Any]) -> RLM:
    from ..api import RLM
    from ..wiring import clients

    endpoint = spec["endpoint"]
    if endpoint.client is not None:
        inner = endpoint.client
    else:  # one lean client: a worker's root replies need not stream
        lean = dataclasses.replace(endpoint, transport="fast" if endpoint.transport == "auto" else endpoint.transport)
        inner = clients(lean, spec["base_url"], spec["api_key"])[0]
    endpoint = dataclasses.replace(endpoint, client=LimitedClient(inner, spec["limit"]), rpm=None,
                                   pricing=spec["pricing"])
    return RLM(spec["model"], spec["sub_model"], base_url=spec["base_url"], api_key=spec["api_key"],
               sandbox=spec["sandbox"], max_concurrent=spec["max_concurrent"], max_iterations=spec["max_iterations"],
               max_depth=spec["max_depth"], budget=spec["budget"], limits=spec["limits"], endpoint=endpoint,
               tools=spec["tools"] or None, progress=False)


def complete_on_worker(key: str, spec: dict[str, Any], context: Any, query: str, schema: Any) -> RLMResult:
    """The Ray task: one completion with this worker's RLM (built once per map, its sandbox pool reused)."""
    if _worker.get("key") != key:
        old = _worker.get("rlm")
        if old is not None:
            old.close()
        _worker.update(key=key, rlm=_build(spec))
    result: RLMResult = _worker["rlm"].completion(context, query, schema=schema, view=False)
    return dataclasses.replace(result, origin=None)


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
    async def start(cls, rlm: RLM, dispatcher: Dispatcher, items: list[Any], query: str, schema: Any,
                    results: dict[int, RLMResult]) -> RayWork:
        """Connect to Ray first (off rlm's loop: starting a local Ray takes seconds)."""
        ray = _ray()
        if not ray.is_initialized():
            await asyncio.to_thread(ray.init)  # RAY_ADDRESS or a local Ray; ray.init(address=...) first for a cluster
        return cls(ray, rlm, dispatcher, items, query, schema, results)

    def __init__(self, ray: Any, rlm: RLM, dispatcher: Dispatcher, items: list[Any], query: str, schema: Any,
                 results: dict[int, RLMResult]) -> None:
        self.ray = ray
        self.limit = ray.remote(SharedLimit).remote(rlm.limiter.max_concurrent, rlm.endpoint.rpm)
        try:
            self.spec = ray.put(worker_spec(rlm, self.limit))
        except Exception as exc:  # whatever cannot be pickled: say which settings must
            ray.kill(self.limit)
            raise ConfigError(f"map_rlm(executor='ray') cannot send this RLM's settings to Ray workers "
                              f"({type(exc).__name__}: {exc}); tools, schema and Endpoint(client=...) must pickle"
                              ) from exc
        # No retries by Ray: a completion that killed its worker would do so again, and pay again; a rerun retries.
        self.task = ray.remote(max_retries=0)(complete_on_worker)
        self.key = uuid.uuid4().hex
        self.rlm, self.dispatcher, self.items, self.query, self.schema, self.results = (
            rlm, dispatcher, items, query, schema, results)

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
        self.results[i] = dataclasses.replace(result, origin=(self.rlm, self.items[i]))
        return result.text, result.usage.total, result.seconds, {"stopped": result.stopped,
                                                                  "iterations": result.iterations}

    def close(self) -> None:
        self.ray.kill(self.limit)
