"""Scripted policies that prove the harness offline: an oracle that writes the right program, and a wrong one.

``harness_lm(task)`` is a ``ScriptedLM`` on 127.0.0.1 that plays every method's model
for one task family. As the root of an RLM it writes the task's program
(``rlm.bench.quality.programs``), with ``pieces`` read by code alone, by ``llm_query``
or by ``llm_batch`` as the method's note in the query says; as the sub-model it
answers each piece with ``solve_piece``; as the base model and the summary agent's
model it reads what it is shown with the same code. ``wrong=True`` answers falsely at
the end. Nothing here knows an item's expected answer: every score comes from the
real loop, sandbox, clients and scorers, so the oracle scores 1.0 only if they work.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol, cast

from ...testing import ScriptedLM, ScriptedRequest
from . import prompts
from .programs import code, labelled, needles

#: The names the harness model answers to, and the window it reports in /models.
HARNESS_ROOT = "harness-root"
HARNESS_SUB = "harness-sub"
HARNESS_WINDOW = 32_768

_QUERY = re.compile(r"The query:\n(.*?)\n\nStart by exploring", re.S)
_CALLS = {
    "program": "partials = [solve_piece(p, QUERY) for p in pieces(context)]",
    "rlm-query": "partials = [llm_query(sub_prompt(p, QUERY)) for p in pieces(context)]",
    "rlm-batch": "partials = llm_batch([sub_prompt(p, QUERY) for p in pieces(context)], max_concurrent=16)",
}
GAVE_UP = "FINAL(the harness program did not finish)"


class Program(Protocol):
    """What every file in ``rlm.bench.quality.programs`` defines."""

    def pieces(self, context: Any) -> list[str]: ...
    def sub_prompt(self, piece: str, query: str) -> str: ...
    def parse_sub_prompt(self, prompt: str) -> tuple[str, str] | None: ...
    def solve_piece(self, piece: str, query: str) -> str: ...
    def combine(self, partials: list[str], query: str, wrong: bool = False) -> str: ...


MODULES: dict[str, ModuleType] = {"sniah": needles, "oolong": labelled, "pairs": labelled, "codeqa": code}


def program_for(task: str) -> Program:
    """The program of a task family."""
    return cast(Program, MODULES[task])


def method_of(query: str) -> str:
    """Which RLM method a query was written for, from the note the method added."""
    for method, note in prompts.METHOD_NOTES.items():
        if note and query.endswith(note):
            return method
    return "rlm-batch"


def root_program(task: str, query: str, wrong: bool = False) -> str:
    """The root's reply: the task's program as one block, then the driver that ends the run."""
    source = Path(MODULES[task].__file__ or "").read_text(encoding="utf-8")
    return (
        "I will define the program, read every piece of `context` with it, and combine the findings.\n\n"
        f"```repl\n{source}\n```\n\n```repl\nQUERY = {query!r}\n{_CALLS[method_of(query)]}\n"
        "failed = [p for p in partials if isinstance(p, FailedCall)]\n"
        "if failed:\n    raise RuntimeError(f'{len(failed)} sub-calls failed, the first: {failed[0]}')\n"
        f"answer = combine(partials, QUERY, wrong={wrong})\nprint(answer[:500])\nFINAL_VAR('answer')\n```"
    )


def root_reply(task: str, wrong: bool = False) -> Any:
    """The root script: the program on the first turn; if it did not end the run, give up visibly."""

    def reply(request: ScriptedRequest) -> str:
        if any(m.get("role") == "assistant" for m in request.messages):
            return GAVE_UP
        first = next((str(m.get("content") or "") for m in request.messages if m.get("role") == "user"), "")
        match = _QUERY.search(first)
        return root_program(task, match.group(1), wrong) if match else GAVE_UP

    return reply


def _notes(text: str) -> list[str]:
    """The partials kept in a summary agent's notes; notes it cut short are lost, as they would be."""
    try:
        notes = json.loads(text)
    except ValueError:
        return []
    return [str(n) for n in notes] if isinstance(notes, list) else []


def sub_reply(task: str, wrong: bool = False) -> Any:
    """The sub-model, base model and summary model: each prompt read with the task's program."""
    program = program_for(task)

    def reply(request: ScriptedRequest) -> str:
        prompt = request.prompt
        piece = program.parse_sub_prompt(prompt)
        if piece is not None:
            return program.solve_piece(piece[1], piece[0])
        base = prompts.parse_base(prompt)
        if base is not None:
            return program.combine([program.solve_piece(base[1], base[0])], base[0], wrong)
        step = prompts.parse_step(prompt)
        if step is not None:
            query, notes, part = step
            return json.dumps([*_notes(notes), program.solve_piece(part, query)])
        last = prompts.parse_last(prompt)
        if last is not None:
            return program.combine(_notes(last[1]), last[0], wrong)
        return "I cannot tell what this prompt asks."

    return reply


def harness_lm(task: str, *, wrong: bool = False, latency: float = 0.0) -> ScriptedLM:
    """A started ``ScriptedLM`` playing every model of ``task``'s methods (stop it with ``.stop()``)."""
    windows = {HARNESS_ROOT: HARNESS_WINDOW, HARNESS_SUB: HARNESS_WINDOW}
    return ScriptedLM(root=root_reply(task, wrong), sub=sub_reply(task, wrong), latency=latency,
                      windows=windows).start()
