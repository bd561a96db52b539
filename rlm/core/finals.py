"""How a root turn ends: which FINAL counts, and what the root is told when one does not.

A run's answer must never lie. So a FINAL written in the same reply as code counts only
once the root has seen that code's output (a FINAL_VAR, or a FINAL of an expression over
variables the code set, is grounded already), never after that code failed, and never
from a reply cut at its output cap. What models really write is accepted: FINAL of a
variable's name, of an f-string, of text with stray parentheses, and in a reply without
code a FINAL(...) that ends its last line ("So the answer is FINAL(42).").
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

from ..repl.base import REPL, ExecResult
from .parsing import find_code_blocks, find_final, find_trailing_final, mentions_final, prose_of

MID_LINE_BESIDE_CODE = (
    "Your FINAL(...) was not taken: it is inside a line of text, in a reply with code. Once the output above "
    "supports your answer, write FINAL(answer) or FINAL_VAR(name) at the start of its own line."
)
#: The text a failed sub-call shows (``FailedCall``): an answer that starts with it is an error.
FAILED_PREFIX = "[rlm error] "


@dataclass(frozen=True, slots=True)
class TurnEnd:
    """The answer a turn gave (None: the run goes on) and what to tell the root."""

    answer: str | None
    notes: tuple[str, ...] = ()


def in_code_final(results: list[ExecResult]) -> TurnEnd | None:
    """A FINAL called inside code (blocks stop at the first that fails, so none before it failed)."""
    for result in results:
        if result.final is not None:
            return TurnEnd(result.final)
    return None


async def prose_final(reply: str, results: list[ExecResult], *, cut: bool, repl: REPL) -> TurnEnd:
    """A FINAL(...) / FINAL_VAR(...) written in the reply's text, judged against the code it ran."""
    found = find_final(reply)
    if found is None and not find_code_blocks(reply):
        found = find_trailing_final(reply)
    if found is None:
        return TurnEnd(None, (MID_LINE_BESIDE_CODE,) if results and mentions_final(reply) else ())
    if cut:
        return TurnEnd(None, (
            "Your reply was cut off at its output limit, so its FINAL was not taken (it may be incomplete). "
            "Keep replies shorter; put a long answer in a variable and reply FINAL_VAR(name).",))
    if any(r.error for r in results):
        return TurnEnd(None, (
            "Your FINAL was not taken: the code in the same reply failed (the error is above). "
            "Fix the code and look at its output before answering.",))
    if found.kind == "var":
        try:
            return TurnEnd(await repl.get_variable(found.value))
        except KeyError:
            return TurnEnd(None, (
                f"FINAL_VAR({found.value}) failed: there is no variable named {found.value!r} in the REPL. "
                "Assign it in a ```repl block first, or use FINAL(answer).",))
    grounded = await _evaluated(found.value, repl)
    if grounded is not None:
        return TurnEnd(grounded)
    if results:
        return TurnEnd(None, (
            "You wrote FINAL(...) in the same reply as code, before seeing that code's output, so it was not "
            "taken. The output is above: if your answer still holds, reply with FINAL(...) again.",))
    return TurnEnd(found.value)


async def _evaluated(text: str, repl: REPL) -> str | None:
    """The value of a FINAL whose argument is a REPL variable's name or an f-string, else None.

    ``FINAL(summary)`` where ``summary`` is a variable means its value; ``FINAL(f"...{x}")``
    means the formatted text. Anything else is literal text, as written.
    """
    if text.isidentifier():
        try:
            return await repl.get_variable(text)
        except KeyError:
            return None
    try:
        tree = ast.parse(text, mode="eval")
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return None
    if not isinstance(tree.body, ast.JoinedStr):
        return None
    result = await repl.execute(f"FINAL({text})")
    return result.final if result.error is None else None


async def forced_final(reply: str, repl: REPL) -> TurnEnd:
    """The answer of a reply written when code no longer runs: its FINAL, or its words; never its code.

    A reply with code and no FINAL (or with nothing) answers nothing: it is asked again.
    """
    end = await prose_final(reply, [], cut=False, repl=repl)
    words = prose_of(reply)
    if end.answer is None and words and not find_code_blocks(reply) and not mentions_final(reply):
        return TurnEnd(words)
    return end


#: Characters of one listed variable (a name set through ``globals()`` can be any string).
LISTED_CHARS = 200


async def variables(repl: REPL) -> list[str]:
    """The root's variables as ``SHOW_VARS()`` lists them ("name: type (len n)"); none if it cannot say."""
    result = await repl.execute("_rlm_listed = SHOW_VARS()\ndel _rlm_listed")
    return [] if result.error else [line[:LISTED_CHARS] for line in result.stdout.splitlines() if ": " in line]


#: Root code that prints each named variable's value, cut short without building a long repr first.
_HELD = """\
import reprlib as _rlm_reprlib
_rlm_repr = _rlm_reprlib.Repr()
_rlm_repr.maxstring = _rlm_repr.maxother = {chars}
_rlm_repr.maxlist = _rlm_repr.maxtuple = _rlm_repr.maxdict = _rlm_repr.maxset = 20
for _rlm_name in {names!r}:
    print("- " + _rlm_name + " = " + _rlm_repr.repr(globals().get(_rlm_name)))
del _rlm_reprlib, _rlm_repr, _rlm_name
"""
#: Variables shown in a fallback answer, and characters of each.
HELD_VARIABLES, HELD_CHARS = 20, 300


async def held(repl: REPL, listed: list[str], turns: int) -> str:
    """The fallback answer: the root gave none, so what its variables held, for the caller to judge."""
    said = f"The root gave no answer: after its {turns} turns it was asked twice to answer without code, and did not."
    names = [line.split(":", 1)[0].strip() for line in listed[:HELD_VARIABLES]]
    if not names:
        return f"{said} It stored no variables."
    result = await repl.execute(_HELD.format(chars=HELD_CHARS, names=names))
    values = result.stdout.strip() if result.error is None else "\n".join(f"- {line}" for line in listed)
    more = f"\n(and {len(listed) - len(names)} more)" if len(listed) > len(names) else ""
    return f"{said} What its variables held:\n{values}{more}"


def failed_answer(answer: str) -> str | None:
    """The error text when the answer is a failed sub-call's (``FINAL_VAR(x)`` of a ``FailedCall``)."""
    return answer[len(FAILED_PREFIX):] if answer.startswith(FAILED_PREFIX) else None
