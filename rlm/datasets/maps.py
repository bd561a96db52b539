"""Maps over whole datasets: ``rlm.map(prompts)`` and ``rlm.map_rlm(contexts, query)``, resumable.

Why not ``llm_batch`` in a loop: a dataset run takes hours, and a crash must lose
nothing. Each finished item is committed to the checkpoint as it completes, a rerun sends
only what is missing or failed, and one failed item never stops the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import time
from collections.abc import Callable, Coroutine, Iterable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core.answers import AnswerShape
from ..core.result import Origin, RLMResult, UsageReport
from ..errors import BudgetExceeded, ConfigError, RLMError, check_int
from ..lm.types import Usage
from ..repl.base import load_context
from ..repl.contexts import files_in
from ..repl.steps import FailedCall
from ..trace.trace import Trace
from .checkpoint import Checkpoint, Row, input_hash

if TYPE_CHECKING:
    from ..engine import Engine, Run
    from ..lm.dispatcher import Dispatcher
    from ..runtime import RunControl
    from ..trace.events import Subscriber

log = logging.getLogger("rlm")
PathArg = str | os.PathLike[str] | None
#: Sub-calls of ``map`` at once, unless told (the RLM's limiter caps them too).
DEFAULT_MAP_CONCURRENCY = 32
#: Completions of ``map_rlm`` at once, unless told (each holds a sandbox kernel).
DEFAULT_RLM_CONCURRENCY = 4


class MapResult(list[Any]):
    """The answers, in input order (a failed item is a ``FailedCall``), and what the map took.

    ``usage`` counts this run's calls only; ``resumed`` is how many items came from the
    checkpoint without a call; ``checkpoint`` is its path (None without one).
    """

    usage: UsageReport
    resumed: int
    checkpoint: Path | None
    trace: Trace


def check_prompts(prompts: Iterable[str]) -> list[str]:
    items = list(prompts)
    bad = [i for i, p in enumerate(items) if not isinstance(p, str)]
    if isinstance(prompts, str) or bad:
        raise TypeError(f"map(prompts) takes a list of strings; items {bad[:5]} are not strings")
    return items


def map_meta(engine: Engine, model: str) -> dict[str, Any]:
    """What a ``map``'s answers depend on; the same however they were sent (calls or a batch)."""
    return {"kind": "map", "model": model, "options": engine.settings.endpoint.call_options}


async def run_map(engine: Engine, prompts: Iterable[str], *, checkpoint: PathArg, max_concurrent: int | None,
                  model: str | None, subscribers: list[Subscriber], control: RunControl) -> MapResult:
    """One sub-call per prompt, each committed as it completes (``provider_batch``: through the Batch API)."""
    items = check_prompts(prompts)
    chosen = engine.settings.check_model("map", model)
    async with engine.open_run(subscribers, control) as run:
        dispatcher = run.dispatcher

        async def one(i: int, parent: str) -> Done:
            started = time.perf_counter()
            completion = await dispatcher.complete([{"role": "user", "content": items[i]}], model=chosen,
                                                   parent=parent)
            return completion.text, completion.usage, time.perf_counter() - started, {}

        return await _mapped(run, items, map_meta(engine, chosen), checkpoint,
                             max_concurrent or DEFAULT_MAP_CONCURRENCY, one, stop_on_budget=True,
                             label=f"map of {len(items):,} prompts", model=chosen)


#: Where ``map_rlm`` runs its completions: here, on rlm's loop, or as Ray tasks (``rlm.datasets.ray_executor``).
EXECUTORS = ("local", "ray")


async def run_map_rlm(engine: Engine, contexts: Iterable[Any] | os.PathLike[str], query: str, *, checkpoint: PathArg,
                      max_concurrent: int | None, schema: Any, subscribers: list[Subscriber],
                      control: RunControl, executor: str = "local", admit: Admit | None = None) -> MapResult:
    """One completion per context, under one limiter, trace and budget; each answer committed as it completes.

    ``admit``: an async context each item's completion runs inside (a server's run slot).
    """
    if executor not in EXECUTORS:
        raise ConfigError(f"executor={executor!r} is not available; choose one of {EXECUTORS}")
    if admit is not None and executor != "local":
        raise ConfigError("admit= applies to executor='local' only")
    if isinstance(contexts, os.PathLike):  # a folder: one completion per document
        if not os.path.isdir(contexts):
            raise ConfigError(f"map_rlm(contexts) takes contexts, or a folder's Path; {os.fspath(contexts)!r} is "
                              "not a folder (for one file, use completion)")
        items: list[Any] = [Path(p) for p in files_in(os.fspath(contexts))]
    else:
        items = list(contexts)
    for item in items:
        load_context(item)  # a bad context fails before any call
    s = engine.settings
    meta = {"kind": "map_rlm", "model": s.model, "sub_model": s.sub_model, "query": query,
            "options": s.endpoint.call_options, "schema": None if schema is None else repr(schema)}
    results: dict[int, RLMResult] = {}
    async with engine.open_run(subscribers, control) as run:
        dispatcher = run.dispatcher

        async def one(i: int, parent: str) -> Done:
            # Each completion has its own usage and budget, as in completion(); they share the trace and limiter.
            own = run.own_dispatcher()
            try:
                async with admit() if admit is not None else contextlib.nullcontext():
                    result = await run.loop(dispatcher=own, parent_span=parent).run(items[i], query, schema=schema)
                results[i] = dataclasses.replace(result, origin=Origin(engine, items[i]))
            finally:
                for name, usage in own.meter.snapshot().items():
                    dispatcher.meter.add(name, usage)
            return result.text, result.usage.total, result.seconds, {"stopped": result.stopped,
                                                                      "iterations": result.iterations}

        ray_work = None
        try:
            if executor == "ray":
                from .ray_executor import RayWork  # Ray loads only for a Ray map

                ray_work = await RayWork.start(engine, dispatcher, items, query, schema, results)
            mapped = await _mapped(run, [(c, query) for c in items], meta, checkpoint,
                                   max_concurrent or DEFAULT_RLM_CONCURRENCY, ray_work or one, stop_on_budget=False,
                                   label=f"map_rlm of {len(items):,} contexts: {query}", model=s.model)
        finally:
            if ray_work is not None:
                ray_work.close()
    shape = AnswerShape(schema) if schema is not None else None
    for i, value in enumerate(mapped):
        if i in results:
            mapped[i] = results[i]
        elif not isinstance(value, FailedCall):
            mapped[i] = _resumed(value, shape)
    return mapped


#: Makes the async context one map item's completion runs inside.
Admit = Callable[[], AbstractAsyncContextManager[object]]
#: One item's answer text, its usage, seconds, and what else to keep in the checkpoint.
Done = tuple[str, Usage, float, dict[str, Any]]
Work = Callable[[int, str], Coroutine[Any, Any, Done]]


async def _mapped(run: Run, items: list[Any], meta: dict[str, Any], checkpoint: PathArg, workers: int, work: Work,
                  *, stop_on_budget: bool, label: str, model: str) -> MapResult:
    """The shared part: skip what the checkpoint has, run the rest in order with ``workers`` at once, commit each."""
    check_int("max_concurrent", workers)
    dispatcher = run.dispatcher
    hashes, store, results, done = open_checkpoint(checkpoint, meta, items)
    run.keep(lambda: map_result(results, done, dispatcher, store))
    if store is not None and any(b.open for b in store.batches()):
        log.warning("rlm: checkpoint %s has provider batches still open; this map sends their items as calls "
                    "(paying twice): rerun with via='batch' to collect them instead", store.path)
    todo = iter([i for i in range(len(items)) if i not in done])
    tracer = dispatcher.tracer
    run_id = tracer.start("run", None, query=label, model=model, depth=0, context=f"{len(items):,} items")
    batch_id = tracer.start("batch", run_id, n=len(items) - len(done), max_concurrent=workers, model=model)
    status = "error"

    async def worker() -> None:
        for i in todo:
            try:
                text, usage, seconds, extra = await work(i, batch_id)
            except (RLMError, TypeError, ValueError) as exc:
                if stop_on_budget and isinstance(exc, BudgetExceeded):
                    raise  # the whole map's budget: stop; a rerun goes on from what is committed
                results[i] = FailedCall(exc)
                if store is not None:
                    store.record(i, hashes[i], answer=None, error=f"{type(exc).__name__}: {exc}")
                continue
            results[i] = text
            if store is not None:
                store.record(i, hashes[i], answer=text, error=None, prompt_tokens=usage.prompt_tokens,
                             completion_tokens=usage.completion_tokens, seconds=seconds, extra=extra)

    try:
        await asyncio.gather(*(worker() for _ in range(min(workers, len(items) - len(done)) or 1)))
        status = "ok"
    except (RLMError, asyncio.CancelledError) as exc:
        status = "budget" if isinstance(exc, BudgetExceeded) else "cancelled" if not isinstance(exc, RLMError) \
            else "error"
        raise
    finally:
        tracer.end("batch", batch_id, run_id, status=status)
        tracer.end("run", run_id, None, status=status, answer=None, iterations=0, fallback=False)
        if store is not None:
            store.close()
    return map_result(results, done, dispatcher, store)


def open_checkpoint(checkpoint: PathArg, meta: dict[str, Any], items: list[Any]) -> tuple[
        list[str], Checkpoint | None, list[Any], dict[int, Row]]:
    """Each item's input hash, the checkpoint (bound to ``meta``), the answers so far in place, and their rows."""
    hashes = [input_hash(item) for item in items]
    store = Checkpoint(checkpoint) if checkpoint is not None else None
    results: list[Any] = [None] * len(items)
    done: dict[int, Row] = {}
    if store is not None:
        try:
            store.bind(meta)
            store.set_items(len(items))
            done = store.done(hashes)
        except BaseException:
            store.close()
            raise
        for i, row in done.items():
            results[i] = row.answer
    return hashes, store, results, done


def map_result(results: list[Any], done: dict[int, Row], dispatcher: Dispatcher,
               store: Checkpoint | None) -> MapResult:
    mapped = MapResult(results)
    mapped.usage = UsageReport(dispatcher.meter.snapshot())
    mapped.resumed = len(done)
    mapped.checkpoint = store.path if store is not None else None
    mapped.trace = Trace(dispatcher.tracer.events)
    return mapped


def _resumed(text: str, shape: AnswerShape | None) -> RLMResult:
    """A completion answered in an earlier run: its answer from the checkpoint (validated again), no steps or trace."""
    value = shape.check(text)[0] if shape is not None else None
    return RLMResult(answer=text if value is None else value, iterations=0, usage=UsageReport(), steps=(),
                     trace=Trace(()), text=text)
