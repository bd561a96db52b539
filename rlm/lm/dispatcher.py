"""Every model call of a run goes through a ``Dispatcher``: one limiter, usage, trace.

Only the HTTP request itself holds a limiter slot, never a batch or a recursive
child waiting on its own calls, so nested batches cannot deadlock the limiter.

Root calls stream when the client can (``streams``) and ``stream`` is on: their text
goes out as ``call.delta`` events while it arrives, so a person watching sees the root
think. Sub-calls never stream: nobody reads them as they come, and a batch of hundreds
would flood the trace.
"""

from __future__ import annotations

import asyncio
import functools
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import Any, TypeVar

from ..errors import BudgetExceeded, ConfigError, ContextWindowExceeded, check_int
from ..trace.events import Tracer
from .budget import OUTPUT_CAP_KEYS, BudgetLedger
from .cache import Cache, cache_key
from .client import LMClient
from .endpoint import MAX_OUTPUT_TOKENS
from .guard import check_window
from .hedge import Hedge, Hedger
from .limiter import AdaptiveLimiter
from .pricing import Pricing
from .record import prompt_fields, reply_fields
from .retry import RetryPolicy, call_with_retries
from .tokens import count_message_tokens, message_chars
from .types import Completion, Message, Usage, UsageMeter
from .vision import CallImages, Image, Thumbs, keyed, refused_as_typed, total_tokens, user_message

T = TypeVar("T")


#: Prompts longer than this are counted on a worker thread. The tokenizer holds the GIL, but
#: for one block of text at a time (``counter.BLOCK_CHARS``), so the calls in flight on the
#: runtime loop run between blocks instead of waiting for a whole 100k-token prompt.
OFF_LOOP_CHARS = 32_000
#: A budget deadline that fires this close to ``max_time_s`` is the budget's, not a stray timeout.
_DEADLINE_SLACK_S = 0.05
#: At most one ``call.delta`` event per call in this many seconds: a 2,000-token reply is a few dozen events.
DELTA_INTERVAL_S = 0.05


async def _off_loop_if_big(messages: list[Message], fn: Callable[..., T], *args: Any) -> T:
    if message_chars(messages) > OFF_LOOP_CHARS:
        return await asyncio.to_thread(fn, *args)
    return fn(*args)


_SURROGATE = re.compile("[\ud800-\udfff]")


def _without_lone_surrogates(messages: list[Message]) -> list[Message]:
    """A lone surrogate (from a str context or root code) cannot be encoded as UTF-8: send U+FFFD instead."""
    if not any(isinstance(m.get("content"), str) and _SURROGATE.search(m["content"]) for m in messages):
        return messages
    return [{**m, "content": _SURROGATE.sub("\ufffd", m["content"])} if isinstance(m.get("content"), str) else m
            for m in messages]


class _Deltas:
    """Pieces of one streamed reply, coalesced into ``call.delta`` events at most every ``DELTA_INTERVAL_S``.

    Text that arrives within the interval waits on a timer, so a reply that pauses is
    still shown up to its last piece; ``flush`` sends the rest when the reply ends.
    """

    def __init__(self, tracer: Tracer, call_id: str, parent: str | None) -> None:
        self._tracer, self._call_id, self._parent = tracer, call_id, parent
        self._pending: list[str] = []
        self._last = -DELTA_INTERVAL_S
        self._timer: asyncio.TimerHandle | None = None

    def add(self, text: str) -> None:
        self._pending.append(text)
        if self._timer is not None:
            return
        wait = self._last + DELTA_INTERVAL_S - time.monotonic()
        if wait <= 0:
            self.flush()
        else:
            self._timer = asyncio.get_running_loop().call_later(wait, self.flush)

    def flush(self) -> None:
        self.drop_timer()
        if self._pending:
            text, self._pending = "".join(self._pending), []
            self._last = time.monotonic()
            self._tracer.emit("call.delta", self._call_id, self._parent, text=text)

    def drop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


def request_tokens(prompt_chars: int, options: dict[str, Any]) -> float:
    """A request's size for a TPM cap before it is sent: its prompt (about 4 characters a token) and reply cap."""
    return prompt_chars / 4 + next((options[k] for k in OUTPUT_CAP_KEYS if isinstance(options.get(k), int)), 0)


class Dispatcher:
    """Sends model calls for one run under the RLM's shared limiter.

    ``limiter`` is shared by every batch, ``llm_query`` and recursive child of an
    RLM, so total concurrency never exceeds it however the calls are nested.
    ``stream=False`` sends root calls whole too (``Endpoint(stream=False)``).
    ``hedge`` re-sends a batch's stragglers (``rlm.lm.hedge``).
    """

    def __init__(
        self,
        client: LMClient,
        *,
        limiter: AdaptiveLimiter,
        tracer: Tracer,
        meter: UsageMeter | None = None,
        call_options: dict[str, Any] | None = None,
        pricing: Pricing | None = None,
        budget: BudgetLedger | None = None,
        cache: Cache | None = None,
        retry: RetryPolicy | None = None,
        sub_client: LMClient | None = None,
        stream: bool = True,
        hedge: Hedge | None = None,
    ) -> None:
        self.client = client
        self.hedge = hedge
        self.stream = stream
        self.sub_client = sub_client
        self.limiter = limiter
        self.retry = retry if retry is not None else RetryPolicy()
        self.tracer = tracer
        self.meter = meter if meter is not None else UsageMeter()
        self.call_options = dict(call_options or {})
        self.pricing = pricing if pricing is not None else Pricing()
        self.budget = budget if budget is not None else BudgetLedger(None, self.pricing)
        self.cache = cache
        #: Which images this run's trace has carried whole (``rlm.lm.vision``).
        self.thumbs = Thumbs()

    async def complete(
        self, messages: list[Message], *, model: str, parent: str | None, role: str = "sub", hedge: bool = False,
        images: Sequence[Image] = (), detail: str | None = None,
    ) -> Completion:
        """One call: window guard, cache, budget reservation, then the limited send.

        Raises ``ContextWindowExceeded`` or ``BudgetExceeded`` (the call is not sent)
        and ``LMError`` once retries are spent. A ``hedge`` duplicates a call in flight,
        so it must not wait on that call's cache entry; its answer fills the entry.
        ``images``: the ones ``messages`` carry as ``image_url`` parts, in order
        (``rlm.lm.vision``): their tokens are reserved, the cache keys them by hash.
        """
        messages = _without_lone_surrogates(messages)
        seen = CallImages(total_tokens(images, model, detail), self.thumbs.fields(images, model, detail))
        try:
            prompt_tokens = await _off_loop_if_big(messages, check_window, messages, model, self.pricing,
                                                   seen.tokens)
        except ContextWindowExceeded as exc:
            self._unsent(model, role, parent, "refused", messages, seen, error=f"{type(exc).__name__}: {exc}",
                         prompt_tokens=exc.tokens)
            raise
        if self.cache is None:
            return await self._budgeted(messages, model, parent, role, prompt_tokens, seen, hedge)
        key = cache_key(model, keyed(messages, images) if images else messages, self.call_options)
        if hedge:
            completion = await self._budgeted(messages, model, parent, role, prompt_tokens, seen, hedge)
            self.cache.put(key, completion)
            return completion
        hit = self.cache.get(key)
        if hit is None:
            hit, shared = await self.cache.once(
                key, lambda: self._budgeted(messages, model, parent, role, prompt_tokens, seen)
            )
            if not shared:
                return hit
        self.meter.add(model, Usage(cached_calls=1))
        self._unsent(model, role, parent, "ok", messages, seen, cached=True, response_chars=len(hit.text),
                     **reply_fields(hit.text))
        return hit

    async def _budgeted(
        self, messages: list[Message], model: str, parent: str | None, role: str, prompt_tokens: int | None,
        seen: CallImages, hedge: bool = False,
    ) -> Completion:
        """Reserve budget, send, then settle the reservation with what the call used.

        With a token or dollar limit and no reply cap in ``call_options``, the request
        carries the reserved reply allowance as its cap, so no reply can outgrow it.
        """
        ledger = self.budget
        if prompt_tokens is None and ledger.needs_prompt_tokens:
            text_tokens = await _off_loop_if_big(messages, count_message_tokens, messages, model)
            prompt_tokens = text_tokens + seen.tokens
        requested = ledger.requested_cap(self.call_options)
        try:
            reservation = await ledger.reserve(model, prompt_tokens or 0, requested)
        except (BudgetExceeded, ConfigError) as exc:
            self._unsent(model, role, parent, "refused", messages, seen, error=f"{type(exc).__name__}: {exc}")
            raise
        # The neutral name: each client sends it as its endpoint's own (max_completion_tokens, max_tokens).
        cap = (
            {MAX_OUTPUT_TOKENS: reservation.reply_tokens}
            if ledger.needs_prompt_tokens and requested is None
            else None
        )
        left = ledger.time_left()
        send = self._send(messages, model=model, parent=parent, role=role, extra=cap, hedge=hedge, seen=seen)
        try:
            completion = await (send if left is None else asyncio.wait_for(send, max(left, 0.0)))
        except asyncio.TimeoutError:
            ledger.release(reservation)
            remaining = ledger.time_left()
            if remaining is not None and remaining <= _DEADLINE_SLACK_S:
                raise ledger.exceed("max_time_s") from None
            raise
        except BaseException:
            ledger.release(reservation)
            raise
        ledger.settle(reservation, completion.usage)
        return completion

    def _unsent(self, model: str, role: str, parent: str | None, status: str, messages: list[Message],
                seen: CallImages, **data: Any) -> None:
        """A call span for an answer that needed no request (cache) or was refused before sending."""
        call_id = self.tracer.start("call", parent, model=model, role=role, sent=False, **prompt_fields(messages),
                                    **seen.fields)
        self.tracer.end("call", call_id, parent, status=status, seconds=0.0, **data)

    def _priced(self, model: str, completion: Completion) -> Completion:
        usage = completion.usage
        cost = self.pricing.cost(model, usage, cached_prompt_tokens=usage.cached_prompt_tokens)
        if cost is None:
            return completion
        return replace(completion, usage=replace(usage, cost_usd=cost))

    async def _send(
        self, messages: list[Message], *, model: str, parent: str | None, role: str = "sub",
        extra: dict[str, Any] | None = None, hedge: bool = False, seen: CallImages | None = None,
    ) -> Completion:
        """One traced, limited, retried, metered request; raises ``LMError`` once retries are spent.

        Each attempt holds a limiter slot only while its request is out; backing off
        between attempts holds nothing. The span opens when the first attempt starts.
        """
        client = self.sub_client if self.sub_client is not None and role != "root" else self.client
        options = self.call_options if extra is None else {**self.call_options, **extra}
        seen = seen if seen is not None else CallImages()
        prompt_chars = message_chars(messages)
        tokens = request_tokens(prompt_chars, options) + seen.tokens
        call_id: str | None = None
        started = 0.0

        async def attempt() -> Completion:
            nonlocal call_id, started
            async with self.limiter.slot(tokens) as slot:
                if call_id is None:
                    call_id = self.tracer.start("call", parent, model=model, role=role, prompt_chars=prompt_chars,
                                                **({"hedge": True} if hedge else {}), **prompt_fields(messages),
                                                **seen.fields)
                    started = time.perf_counter()
                # Decided per attempt: a client stops streaming once its endpoint refuses to.
                if self.stream and role == "root" and getattr(client, "streams", False) is True:
                    deltas = _Deltas(self.tracer, call_id, parent)
                    try:
                        completion = await client.complete(messages, model=model, on_delta=deltas.add, **options)
                    finally:
                        deltas.drop_timer()
                    deltas.flush()
                else:
                    completion = await refused_as_typed(client.complete(messages, model=model, **options),
                                                         model, bool(seen.fields))
                slot.used(completion.usage.total_tokens)
                if completion.quota_wait is not None:
                    self.limiter.pause(completion.quota_wait)  # before the 429s, not after them
                return completion

        def on_retry(n: int, exc: BaseException, wait: float) -> None:
            self.tracer.emit(
                "call.retry", call_id or "", parent, attempt=n, error=f"{type(exc).__name__}: {exc}", wait=wait
            )

        try:
            completion, attempts = await call_with_retries(attempt, self.retry, on_retry)
        except asyncio.CancelledError:
            if call_id is not None:
                self.tracer.end("call", call_id, parent, status="cancelled", seconds=time.perf_counter() - started)
            raise
        except Exception as exc:
            if call_id is not None:
                self.tracer.end(
                    "call", call_id, parent, status="error", error=f"{type(exc).__name__}: {exc}",
                    seconds=time.perf_counter() - started,
                )
            raise
        completion = self._priced(model, completion)
        self.meter.add(model, completion.usage)
        self.tracer.end(
            "call", call_id or "", parent, status="ok", seconds=time.perf_counter() - started, attempts=attempts,
            prompt_tokens=completion.usage.prompt_tokens,
            completion_tokens=completion.usage.completion_tokens,
            cached_prompt_tokens=completion.usage.cached_prompt_tokens,
            cost_usd=completion.usage.cost_usd,
            response_chars=len(completion.text),
            finish_reason=completion.finish_reason,
            **reply_fields(completion.text),
        )
        return completion

    async def query(
        self, prompt: str, *, model: str, parent: str | None, hedge: bool = False,
        images: Sequence[Image] | Exception = (), detail: str | None = None,
    ) -> str | Exception:
        """A sub-call that never raises for a model failure: the exception comes back as the value.

        The REPL layer shows it to root code as a ``FailedCall``; the model layer knows
        nothing of root code. ``images`` go with the prompt as content parts; an exception
        in their place (an item whose images were refused) is the answer, and the trace
        shows the call as refused, unsent.
        """
        if isinstance(images, Exception):
            message = {"role": "user", "content": prompt}
            self._unsent(model, "sub", parent, "error", [message], CallImages(),
                         error=f"{type(images).__name__}: {images}")
            return images
        try:
            message = user_message(_SURROGATE.sub("\ufffd", prompt) if images else prompt, images, detail)
            completion = await self.complete([message], model=model, parent=parent, hedge=hedge, images=images,
                                             detail=detail)
        except Exception as exc:  # noqa: BLE001 - any failure of one sub-call is that item's value
            return exc
        return completion.text

    async def batch(
        self, prompts: list[str], *, model: str, max_concurrent: int = 10, parent: str | None,
        images: Sequence[Sequence[Image] | Exception] | None = None, detail: str | None = None,
    ) -> list[str | Exception]:
        """Answers in input order; a failed item is its exception, in its place.

        The REPLs check root code's arguments (``rlm.repl.steps.check_batch``) before this.
        ``images``: one entry per prompt (see ``query``).
        """
        items = list(prompts)
        check_int("llm_batch(max_concurrent=...)", max_concurrent)
        if images is not None and len(images) != len(items):
            raise ConfigError(f"llm_batch: {len(images)} lists of images for {len(items)} prompts")
        shown = {"images": sum(len(i) for i in images if not isinstance(i, Exception))} if images else {}
        batch_id = self.tracer.start("batch", parent, n=len(items), max_concurrent=max_concurrent, model=model,
                                     **shown)
        results: list[str | Exception] = [""] * len(items)
        todo = iter(range(len(items)))

        hedger = self._hedger(model, len(items))

        # max_concurrent workers pull items in input order, rather than one task per item
        # behind a semaphore: the garbage collector then has far fewer waiting tasks to scan
        # (docs/performance.md has the measurement). Hedging races each item's requests
        # and lets the workers left without items re-send stragglers.
        def send(i: int, hedge: bool = False) -> Awaitable[str | Exception]:
            return self.query(items[i], model=model, parent=batch_id, hedge=hedge,
                              images=images[i] if images is not None else (), detail=detail)

        async def worker() -> None:
            resend = functools.partial(send, hedge=True)
            for i in todo:
                results[i] = await (send(i) if hedger is None else hedger.run(i, functools.partial(send, i)))
            if hedger is not None:
                await hedger.help(resend)

        # More workers than the limiter lets through would only wait: cap them there, so a
        # max_concurrent of 10**5 costs no more host memory than the RLM's own limit.
        workers = min(max_concurrent, len(items), self.limiter.max_concurrent)
        status = "cancelled"
        try:
            await asyncio.gather(*(worker() for _ in range(workers)))
            status = "ok"
        finally:
            failed = sum(isinstance(r, Exception) for r in results) if status == "ok" else None
            hedged = {"hedged": hedger.sent} if hedger is not None else {}
            self.tracer.end("batch", batch_id, parent, status=status, failed=failed, **hedged)
        return results

    def _hedger(self, model: str, items: int) -> Hedger | None:
        """A batch's hedging state, when hedging is on and the batch is big enough to learn its latency."""
        if self.hedge is None or items <= self.hedge.min_samples:
            return None
        # A duplicate is a request sent: it counts as a call (and ``hedged_calls``), won or lost.
        return Hedger(self.hedge, items, lambda: self.meter.add(model, Usage(calls=1, hedged_calls=1)))

