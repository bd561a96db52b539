"""The methods compared on every task, all against one endpoint and counted the same way.

- ``base``: the model reads the context cut to its window (the head is kept), then answers.
- ``summary``: an iterative summary agent reads window-sized parts in order, keeping notes
  of at most a quarter of the window, and answers from its notes.
- ``program``: an RLM whose root writes code but may make no sub-call. Enforced by the
  client: ``NoSubCalls`` refuses every request that is not a root call (a root call
  carries rlm's system prompt; a sub-call is one bare user message), so ``llm_query``,
  ``llm_batch`` and ``rlm_query`` return ``FailedCall``s and nothing reaches the model.
- ``rlm-query``: an RLM told to use ``llm_query`` only, with ``max_concurrent=1`` so that
  even a batch it writes runs one call at a time: a loop of ``llm_query``'s cost and time.
- ``rlm-batch``: the default RLM, ``llm_batch`` in parallel.

The RLM methods use the public ``RLM`` API, with a system prompt of the user's when
given (``Limits(prompt=...)``, ``--prompt``), and write each run's trace log to
``Target.log_dir`` when set (``--log-dir``); the base model and the summary agent call
the endpoint through ``rlm.OpenAIClient`` with rlm's retry policy and price table, so
tokens and dollars are counted as an RLM counts its own.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from ... import RLM, Budget, Endpoint, Limits, OpenAIClient, RLMResult, Trace
from ...errors import ConfigError, LMResponseError, RLMError
from ...lm.client import LMClient
from ...lm.pricing import Pricing
from ...lm.retry import RetryPolicy, call_with_retries
from ...lm.types import Completion, Message
from ...trace.jsonl import JsonlWriter
from . import prompts
from .items import Item, as_text, count

METHODS = ("base", "summary", "program", "rlm-query", "rlm-batch")
#: The methods that run rlm's root loop, and so read its system prompt.
RLM_METHODS = ("program", "rlm-query", "rlm-batch")
#: Tokens a text method leaves free in the window besides its prompt's own words.
RESERVE_TOKENS = 1024


@dataclass(frozen=True)
class Target:
    """The endpoint and models every method runs against, and the limits of one run."""

    model: str
    sub_model: str
    base_url: str | None = None
    api_key: str | None = None
    window: int | None = None
    sandbox: str = "kernel"
    max_iterations: int = 20
    budget_usd: float | None = None
    timeout_s: float = 1800.0
    #: Where each RLM run's trace log goes (None: no logs).
    log_dir: str | None = None


@dataclass
class Outcome:
    """What one method did on one item: its answer and what it cost."""

    answer: str
    seconds: float = 0.0
    calls: int = 0
    sub_calls: int = 0
    failed_sub_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float | None = None
    stopped: str = "final"
    error: str | None = None
    note: str = ""
    #: The run's trace log, when ``Target.log_dir`` is set (RLM methods only).
    log: str | None = None

    def add(self, completion: Completion, cost: float | None) -> None:
        """Count one call of a text method."""
        self.calls += 1
        self.prompt_tokens += completion.usage.prompt_tokens
        self.completion_tokens += completion.usage.completion_tokens
        if cost is not None:
            self.cost_usd = (self.cost_usd or 0.0) + cost


class NoSubCalls:
    """An ``LMClient`` that sends root calls and refuses sub-calls: the program-only baseline.

    A root call always starts with rlm's system prompt; anything else is a sub-call and
    is refused with a 403 that is never retried, so it costs nothing and is counted.
    """

    def __init__(self, inner: LMClient) -> None:
        self.inner = inner
        self.refused = 0

    async def complete(self, messages: list[Message], *, model: str, **opts: Any) -> Completion:
        if not any(m.get("role") == "system" for m in messages):
            self.refused += 1
            raise LMResponseError("sub-calls are disabled in the program-only baseline", status=403, model=model)
        return await self.inner.complete(messages, model=model, **opts)

    async def context_windows(self) -> dict[str, int]:
        ask = getattr(self.inner, "context_windows", None)
        return dict(await ask()) if ask is not None else {}


def calls_of(trace: Trace) -> tuple[int, int]:
    """(sub-calls answered, sub-calls failed) in a run's trace."""
    roles = {e.id: e.data.get("role") for e in trace if e.kind == "call.start"}
    ends = [e for e in trace if e.kind == "call.end" and roles.get(e.id) != "root"]
    return sum(e.data.get("status") == "ok" for e in ends), sum(e.data.get("status") == "error" for e in ends)


def from_result(result: RLMResult, outcome: Outcome) -> Outcome:
    """An RLM run's answer, usage, sub-calls and ending, into ``outcome``."""
    usage = result.usage
    outcome.answer = result.text if isinstance(result.text, str) else str(result.answer)
    outcome.calls, outcome.cost_usd = usage.calls, usage.cost_usd
    outcome.prompt_tokens, outcome.completion_tokens = usage.prompt_tokens, usage.completion_tokens
    outcome.sub_calls, outcome.failed_sub_calls = calls_of(result.trace)
    outcome.stopped, outcome.error = result.stopped, outcome.error or result.error
    return outcome


class Methods:
    """Runs any method on any item against one ``Target``, keeping clients and RLMs between items."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.pricing = Pricing()
        self.retry = RetryPolicy()
        self._client: OpenAIClient | None = None
        self._rlms: dict[tuple[str, str | None], RLM] = {}
        self._window: int | None = target.window

    async def run(self, method: str, item: Item, prompt: str | None = None) -> Outcome:
        """One method on one item; a run that fails or times out is an outcome with its error, never a crash.

        ``prompt``: the RLM methods' system prompt template (None: rlm's own).
        """
        if method not in METHODS:
            raise ConfigError(f"unknown method {method!r}; choose from {', '.join(METHODS)}")
        outcome = Outcome(answer="")
        started = time.perf_counter()
        try:
            await asyncio.wait_for(self._run(method, item, outcome, prompt), self.target.timeout_s)
        except ConfigError:
            raise
        except (RLMError, asyncio.TimeoutError) as exc:
            partial = getattr(exc, "partial", None)
            if isinstance(partial, RLMResult):
                from_result(partial, outcome)
            outcome.answer, outcome.stopped = "", "error"
            outcome.error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        outcome.seconds = time.perf_counter() - started
        return outcome

    async def _run(self, method: str, item: Item, outcome: Outcome, prompt: str | None) -> None:
        if method == "base":
            await self._base(item, outcome)
        elif method == "summary":
            await self._summary(item, outcome)
        else:
            query = item.query + prompts.METHOD_NOTES[method]
            writer = JsonlWriter(self.target.log_dir) if self.target.log_dir is not None else None
            try:
                result = await self._rlm(method, prompt).acompletion(
                    item.context, query, view=False, subscribers=[writer] if writer is not None else None)
            finally:
                if writer is not None:
                    writer.close()
                    outcome.log = str(writer.path) if writer.path is not None else None
            from_result(result, outcome)

    def _rlm(self, method: str, prompt: str | None = None) -> RLM:
        key = (method, prompt)
        if key not in self._rlms:
            t = self.target
            common: dict[str, Any] = {
                "base_url": t.base_url, "api_key": t.api_key, "sandbox": t.sandbox, "max_iterations": t.max_iterations,
                "progress": False, "budget": Budget(max_cost_usd=t.budget_usd) if t.budget_usd is not None else None,
                "limits": Limits(prompt=prompt) if prompt is not None else None,
            }
            if method == "program":
                client = NoSubCalls(OpenAIClient(api_key=t.api_key, base_url=t.base_url))
                self._rlms[key] = RLM(t.model, t.model, endpoint=Endpoint(client=client), **common)
            elif method == "rlm-query":
                self._rlms[key] = RLM(t.model, t.sub_model, max_concurrent=1, **common)
            else:
                self._rlms[key] = RLM(t.model, t.sub_model, **common)
        return self._rlms[key]

    def _text_client(self) -> OpenAIClient:
        if self._client is None:
            self._client = OpenAIClient(api_key=self.target.api_key, base_url=self.target.base_url)
        return self._client

    async def _ask(self, prompt: str, outcome: Outcome) -> str:
        """One call of a text method, retried and priced as an RLM's calls are."""
        client, model = self._text_client(), self.target.model
        messages: list[Message] = [{"role": "user", "content": prompt}]
        completion, _ = await call_with_retries(lambda: client.complete(messages, model=model), self.retry)
        outcome.add(completion, self.pricing.cost(model, completion.usage))
        return completion.text

    async def window(self) -> int:
        """The base model's window: ``Target.window``, else rlm's price table, else the endpoint's /models."""
        if self._window is None:
            model = self.target.model
            self._window = self.pricing.context_window(model)
            if self._window is None:
                self._window = (await self._text_client().context_windows()).get(model)
            if self._window is None:
                raise ConfigError(f"the context window of {model!r} is not known here: pass --window TOKENS")
        return self._window

    async def _base(self, item: Item, outcome: Outcome) -> None:
        text = as_text(item.context)
        room = await self.window() - count(prompts.BASE.format(query=item.query, text="")) - RESERVE_TOKENS
        visible = await asyncio.to_thread(_head, text, room, self.target.model)
        if len(visible) < len(text):
            outcome.note = f"context cut to {room:,} tokens"
        outcome.answer = await self._ask(prompts.BASE.format(query=item.query, text=visible), outcome)

    async def _summary(self, item: Item, outcome: Outcome) -> None:
        from ...repl.helpers import chunk

        window = await self.window()
        notes_cap = window // 4
        frame = prompts.STEP.format(n=9999, i=9999, query=item.query, notes="", part="")
        part_tokens = window - notes_cap - count(frame) - RESERVE_TOKENS
        if part_tokens < 256:
            raise ConfigError(f"a window of {window:,} tokens leaves no room for the summary agent to read")
        parts = await asyncio.to_thread(chunk, as_text(item.context), part_tokens, 0, self.target.model)
        notes, cut = prompts.NO_NOTES, 0
        for i, part in enumerate(parts, 1):
            reply = await self._ask(prompts.STEP.format(n=len(parts), i=i, query=item.query, notes=notes,
                                                        part=part), outcome)
            notes = _head(reply, notes_cap, self.target.model)
            cut += len(notes) < len(reply)
        outcome.note = f"{len(parts)} parts" + (f", notes cut {cut} times" if cut else "")
        outcome.answer = await self._ask(prompts.LAST.format(n=len(parts), query=item.query, notes=notes), outcome)

    async def aclose(self) -> None:
        """Stop the RLMs' kernels and close the text methods' client."""
        for rlm in self._rlms.values():
            await rlm.aclose()
        if self._client is not None:
            await self._client.aclose()


def _head(text: str, max_tokens: int, model: str) -> str:
    """The start of ``text`` within ``max_tokens`` tokens, cut at a line break where one is near."""
    from ...repl.helpers import chunk

    if max_tokens < 1:
        raise ConfigError(f"the window leaves {max_tokens} tokens for the context")
    pieces = chunk(text, max_tokens, 0, model)
    return pieces[0] if pieces else ""
