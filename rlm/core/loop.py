"""The root loop of one completion: ask the root, run its code, feed back, until FINAL."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import AnswerError, BudgetExceeded, ConfigError, ForkError, RLMError
from ..lm.dispatcher import Dispatcher
from ..repl.base import REPL, SUPPORTED_CONTEXT, load_context
from ..repl.document_context import DocumentContext
from ..trace.trace import Trace
from .answers import AnswerShape, forced_value
from .conversation import Conversation, follow_up_message
from .estimate import estimate, glance_or_none, glance_tokens
from .finals import failed_answer
from .fork import Fork
from .host import RunHost, Tree
from .prompts import clean_text, context_view, first_user_message, size_line, system_prompt
from .result import RLMResult, Step, StopReason, UsageReport
from .settings import LoopSettings
from .tools import tools_prompt
from .turns import Turns

log = logging.getLogger("rlm")


@dataclass(frozen=True, slots=True)
class _Ending:
    """How a loop ended, before it is dressed as an ``RLMResult`` (a child needs only the answer)."""

    answer: str
    steps: list[Step]
    run_id: str
    started: float
    fallback: bool
    stopped: StopReason
    error: str | None
    #: The answer as the caller gets it: the validated instance of a typed answer, else the text.
    value: Any = None


@dataclass(slots=True)
class _Answered:
    """What a run has answered so far, filled in as it goes: ``run.end`` reports it however the run stops."""

    answer: str | None = None
    #: The validated instance of a typed answer.
    value: Any = None
    #: How the answer was forced, when the root ran out of turns.
    forced: StopReason | None = None


class RootLoop:
    """Runs one completion at one depth. Children (``rlm_query``) are RootLoops one deeper."""

    def __init__(
        self,
        *,
        settings: LoopSettings,
        dispatcher: Dispatcher,
        repl_factory: Callable[[], REPL],
        depth: int = 0,
        parent_span: str | None = None,
        tree: Tree | None = None,
    ) -> None:
        self.settings = settings
        self.dispatcher = dispatcher
        self.repl_factory = repl_factory
        self.depth = depth
        self.parent_span = parent_span
        self.can_recurse = depth + 1 < settings.max_depth
        self.tree = tree if tree is not None else Tree(settings.max_descendants)
        self._so_far: tuple[list[Step], str, float] | None = None

    def child(self, parent_span: str | None, dispatcher: Dispatcher | None = None) -> RootLoop:
        """A recursive child one deeper, sharing the dispatcher (limiter, budget, cache, trace) and the tree."""
        return RootLoop(settings=self.settings, dispatcher=dispatcher or self.dispatcher,
                        repl_factory=self.repl_factory, depth=self.depth + 1, parent_span=parent_span, tree=self.tree)

    def _sub_window(self) -> dict[str, int]:
        """The sub-model's context window for the prompt, when the pricing table knows it."""
        window = self.dispatcher.pricing.context_window(self.settings.sub_model)
        return {"sub_window": window} if window else {}

    @property
    def root_model(self) -> str:
        """Depth 0 uses the root model; recursive children think with the sub-model."""
        return self.settings.model if self.depth == 0 else self.settings.sub_model

    async def run(
        self, context: Any, query: str, *, conversation: Conversation | None = None, schema: Any = None,
        fork: Fork | None = None,
    ) -> RLMResult:
        """The whole completion: answer, steps, usage, trace.

        ``conversation``: a session's next question. ``fork``: replay a recorded run up to a
        step, run edited code there, and go on live.
        """
        shape = AnswerShape(schema) if schema is not None else None
        end = await self._loop(context, query, conversation, shape, fork)
        return self._result(end.answer, end.steps, end.run_id, end.started, fallback=end.fallback,
                            stopped=end.stopped, error=end.error, value=end.value)

    async def answer(self, context: Any, query: str) -> str:
        """Only the answer: what a recursive child's caller uses (its steps are in the shared trace)."""
        return (await self._loop(context, query, None, None, None)).answer

    async def _open(
        self, loaded: Any, description: str, query: str, host: RunHost, conversation: Conversation | None,
        shape: AnswerShape | None, run_id: str, estimate_it: bool,
    ) -> tuple[REPL, list[dict[str, Any]]]:
        """The REPL and history this question runs in: new ones, or a session's, with the question added.

        Documents are read as the REPL starts, where root code runs; the root then reads
        the description written there, and the trace gets their formats and pages.
        """
        asked = query if shape is None else f"{query}\n\n{shape.prompt()}"
        if conversation is not None and conversation.started:
            repl, messages = conversation.repl, conversation.messages
            await repl.rebind(host, query)
            added = None
            if loaded is not None:
                name = conversation.next_context_name()
                info = await repl.put(name, loaded)
                added = (name, clean_text(info.description) if info is not None else description)
            messages.append({"role": "user", "content": follow_up_message(asked, len(conversation.answers), added)})
            return repl, messages
        repl = self.repl_factory() if conversation is None else conversation.repl
        info = await repl.start(loaded, host, query)
        if info is not None:  # documents, read where root code runs: their own description, and its size
            first, _, rest = clean_text(info.description).partition("\n")
            description = "\n".join(part for part in (first, size_line(info.tokens), rest) if part)
            self.dispatcher.tracer.emit("run.context", run_id, run_id, description=first, **info.summary)
            if estimate_it:
                await self._estimate(loaded, description, query, run_id, info.tokens, info.scans)
        system = system_prompt(can_recurse=self.can_recurse, template=self.settings.prompt, **self._sub_window(),
                               output_chars=self.settings.max_output_chars)
        messages = [
            {"role": "system", "content": system + tools_prompt(self.settings.tools)},
            {"role": "user", "content": first_user_message(description, asked, self.settings.max_iterations)},
        ]
        if conversation is not None:
            conversation.messages[:] = messages
            conversation.started = True
            messages = conversation.messages
        return repl, messages

    async def _read(
        self, context: Any, query: str, conversation: Conversation | None,
    ) -> tuple[Any, int | None, str, bool]:
        """The context loaded, its tokens at a glance, what the root is told of it, whether that is all of it.

        A bad context fails here, before the run starts (in a thread: a directory is read
        here); a session's later question may bring none.
        """
        if not isinstance(query, str) or not query.strip():
            raise ConfigError("query must be a non-empty string")
        if context is None and conversation is None:  # a session may start with none; a completion may not
            raise TypeError(f'context is None; pass what the root should read ({SUPPORTED_CONTEXT}), or "" for none')
        follow_up = conversation is not None and conversation.started
        loaded = None if context is None and follow_up else await asyncio.to_thread(
            load_context, "" if context is None else context)
        tokens = None if loaded is None else await asyncio.to_thread(glance_or_none, loaded, self.settings.sub_model)
        description, whole = context_view(loaded, tokens) if loaded is not None else ("", True)
        return loaded, tokens, clean_text(description), whole

    async def _loop(
        self, context: Any, query: str, conversation: Conversation | None, shape: AnswerShape | None,
        fork: Fork | None,
    ) -> _Ending:
        loaded, tokens, description, whole = await self._read(context, query, conversation)
        # A FINAL before any code ran, over a context the root has not seen whole, is questioned once.
        doubt_first = not (conversation is not None and conversation.started) and not whole and fork is None
        tracer = self.dispatcher.tracer
        started = time.perf_counter()
        run_id = tracer.start(
            "run", self.parent_span, query=query, model=self.root_model,
            depth=self.depth, context=description.split("\n", 1)[0],
        )
        host = RunHost(self)
        steps: list[Step] = []
        self._so_far = (steps, run_id, started)
        got = _Answered()
        status = "error"
        repl: REPL | None = None
        stopped_by: BaseException | None = None
        try:  # from here on the run ends with run.end, whatever stops it (a Stop during the estimate too)
            estimate_it = loaded is not None and self.depth == 0 and fork is None
            if estimate_it and not isinstance(loaded, DocumentContext):  # documents: once read, in _open
                await self._estimate(loaded, description, query, run_id, tokens)
            repl, messages = await self._open(loaded, description, query, host, conversation, shape, run_id,
                                              estimate_it)
            turns = Turns(self.dispatcher, self.settings, self.root_model, run_id, repl, messages, steps,
                          doubt_first=doubt_first)
            answer = await self._answered(turns, host, shape, fork, got)
            # A view must not show an error as an answer, or a cut answer as a whole one.
            forced = got.forced
            status = "failed_call" if failed_answer(answer) else forced if forced in ("cut_off", "fallback") else "ok"
            if conversation is not None:
                conversation.answers.append(shape.plain(got.value) if shape is not None and got.value is not None
                                            else answer)
                await repl.put("answers", list(conversation.answers))
        except (RLMError, KeyboardInterrupt, asyncio.CancelledError) as exc:
            # Every way a run stops keeps what was done: steps, usage, trace.
            stopped: StopReason = "budget" if isinstance(exc, BudgetExceeded) else "error"
            if not isinstance(exc, RLMError):
                stopped = "cancelled"
            status = stopped  # a view says "budget reached", not "failed"
            text = exc.text if isinstance(exc, AnswerError) else ""
            exc.partial = self._result(text, steps, run_id, started, fallback=False, stopped=stopped)  # type: ignore[union-attr]
            stopped_by = exc
            raise
        finally:
            if repl is not None and conversation is None:
                await repl.close()
            tracer.end(
                "run", run_id, self.parent_span, status=status, answer=got.answer,
                iterations=len(steps), fallback=got.forced is not None, seconds=time.perf_counter() - started,
            )
            if stopped_by is not None:  # made again after run.end, so its trace says how the run ended
                stopped_by.partial = self._result(text, steps, run_id, started, fallback=False,  # type: ignore[attr-defined]
                                                  stopped=stopped)
        error = failed_answer(answer)
        reason: StopReason = "failed_call" if error else got.forced or "final"
        return _Ending(answer, steps, run_id, started, got.forced is not None, reason, error,
                       got.value if shape else answer)

    async def _answered(
        self, turns: Turns, host: RunHost, shape: AnswerShape | None, fork: Fork | None, got: _Answered,
    ) -> str:
        """Turns until the root answers, in the schema if one was given (one corrective round), or is out of turns.

        ``got`` holds the answer as it stands at every moment, so a run stopped on the way reports it.
        """
        iteration, limit, corrected = 0, self.settings.max_iterations, False
        if fork is not None:
            iteration, got.answer = await self._replay(fork, turns, host)
        while True:
            if got.answer is None:
                if iteration >= limit:
                    got.answer, got.forced = await turns.answer_now(iteration)
                    got.value = forced_value(shape, got.answer, got.forced)
                    return got.answer
                iteration += 1
                got.answer = await turns.turn(iteration, host)
                if got.answer is None:
                    continue
            if shape is None:
                return got.answer
            got.value, problem = shape.check(got.answer)
            if problem is None:
                return got.answer
            if corrected:
                raise AnswerError(f"the answer does not match the {shape.name} schema after one correction: "
                                  f"{problem[:300]}", text=got.answer, problem=problem)
            corrected, limit = True, limit + 1  # one corrective round, beyond max_iterations
            turns.messages.append({"role": "user", "content": shape.correction(problem)})
            got.answer = None

    def _result(
        self, answer: str, steps: list[Step], run_id: str, started: float, *,
        fallback: bool, stopped: StopReason | None = None, error: str | None = None, value: Any = None,
    ) -> RLMResult:
        return RLMResult(
            answer=answer if value is None else value,
            text=answer,
            iterations=len(steps),
            usage=UsageReport(self.dispatcher.meter.snapshot()),
            steps=tuple(steps),
            trace=Trace(self.dispatcher.tracer.events),
            stopped=stopped or ("max_iterations" if fallback else "final"),
            fallback=fallback,
            seconds=time.perf_counter() - started,
            budget=self.dispatcher.budget.report(),
            error=error,
        )

    def partial_result(self) -> RLMResult | None:
        """The steps, usage and trace of a run stopped before it answered (None if it never started)."""
        if self._so_far is None:
            return None
        steps, run_id, started = self._so_far
        return self._result("", steps, run_id, started, fallback=False, stopped="cancelled")

    async def _estimate(self, loaded: Any, description: str, query: str, run_id: str, tokens: int | None,
                        images: list[tuple[int, int]] | None = None) -> None:
        """A ``run.estimate`` event, so the view shows what the run is likely to cost as it starts.

        ``tokens``, ``images``: of documents, as counted where they were read (the pixels of each page
        without text, which the root may look at).
        """
        settings, pricing = self.settings, self.dispatcher.pricing
        try:
            found = await asyncio.to_thread(
                lambda: estimate(loaded, query, model=settings.model, sub_model=settings.sub_model, pricing=pricing,
                                 max_iterations=settings.max_iterations, can_recurse=settings.max_depth > 1,
                                 tokens=glance_tokens(loaded, settings.sub_model) if tokens is None else tokens,
                                 description=description, images=images or ()))
        except Exception:
            log.debug("rlm: no estimate for this run", exc_info=True)
            return
        cost = list(found.cost_usd) if found.cost_usd is not None else None  # JSON-like, as a log reads back
        self.dispatcher.tracer.emit("run.estimate", run_id, run_id, tokens=found.tokens,
                                    sub_calls=list(found.sub_calls), total_tokens=list(found.total_tokens),
                                    cost_usd=cost)

    async def _replay(self, fork: Fork, turns: Turns, host: RunHost) -> tuple[int, str | None]:
        """A fork's steps 1..k-1 from the record (sub-calls answered from it), then its edited step k, live."""
        record, repl = fork.record, turns.repl
        self.dispatcher.tracer.emit("run.fork", turns.run_id, turns.run_id, origin=record.run_id, at=fork.at,
                                    origin_log=record.path)
        replaying = RunHost(self, fork.dispatcher)
        await repl.rebind(replaying, record.query)
        for turn in record.turns[: fork.at - 1]:
            answer = await turns.turn(turn.n, replaying, given=turn.reply)
            if fork.client.misses:
                raise ForkError(f"replaying step {turn.n} asked for a call the record does not hold (its prompt "
                                f"starts {fork.client.misses[0][:120]!r}): was the context or the code different?")
            if answer is not None:
                raise ForkError(f"replayed, step {turn.n} answered at once; fork at step {turn.n} or earlier")
        await repl.rebind(host, record.query)
        answer = await turns.turn(fork.at, host, given=f"```repl\n{fork.code}\n```", given_as="edited")
        return fork.at, answer
