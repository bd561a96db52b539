"""The root loop of one completion: ask the root, run its code, feed back, until FINAL."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import BudgetExceeded, ConfigError, LimitExceeded, LMError
from ..lm.batch import Dispatcher
from ..lm.budget import BudgetReport
from ..repl.base import REPL, ExecResult, load_context
from ..repl.steps import FailedCall, as_text
from ..trace.trace import Trace
from .parsing import find_code_blocks, find_final, truncate_output
from .prompts import (
    ANSWER_NOW,
    NUDGE_EMPTY,
    describe_context,
    first_user_message,
    step_feedback,
    system_prompt,
)
from .result import RLMResult, Step, StopReason, UsageReport


@dataclass(frozen=True, slots=True)
class LoopSettings:
    """The knobs of one root loop (shared by recursive children)."""

    model: str
    sub_model: str
    max_iterations: int = 20
    max_depth: int = 1
    max_output_chars: int = 20_000
    #: Further models root code may name in llm_query/llm_batch(model=...); the root and sub model always.
    models: tuple[str, ...] = ()

    def check_model(self, fn: str, model: str | None) -> str:
        """The model a sub-call uses; root code may not pick one the user did not configure."""
        if model is None:
            return self.sub_model
        if model not in (self.model, self.sub_model, *self.models):
            allowed = ", ".join(repr(m) for m in dict.fromkeys((self.model, self.sub_model, *self.models)))
            raise ValueError(f"{fn}(model={model!r}): root code may only use the configured models ({allowed}); "
                             "the user can allow more with RLM(models=[...])")
        return model


class _Host:
    """What root code reaches through ``llm_query``/``llm_batch``/``rlm_query``.

    ``parent`` is the span of the step that is running, so every sub-call lands
    under it in the trace.
    """

    def __init__(self, run: RootLoop) -> None:
        self._run = run
        self.parent: str | None = None

    async def llm_query(self, prompt: str, model: str | None = None) -> str:
        chosen = self._run.settings.check_model("llm_query", model)
        return _shown(await self._run.dispatcher.query(prompt, model=chosen, parent=self.parent))

    async def llm_batch(
        self, prompts: list[str], max_concurrent: int = 10, model: str | None = None
    ) -> list[str]:
        chosen = self._run.settings.check_model("llm_batch", model)
        results = await self._run.dispatcher.batch(
            prompts, model=chosen, max_concurrent=max_concurrent, parent=self.parent,
        )
        return [_shown(r) for r in results]

    async def budget(self) -> BudgetReport:
        """What the completion has spent against its budget."""
        return self._run.dispatcher.budget.report()

    async def rlm_query(self, query: str, context: Any = None) -> str:
        run = self._run
        if not run.can_recurse:
            prompt = query if context is None else f"{query}\n\n{as_text(context)}"
            return await self.llm_query(prompt)
        child = RootLoop(
            settings=run.settings, dispatcher=run.dispatcher, repl_factory=run.repl_factory,
            depth=run.depth + 1, parent_span=self.parent,
        )
        try:
            answer = await child.answer("" if context is None else context, query)
        except (LMError, LimitExceeded, TypeError, ValueError) as exc:
            return FailedCall(exc)
        return answer


def _shown(value: str | Exception) -> str:
    """A sub-call's answer as root code sees it: a failure is a ``FailedCall`` carrying the error."""
    return FailedCall(value) if isinstance(value, Exception) else value


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
    ) -> None:
        self.settings = settings
        self.dispatcher = dispatcher
        self.repl_factory = repl_factory
        self.depth = depth
        self.parent_span = parent_span
        self.can_recurse = depth + 1 < settings.max_depth
        self._so_far: tuple[list[Step], str, float] | None = None

    def _sub_window(self) -> dict[str, str]:
        """The sub-model's context window for the prompt, when the pricing table knows it."""
        window = self.dispatcher.pricing.context_window(self.settings.sub_model)
        return {"sub_window": f"{window:,} tokens"} if window else {}

    @property
    def root_model(self) -> str:
        """Depth 0 uses the root model; recursive children think with the sub-model."""
        return self.settings.model if self.depth == 0 else self.settings.sub_model

    async def run(self, context: Any, query: str) -> RLMResult:
        """The whole completion: answer, steps, usage, trace."""
        answer, steps, run_id, started, fallback = await self._loop(context, query)
        return self._result(answer, steps, self.dispatcher.tracer, run_id, started, fallback=fallback)

    async def answer(self, context: Any, query: str) -> str:
        """Only the answer: what a recursive child's caller uses (its steps are in the shared trace)."""
        return (await self._loop(context, query))[0]

    async def _loop(self, context: Any, query: str) -> tuple[str, list[Step], str, float, bool]:
        if not isinstance(query, str) or not query.strip():
            raise ConfigError("query must be a non-empty string")
        loaded = load_context(context)
        settings, tracer = self.settings, self.dispatcher.tracer
        description = describe_context(loaded)
        started = time.perf_counter()
        run_id = tracer.start(
            "run", self.parent_span, query=query, model=self.root_model,
            depth=self.depth, context=description.split("\n", 1)[0],
        )
        host = _Host(self)
        repl = self.repl_factory()
        messages: list[dict[str, Any]] = [
            {"role": "system", "content": system_prompt(can_recurse=self.can_recurse, **self._sub_window())},
            {"role": "user", "content": first_user_message(description, query)},
        ]
        steps: list[Step] = []
        self._so_far = (steps, run_id, started)
        answer: str | None = None
        fallback = False
        status = "error"
        try:
            await repl.start(loaded, host)
            for iteration in range(1, settings.max_iterations + 1):
                answer = await self._turn(iteration, run_id, messages, repl, host, steps)
                if answer is not None:
                    break
            else:
                answer = await self._answer_now(run_id, messages, repl)
                fallback = True
            status = "ok"
        except (LMError, LimitExceeded) as exc:
            stopped: StopReason = "budget" if isinstance(exc, BudgetExceeded) else "error"
            status = stopped  # a view says "budget reached", not "failed"
            exc.partial = self._result("", steps, tracer, run_id, started, fallback=False, stopped=stopped)
            raise
        except asyncio.CancelledError:
            status = "cancelled"
            raise
        finally:
            await repl.close()
            tracer.end(
                "run", run_id, self.parent_span, status=status, answer=answer,
                iterations=len(steps), fallback=fallback, seconds=time.perf_counter() - started,
            )
        assert answer is not None
        return answer, steps, run_id, started, fallback

    def _result(
        self, answer: str, steps: list[Step], tracer: Any, run_id: str, started: float, *,
        fallback: bool, stopped: StopReason | None = None,
    ) -> RLMResult:
        return RLMResult(
            answer=answer,
            iterations=len(steps),
            usage=UsageReport(self.dispatcher.meter.snapshot()),
            steps=tuple(steps),
            trace=Trace(tracer.events),
            stopped=stopped or ("max_iterations" if fallback else "final"),
            fallback=fallback,
            seconds=time.perf_counter() - started,
            budget=self.dispatcher.budget.report(),
        )

    def partial_result(self) -> RLMResult | None:
        """The steps, usage and trace of a run stopped before it answered (None if it never started)."""
        if self._so_far is None:
            return None
        steps, run_id, started = self._so_far
        return self._result("", steps, self.dispatcher.tracer, run_id, started, fallback=False, stopped="cancelled")

    async def _turn(
        self, iteration: int, run_id: str, messages: list[dict[str, Any]],
        repl: REPL, host: _Host, steps: list[Step],
    ) -> str | None:
        """One root reply and its code; returns the final answer if the root gave one."""
        tracer = self.dispatcher.tracer
        it_id = tracer.start("iteration", run_id, n=iteration)
        completion = await self.dispatcher.complete(messages, model=self.root_model, parent=it_id, role="root")
        reply = completion.text or ""
        blocks = find_code_blocks(reply)
        results: list[ExecResult] = []
        final: str | None = None
        for code in blocks:
            exec_id = tracer.start("exec", it_id, code=code)
            host.parent = exec_id
            result = await repl.execute(code)
            tracer.end(
                "exec", exec_id, it_id, stdout=result.stdout, stderr=result.stderr,
                error=result.error, seconds=result.seconds, final=result.final,
            )
            results.append(result)
            if result.final is not None:
                final = result.final
                break
        notes: list[str] = []
        if final is None:
            final, note = await self._text_final(reply, repl)
            if note:
                notes.append(note)
        steps.append(Step(iteration, reply, tuple(blocks), tuple(results)))
        tracer.end("iteration", it_id, run_id, blocks=len(blocks), final=final is not None)
        if final is not None:
            return final
        if reply.strip():
            messages.append({"role": "assistant", "content": reply})
        if not reply.strip():
            feedback = NUDGE_EMPTY
        else:
            outputs = [truncate_output(r.feedback(), self.settings.max_output_chars) for r in results]
            feedback = step_feedback(outputs)
        messages.append({"role": "user", "content": "\n\n".join([feedback, *notes])})
        return None

    async def _text_final(self, reply: str, repl: REPL) -> tuple[str | None, str | None]:
        """FINAL(...) / FINAL_VAR(...) written in the reply's text, after its code ran."""
        found = find_final(reply)
        if found is None:
            return None, None
        if found.kind == "text":
            return found.value, None
        try:
            return await repl.get_variable(found.value), None
        except KeyError:
            return None, (
                f"FINAL_VAR({found.value}) failed: there is no variable named {found.value!r} "
                "in the REPL. Assign it in a ```repl block first, or use FINAL(answer)."
            )

    async def _answer_now(self, run_id: str, messages: list[dict[str, Any]], repl: REPL) -> str:
        """Out of iterations: one last root call that must answer without code."""
        tracer = self.dispatcher.tracer
        it_id = tracer.start("iteration", run_id, n=self.settings.max_iterations + 1, fallback=True)
        messages.append({"role": "user", "content": ANSWER_NOW})
        completion = await self.dispatcher.complete(messages, model=self.root_model, parent=it_id, role="root")
        answer, _ = await self._text_final(completion.text or "", repl)
        tracer.end("iteration", it_id, run_id, blocks=0, final=answer is not None)
        return answer if answer is not None else (completion.text or "").strip()
