"""The turns of one run: what the root is sent, its reply's code run, the feedback; and the forced answer.

``RootLoop`` decides when a run starts and ends (the context, the estimate, the answer's
schema, the trace's ``run`` span); a ``Turns`` makes each root call of it: it fits the
history to the root's window, records what is sent (``history.sent``), runs the reply's
blocks in the REPL and writes the next message within one output budget per turn.
"""

from __future__ import annotations

from typing import Any

from ..lm.dispatcher import Dispatcher
from ..lm.tokens import count_message_tokens
from ..repl.base import REPL, ExecResult
from ..repl.steps import restored_note
from .feedback import Turn, no_code_feedback, nudge, turn_feedback
from .finals import TurnEnd, forced_final, held, in_code_final, prose_final, variables
from .history import OlderOutputs, compact
from .host import RunHost
from .parsing import find_code_blocks
from .prompts import ANSWER_RETRY, FIRST_TURN_CHECK, NOTE_CUT, answer_now
from .result import Step, StopReason
from .settings import LoopSettings

Message = dict[str, Any]


class Turns:
    """The root calls of one run at one depth, over its REPL and its messages (appended to in place).

    ``doubt_first``: a FINAL on the first turn, before any code ran, over a context the root
    has not seen whole, is questioned once (read off the preview: checked against ``context``).
    """

    def __init__(
        self, dispatcher: Dispatcher, settings: LoopSettings, model: str, run_id: str, repl: REPL,
        messages: list[Message], steps: list[Step], *, doubt_first: bool,
    ) -> None:
        self.dispatcher = dispatcher
        self.settings = settings
        self.model = model
        self.run_id = run_id
        self.repl = repl
        self.messages = messages
        self.steps = steps
        self.doubt_first = doubt_first
        self.outputs = OlderOutputs()
        self.last_sent: list[Message] = []

    async def turn(self, iteration: int, host: RunHost, given: str | None = None,
                   given_as: str = "replayed") -> str | None:
        """One root reply and its code; returns the final answer if the root gave one.

        ``given``: a reply not asked of the model: a fork's ``"replayed"`` or ``"edited"`` step.
        """
        tracer, messages = self.dispatcher.tracer, self.messages
        given_tag = {"given": given_as} if given is not None else {}
        it_id = tracer.start("iteration", self.run_id, n=iteration, **given_tag)
        tool_calls = 0
        if given is None:
            self.fit(it_id)
            self.sent(it_id)
            completion = await self.dispatcher.complete(messages, model=self.model, parent=it_id, role="root")
            reply, cut, tool_calls = completion.text or "", completion.finish_reason == "length", completion.tool_calls
        else:
            reply, cut = given, False
        blocks = find_code_blocks(reply, closed_only=cut)  # a cut reply's last block is cut too: not run
        results = await self.run_blocks(blocks, host, it_id)
        end = in_code_final(results) or await prose_final(reply, results, cut=cut, repl=self.repl)
        if end.answer is not None and not blocks and iteration == 1 < self.settings.max_iterations \
                and self.doubt_first:
            end = TurnEnd(None, (FIRST_TURN_CHECK,))  # read off the preview: checked once against `context`
        self.doubt_first = False
        notes = list(end.notes)
        for result in results:
            if result.restored:
                notes.append(restored_note(list(result.restored)))
        self.steps.append(Step(iteration, reply, tuple(blocks), tuple(results)))
        tracer.end("iteration", it_id, self.run_id, blocks=len(blocks), final=end.answer is not None, cut=cut)
        if reply.strip():  # a final reply too: a session's next question, or a correction, follows it
            messages.append({"role": "assistant", "content": reply})
        if end.answer is not None:
            return end.answer
        if cut and not notes:
            notes.append(NOTE_CUT)
        # A schema correction is a turn past max_iterations: "turn 21 of 21".
        turn = Turn(iteration, max(iteration, self.settings.max_iterations), len(blocks))
        if results:
            text, short = turn_feedback([r.feedback() for r in results], failed=results[-1].error is not None,
                                        turn=turn, budget=self.settings.max_output_chars, notes=notes)
        else:
            text = short = no_code_feedback(nudge(reply, tool_calls=bool(tool_calls), noted=bool(notes)), turn, notes)
        message = {"role": "user", "content": text}
        messages.append(message)
        self.outputs.add(message, short)
        return None

    async def run_blocks(self, blocks: list[str], host: RunHost, it_id: str) -> list[ExecResult]:
        """Each block in order, until one calls FINAL or fails (the blocks after a failure would build on it)."""
        tracer = self.dispatcher.tracer
        results: list[ExecResult] = []
        for code in blocks:
            exec_id = tracer.start("exec", it_id, code=code)
            host.parent = exec_id
            result = await self.repl.execute(code)
            tracer.end(
                "exec", exec_id, it_id, stdout=result.stdout, stderr=result.stderr,
                error=result.error, seconds=result.seconds, final=result.final,
            )
            results.append(result)
            if result.final is not None or result.error is not None:
                break
        return results

    async def answer_now(self, taken: int) -> tuple[str, StopReason]:
        """Out of turns: the root must answer without code; once more if it wrote code, then what its variables hold.

        The ending: ``"max_iterations"`` (it answered), ``"cut_off"`` (its answer was cut at the
        output cap), ``"fallback"`` (it did not answer: the text lists its variables' values).
        """
        tracer, messages, repl = self.dispatcher.tracer, self.messages, self.repl
        listed = await variables(repl)
        ask = answer_now(listed)
        if messages and messages[-1].get("role") == "user":  # the last turn's output: one message, not two
            messages[-1]["content"] = f"{messages[-1]['content']}\n\n{ask}"
        else:
            messages.append({"role": "user", "content": ask})
        for attempt in (1, 2):
            it_id = tracer.start("iteration", self.run_id, n=taken + attempt, fallback=True)
            self.fit(it_id)
            self.sent(it_id)
            completion = await self.dispatcher.complete(messages, model=self.model, parent=it_id, role="root")
            reply = completion.text or ""
            cut = completion.finish_reason == "length"
            if reply.strip():
                messages.append({"role": "assistant", "content": reply})
            end = await forced_final(reply, repl)
            tracer.end("iteration", it_id, self.run_id, blocks=0, final=end.answer is not None, cut=cut)
            if end.answer is not None:
                return end.answer, "cut_off" if cut else "max_iterations"
            if attempt == 1:
                messages.append({"role": "user", "content": "\n\n".join([ANSWER_RETRY, *end.notes])})
        return await held(repl, listed, taken), "fallback"

    def fit(self, it_id: str) -> None:
        """Compact older turns when the history nears the root's window, and say so in the trace."""
        window = self.dispatcher.pricing.context_window(self.model)
        if window is None:
            return
        model, messages = self.model, self.messages
        shorter = compact(messages, window, lambda m: count_message_tokens(m, model))
        if shorter is not None:
            before = len(messages)
            messages[:] = shorter[0]
            self.dispatcher.tracer.emit("history.compact", it_id, it_id, turns=shorter[1], window=window,
                                        messages_before=before, messages_after=len(messages))

    def sent(self, it_id: str) -> None:
        """``history.sent``: what this root call sends, as the last call's first ``keep`` messages, then ``add``."""
        # Copies: older outputs shrink in place later, and the event must keep what was sent now.
        sent = [dict(m) for m in self.messages]
        before, self.last_sent = self.last_sent, sent
        same = min(len(before), len(sent))
        keep = next((i for i in range(same) if before[i] != sent[i]), same)
        self.dispatcher.tracer.emit("history.sent", it_id, it_id, keep=keep, add=sent[keep:])
