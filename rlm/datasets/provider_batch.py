"""``rlm.map(prompts, via="batch")``: a map sent through the provider's Batch API, resumable.

Why a mode of its own: a batch costs half (``pricing.BATCH_DISCOUNT``) and may take its
whole completion window (24 h at OpenAI), so it is one upload and a long wait, not a
stream of calls. What makes the wait safe: the checkpoint records each batch the moment
it exists (its input file, then its id), so a run killed while waiting polls the same
batch when rerun, and nothing is paid for twice. Answers are committed one by one as the
output file is read; a failed line (the error file, or a non-200 status) is a
``FailedCall``; the items a batch never answered (it expired, was cancelled or failed)
are recorded as failed, so a rerun sends them again in a new batch.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, ContextWindowExceeded, LMError, RLMError
from ..lm.batches import BatchClient, BatchStatus, parse_line, request_line
from ..lm.guard import check_window
from ..lm.record import prompt_fields, reply_fields
from ..lm.retry import RetryPolicy
from ..lm.types import Completion
from ..repl.steps import FailedCall
from .checkpoint import BatchRecord, Checkpoint
from .maps import MapResult, PathArg, check_prompts, map_meta, map_result, open_checkpoint

if TYPE_CHECKING:
    from ..config import BatchAPI
    from ..engine import Engine
    from ..lm.dispatcher import Dispatcher
    from ..runtime import RunControl
    from ..trace.events import Subscriber

log = logging.getLogger("rlm")

#: Polls in a row that may fail (the endpoint unreachable, a 5xx) before the map stops; a rerun polls again.
MAX_POLL_FAILURES = 10


async def run_batch_map(engine: Engine, prompts: Iterable[str], *, checkpoint: PathArg, model: str | None,
                        via: BatchAPI, subscribers: list[Subscriber], control: RunControl) -> MapResult:
    """Submit what the checkpoint lacks as batches, wait for them and any a killed run left, commit each answer."""
    items = check_prompts(prompts)
    settings = engine.settings
    chosen = settings.check_model("map", model)
    if settings.endpoint.client is not None:
        raise ConfigError("map(via='batch') talks to the endpoint's Batch API itself, so it cannot use "
                          "Endpoint(client=...); pass base_url and api_key instead, or use via='calls'")
    if engine.budget is not None and engine.budget.limited:
        raise ConfigError("a Budget cannot stop a provider batch once it is submitted, so map(via='batch') "
                          "takes none: drop the RLM's budget (check the cost first with rlm.estimate), "
                          "or use via='calls'")
    async with engine.open_run(subscribers, control) as run:
        hashes, store, results, done = open_checkpoint(checkpoint, map_meta(engine, chosen), items)
        dispatcher = run.dispatcher
        run.keep(lambda: map_result(results, done, dispatcher, store))
        client = BatchClient(api_key=settings.api_key, base_url=settings.base_url, timeout=settings.endpoint.timeout)
        work = _BatchRun(dispatcher, client, via, chosen, items, hashes, store, results, set(done))
        try:
            await work.run(work.pending())
        finally:
            if store is not None:
                store.close()
            await client.aclose()
        return map_result(results, done, dispatcher, store)


class _BatchRun:
    """One batch map's state: which items are settled, and the open call span of each item in a batch."""

    def __init__(self, dispatcher: Dispatcher, client: BatchClient, via: BatchAPI, model: str, items: list[str],
                 hashes: list[str], store: Checkpoint | None, results: list[Any], settled: set[int]) -> None:
        self.dispatcher, self.client, self.via, self.model = dispatcher, client, via, model
        self.items, self.hashes, self.store, self.results = items, hashes, store, results
        self.settled = settled
        self.tracer = dispatcher.tracer
        self.calls: dict[int, str] = {}
        self.span = ""

    def pending(self) -> list[BatchRecord]:
        """The checkpoint's batches still open; an item whose input changed since it was sent is refused."""
        records = [r for r in self.store.batches() if r.open] if self.store is not None else []
        for record in records:
            for i, digest in record.items.items():
                if i < len(self.hashes) and digest != self.hashes[i] and i not in self.settled:
                    raise ConfigError(
                        f"checkpoint {self.store.path if self.store else ''}: item {i}'s input changed since it "
                        f"was sent in batch {record.batch_id or record.file_id}; use a new checkpoint file for "
                        "new inputs, or delete this one")
        return records

    async def run(self, pending: list[BatchRecord]) -> None:
        covered = {i for r in pending for i in r.items}
        todo = [i for i in range(len(self.items)) if i not in self.settled and i not in covered]
        waiting = len(covered - self.settled) + len(todo)
        run_id = self.tracer.start("run", None, query=f"map of {len(self.items):,} prompts via the Batch API",
                                   model=self.model, depth=0, context=f"{len(self.items):,} items")
        self.span = self.tracer.start("batch", run_id, n=waiting, max_concurrent=waiting, model=self.model,
                                      via="batch")
        status = "error"
        try:
            for record in pending:  # an item past the end (the map shrank) is still collected, not shown
                self._open(i for i in record.items if i not in self.settled and i < len(self.items))
            todo = await self._fitting(todo)
            batches = [await self._adopt(r) if r.batch_id is None else r for r in pending]
            for chunk in self._chunks(todo):
                batches.append(await self._submit(chunk))
            await self._wait(batches, run_id)
            status = "ok"
        except asyncio.CancelledError:
            status = "cancelled"
            raise
        finally:
            for i, call_id in self.calls.items():
                self.tracer.end("call", call_id, self.span, status="cancelled" if status == "cancelled" else "error",
                                error="the map stopped while the batch was running; a rerun collects it", index=i)
            self.tracer.end("batch", self.span, run_id, status=status)
            self.tracer.end("run", run_id, None, status=status, answer=None, iterations=0, fallback=False)

    def _messages(self, i: int) -> list[dict[str, Any]]:
        return [{"role": "user", "content": self.items[i]}]

    def _open(self, indices: Iterable[int]) -> None:
        """A call span per item in a batch: in flight, as far as the progress line is concerned, until answered."""
        for i in indices:
            self.calls[i] = self.tracer.start("call", self.span, model=self.model, role="sub", via="batch",
                                              prompt_chars=len(self.items[i]), **prompt_fields(self._messages(i)))

    async def _fitting(self, todo: list[int]) -> list[int]:
        """The items whose prompt fits the model's window; the rest fail here, unsent, as with single calls."""
        pricing = self.dispatcher.pricing

        def too_big() -> dict[int, ContextWindowExceeded]:
            refused = {}
            for i in todo:
                try:
                    check_window(self._messages(i), self.model, pricing)
                except ContextWindowExceeded as exc:
                    refused[i] = exc
            return refused

        refused = await asyncio.to_thread(too_big)  # tokenizing big prompts would stall rlm's loop
        for i, exc in refused.items():
            call_id = self.tracer.start("call", self.span, model=self.model, role="sub", sent=False,
                                        **prompt_fields(self._messages(i)))
            self.calls[i] = call_id
            self._settle(i, self.hashes[i], None, exc, None, 0.0)
        return [i for i in todo if i not in refused]

    def _chunks(self, todo: list[int]) -> list[list[tuple[int, bytes]]]:
        """The request lines, cut into batches of at most ``max_requests`` lines and ``max_bytes``."""
        options, base_url = self.dispatcher.call_options, self.client.base_url
        chunks: list[list[tuple[int, bytes]]] = []
        size = 0
        for i in todo:
            line = request_line(f"item-{i}", self.model, self._messages(i), options, base_url)
            if not chunks or len(chunks[-1]) >= self.via.max_requests or size + len(line) > self.via.max_bytes:
                chunks.append([])
                size = 0
            chunks[-1].append((i, line))
            size += len(line)
        return chunks

    async def _submit(self, chunk: list[tuple[int, bytes]]) -> BatchRecord:
        """Upload one batch file and create its batch, recording each in the checkpoint as soon as it exists."""
        record = {i: self.hashes[i] for i, _ in chunk}
        self._open(record)
        file_id = await self.client.upload(b"".join(line for _, line in chunk), f"rlm-map-{len(chunk)}.jsonl")
        if self.store is not None:
            self.store.add_batch(file_id, record)
        batch = await self.client.create(file_id, self.via.window, {"rlm": "map", "items": str(len(chunk))})
        if self.store is not None:
            self.store.set_batch(file_id, batch.id)
        log.info("rlm: batch %s submitted with %d requests", batch.id, len(chunk))
        return BatchRecord(file_id, batch.id, "submitted", record)

    async def _adopt(self, record: BatchRecord) -> BatchRecord:
        """A file a killed run uploaded: the batch it made from it if the provider has one, else a new one."""
        batch = await self.client.find(record.file_id)
        if batch is None:
            batch = await self.client.create(record.file_id, self.via.window, {"rlm": "map"})
        if self.store is not None:
            self.store.set_batch(record.file_id, batch.id)
        return replace(record, batch_id=batch.id, status="submitted")

    async def _wait(self, batches: list[BatchRecord], run_id: str) -> None:
        """Poll every open batch each ``poll_s`` until it finishes, then collect it."""
        waiting = {r.batch_id: r for r in batches if r.batch_id is not None}
        failures = 0
        while waiting:
            for batch_id, record in list(waiting.items()):
                try:
                    status = await self.client.status(batch_id)
                except LMError as exc:
                    failures += 1
                    if not RetryPolicy.retryable(exc) or failures >= MAX_POLL_FAILURES:
                        raise
                    log.warning("rlm: polling batch %s failed (%s); trying again in %gs", batch_id, exc,
                                self.via.poll_s)
                    continue
                failures = 0
                self.tracer.emit("batch.poll", self.span, run_id, batch_id=batch_id, status=status.status,
                                 completed=status.completed, failed=status.failed, total=status.total)
                if status.finished:
                    await self._collect(record, status)
                    del waiting[batch_id]
            if waiting:
                await asyncio.sleep(self.via.poll_s)

    async def _collect(self, record: BatchRecord, status: BatchStatus) -> None:
        """Commit each answered line, then fail what the batch left unanswered, then close it in the checkpoint."""
        index = {f"item-{i}": i for i in record.items}
        for file_id in (status.output_file_id, status.error_file_id):
            for line in await self.client.lines(file_id) if file_id else []:
                result = parse_line(line, self.model)
                i = index.get(result.custom_id)
                if i is not None and i not in self.settled:
                    self._settle(i, record.items[i], result.completion, result.error, status.id, status.created_at)
        why = status.errors or f"it ended {status.status} before answering this item"
        for i, digest in record.items.items():
            if i not in self.settled:
                error = LMError(f"batch {status.id}: {why}; a rerun sends it again", model=self.model)
                self._settle(i, digest, None, error, status.id, status.created_at)
        if self.store is not None:
            self.store.set_batch(record.file_id, status.id, status.status)

    def _settle(self, i: int, digest: str, completion: Completion | None, error: RLMError | None,
                batch_id: str | None, created_at: float) -> None:
        """One item's answer or failure: in its place, committed, metered at the batch price, its call span ended."""
        self.settled.add(i)
        seconds = max(0.0, time.time() - created_at) if created_at else 0.0
        extra = {"batch": batch_id} if batch_id else {}
        call_id = self.calls.pop(i, None)
        if completion is None:
            assert error is not None
            if i < len(self.results):
                self.results[i] = FailedCall(error)
            if self.store is not None:
                self.store.record(i, digest, answer=None, error=f"{type(error).__name__}: {error}", extra=extra)
            if call_id is not None:
                self.tracer.end("call", call_id, self.span, seconds=seconds, error=f"{type(error).__name__}: {error}",
                                status="refused" if isinstance(error, ContextWindowExceeded) else "error")
            return
        usage = completion.usage
        usage = replace(usage, cost_usd=self.dispatcher.pricing.cost(self.model, usage, batch=True))
        self.dispatcher.meter.add(self.model, usage)
        if i < len(self.results):
            self.results[i] = completion.text
        if self.store is not None:
            self.store.record(i, digest, answer=completion.text, error=None, prompt_tokens=usage.prompt_tokens,
                              completion_tokens=usage.completion_tokens, seconds=seconds, extra=extra)
        if call_id is None:
            return
        self.tracer.end("call", call_id, self.span, status="ok", seconds=seconds, via="batch",
                        prompt_tokens=usage.prompt_tokens, completion_tokens=usage.completion_tokens,
                        cost_usd=usage.cost_usd, response_chars=len(completion.text),
                        finish_reason=completion.finish_reason, **reply_fields(completion.text))
