"""What the root reads after each reply: its blocks' output within one budget per turn, and where it stands.

All the blocks of one reply share one output budget (``max_output_chars``): before, the cap
was per block, and a reply of seven blocks that each printed (the RLM paper's B.2 style)
sent back 140,553 characters (26.6k tokens) in one message. Blocks run until one fails, and
the message names the ones that did not run. It opens with "Turn k of N", warns as the last
turns near, and comes with a short form (the head and tail of each block) that replaces it
once the next turn's output arrives (``history.OlderOutputs``). Pure functions.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..repl.preview import fence
from .parsing import mentions_final, truncate_output, unrun_fences
from .prompts import NUDGE_EMPTY, NUDGE_MID_LINE, NUDGE_NO_CODE, NUDGE_TOOL_CALL

#: Characters an earlier turn's output keeps once a newer one has arrived.
SHORT_CHARS = 1_000
#: The last this-many turns each carry a warning that the end is near.
WARN_TURNS = 3
NOTHING_PRINTED = "(nothing was printed: print() what you want to see)"


@dataclass(frozen=True, slots=True)
class Turn:
    """Where a turn stands: its number, the run's turn limit, and the reply's code blocks."""

    n: int
    of: int
    blocks: int


def shares(lengths: list[int], budget: int) -> list[int]:
    """Each block's share of a turn's budget: blocks that fit keep all; the others get equal shares of the rest."""
    if sum(lengths) <= budget:
        return list(lengths)
    share = [0] * len(lengths)
    left = budget
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    for done, i in enumerate(order):
        share[i] = min(lengths[i], left // (len(lengths) - done))
        left -= share[i]
    return share


def _blocks(outputs: list[str], failed: bool, budget: int) -> str:
    """Each block's output, cut to its share of ``budget`` (head and tail kept)."""
    texts = [out or NOTHING_PRINTED for out in outputs]
    limits = shares([len(t) for t in texts], budget)
    cut = [truncate_output(text, limit) for text, limit in zip(texts, limits, strict=True)]
    if len(cut) == 1:
        return fence(cut[0])
    return "\n".join(f"Block {i}{' (failed)' if failed and i == len(cut) else ''}:\n{fence(text)}"
                     for i, text in enumerate(cut, 1))


def _countdown(turn: Turn) -> str:
    left = turn.of - turn.n
    if left > WARN_TURNS or left <= 0:
        return ""
    return (f"{left} turn{'s' if left != 1 else ''} left: put your answer in a variable now and finish with "
            "FINAL_VAR(name) or FINAL(answer) soon.")


def _not_run(outputs: list[str], failed: bool, turn: Turn) -> str:
    ran = len(outputs)
    if not failed or ran >= turn.blocks:
        return ""
    rest = f"Block {ran + 1} was" if ran + 1 == turn.blocks else f"Blocks {ran + 1}-{turn.blocks} were"
    return f"{rest} not run, because block {ran} failed: fix it, then run what you still need."


def turn_feedback(outputs: list[str], *, failed: bool, turn: Turn, budget: int, notes: list[str]) -> tuple[str, str]:
    """The message after one reply that ran code, and its short form for later turns.

    ``outputs``: what each block that ran printed (stdout, stderr, traceback), in order;
    ``failed``: the last of them raised, so the blocks after it did not run.
    """
    total = sum(len(out) for out in outputs)
    over = total > budget
    head = f"Turn {turn.n} of {turn.of}. " + ("Output:" if len(outputs) == 1 else f"Output of {len(outputs)} blocks:")
    tail = [_not_run(outputs, failed, turn),
            f"(A turn shows at most {budget:,} characters of output; this one printed {total:,}: print less, and "
            "keep the rest in variables.)" if over else "",
            *notes, _countdown(turn)]
    message = "\n".join(part for part in (head, _blocks(outputs, failed, budget), *tail) if part)
    if total <= SHORT_CHARS:
        return message, message
    shortened = (f"(Shortened now that newer output came: this turn printed {total:,} characters. "
                 "Print again from your variables what you still need.)")
    short = "\n".join(part for part in (head, _blocks(outputs, failed, SHORT_CHARS), shortened, *notes) if part)
    return message, short


def no_code_feedback(lacked: str, turn: Turn, notes: list[str]) -> str:
    """The message after a reply that ran nothing: what it lacked, and where the run stands."""
    head = f"Turn {turn.n} of {turn.of}." + (f" {lacked}" if lacked else "")
    return "\n".join(part for part in (head, *notes, _countdown(turn)) if part)


def nudge(reply: str, *, tool_calls: bool, noted: bool) -> str:
    """What a reply that ran nothing lacked, as it was: never a claim the reply itself contradicts.

    ``noted``: the turn's notes already say why (a FINAL not taken, a cut reply), so nothing is added.
    """
    if not reply.strip():
        return NUDGE_TOOL_CALL if tool_calls else NUDGE_EMPTY
    if noted:
        return ""
    if mentions_final(reply):
        return NUDGE_MID_LINE
    tags = unrun_fences(reply)
    if "" in tags:
        return "Your last reply's code block has no language tag, so it did not run: open code blocks with ```repl."
    if tags:
        return (f"Your last reply's code block is tagged ```{tags[0]}, which does not run: only ```repl "
                "(or ```python) blocks run.")
    return NUDGE_NO_CODE
