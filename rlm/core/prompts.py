"""The text the root model reads. Pure functions: no I/O, shared by every layer.

The context itself never appears in a prompt: the root sees its type, size and head and
tail, and reads the rest through code. Each rule of the system prompt answers a failure
seen in real runs (docs/architecture.md, "What the root is taught", cites them); every
code example in it compiles (tests/test_prompts.py parses each one).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from ..repl import chunking
from ..repl.preview import HEAD_CHARS, TAIL_CHARS, fence, head_and_tail

#: chunk()'s default piece size, as the first message counts pieces.
CHUNK_TOKENS = 10_000
#: The sub-model's window the prompt assumes when no pricing table or /models says it.
UNKNOWN_SUB_WINDOW = 100_000

SYSTEM_PROMPT = r"""You answer a query about a context too large to read at once. It is loaded in a Python REPL as
the variable `context`: you read it by writing code, and only what your code prints comes back to you.

Write code in ```repl blocks. The blocks of a reply run in order, in one namespace that lasts across turns; if
a block fails, the rest of that reply does not run. A turn shows at most {output_chars:,} characters of output,
and later turns keep only its head and tail: print short summaries and keep the rest in variables.

In the REPL:
- llm_query(prompt) -> str: one question to a sub-model that sees only `prompt`, so put the text it must
  read in it (up to about {sub_window:,} tokens).
- llm_batch(prompts, max_concurrent=10) -> list[str]: many llm_query calls at once, answers in order; far
  faster than a loop. A failed item is a FailedCall (a str starting "[rlm error]"); the others are good.
- llm_query(prompt, images=[png_bytes]): a sub-call can also look at images.
- chunk(text, max_tokens=10000) -> list[str]: split text (a list or dict: one line per item) at line breaks.
- count_tokens(text) -> int; budget(): what the run has spent and has left; SHOW_VARS(): your variables.
{rlm_query_line}- FINAL(answer), FINAL_VAR(name): end the run (see the end).

How to work:
1. Look first: print the size, the structure and a few samples of `context`.
2. Filter with code (str methods, re, json) so that sub-calls read only text that can matter.
3. Size the sub-calls: {low:,}-{high:,} tokens of text per prompt, not a line or a paragraph each, with
   the instruction first and the text after it (shared prefixes are cached); a few to a few hundred
   prompts per llm_batch, never thousands.
4. Check: read some sub-call answers, drop failed ones and ones that answer a different question, and
   confirm your answer against `context` with code.
5. Never retype: slice `context` and pass your variables on; do not copy text from outputs into string
   literals.

Example (filter, batch, check):
```repl
hits = [line for line in context.splitlines() if "refund" in line.lower()]
pieces = chunk("\n".join(hits), max_tokens={piece})
answers = llm_batch(["List each refund's date and amount, one per line.\n\n" + p for p in pieces])
good = [a for a in answers if not isinstance(a, FailedCall)]
print(len(hits), "lines,", len(pieces), "pieces,", len(good), "answers")
print(good[0][:500] if good else "no answers")
```

To finish, write FINAL(your answer) at the start of its own line, outside code, once output you have seen
supports it; or FINAL_VAR(name) to answer with a variable's value, for a long answer or one built in code.
Never answer from the preview alone.
"""

RLM_QUERY_LINE = (
    "- rlm_query(query, context) -> str: a sub-problem with its own context, solved by a recursive RLM\n"
    "  that writes code too; for sub-problems too big for one llm_query.\n"
)

NUDGE_EMPTY = "Your last reply was empty. Write a ```repl block to explore `context`, or FINAL(answer) if you are done."
NUDGE_TOOL_CALL = (
    "Your last reply was a tool call, and there are no tools here. Write Python in a ```repl block "
    "(llm_query, llm_batch and the others are functions in the REPL), or reply with FINAL(answer)."
)
NUDGE_NO_CODE = (
    "Your last reply had no code block and no FINAL(...). Write a ```repl block to make progress, "
    "or answer with FINAL(answer) / FINAL_VAR(name) at the start of a line."
)
NUDGE_MID_LINE = (
    "Your last reply has FINAL(...) inside a line of text, which does not end the run. To answer, write "
    "FINAL(answer) or FINAL_VAR(name) at the start of its own line; to go on, write a ```repl block."
)
NOTE_CUT = (
    "Your reply was cut off at its output limit, so its last unfinished code block was not run. "
    "Write shorter replies: one step at a time, and keep long text in variables."
)
#: The forced answer's first words; the message goes on to list the variables (``answer_now``).
ANSWER_NOW = "You have used all your turns. Answer now, without code: code does not run any more."
ANSWER_RETRY = (
    "Code does not run any more, and your reply had no FINAL. Reply with only FINAL(your best answer), "
    "or FINAL_VAR(name) to answer with a variable's value."
)
FIRST_TURN_CHECK = (
    "Your FINAL was not taken yet: you answered before running any code, and `context` is larger than the "
    "preview you were shown. Check the answer against `context` in a ```repl block (find the passage that "
    "supports it and print it), then answer again."
)

_SURROGATES = re.compile("[\ud800-\udfff]")


def clean_text(text: str) -> str:
    """Text a model can be sent: a lone surrogate (from a str context, say) cannot be UTF-8, so it becomes U+FFFD."""
    return _SURROGATES.sub("\ufffd", text)


def _json(value: Any) -> str:
    try:
        return json.dumps(value, default=repr, ensure_ascii=False)
    except (TypeError, ValueError):  # tuple keys, say
        return repr(value)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else _json(value)


def size_line(tokens: int | None) -> str:
    """The context's size in tokens and in ``chunk()`` pieces, for the line after its type."""
    if tokens is None:
        return ""
    pieces = max(1, math.ceil(tokens / (CHUNK_TOKENS * chunking.FILL)))
    return (f"About {tokens:,} tokens: {pieces:,} piece{'s' if pieces != 1 else ''} of chunk(context) "
            f"at its default {CHUNK_TOKENS:,} tokens.")


def context_view(context: Any, tokens: int | None = None) -> tuple[str, bool]:
    """What the root is told about the context (type, size, head and tail), and whether it was shown whole.

    A file, directory or document says its own (``describe()``); the size line is added to
    every kind after its first line.
    """
    if callable(getattr(context, "describe", None)):
        text, whole = str(context.describe()), False
    elif isinstance(context, str):
        lines = context.count("\n") + 1 if context else 0
        shown, whole = head_and_tail(context)
        plural = "s" if lines != 1 else ""
        text = f"`context` is a str of {len(context):,} characters ({lines:,} line{plural}).\n{shown}"
    elif isinstance(context, (list, tuple)):
        text, whole = _sequence_view(context)
    else:
        text, whole = _dict_view(context)
    first, _, rest = text.partition("\n")
    size = size_line(tokens)
    return "\n".join(part for part in (first, size, rest) if part), whole


def describe_context(context: Any, tokens: int | None = None) -> str:
    """What the root is told about the context (see ``context_view``)."""
    return context_view(context, tokens)[0]


def _sequence_view(context: list[Any] | tuple[Any, ...]) -> tuple[str, bool]:
    sizes = [len(_text(x)) for x in context]
    listed = ", ".join(f"{n:,}" for n in sizes[:10]) + (", ..." if len(sizes) > 10 else "")
    head = (f"`context` is a {type(context).__name__} of {len(sizes):,} items "
            f"({sum(sizes):,} characters in all; item sizes: {listed}).")
    if sum(sizes) + 4 * len(sizes) <= HEAD_CHARS + TAIL_CHARS:
        return f"{head}\nAll of it, as JSON:\n{fence(_json(list(context)), 'json')}", True
    first = f"context[0] starts:\n{fence(_text(context[0])[:HEAD_CHARS])}"
    last = f"\ncontext[-1] ends:\n{fence(_text(context[-1])[-TAIL_CHARS:])}" if len(sizes) > 1 else ""
    return f"{head}\n{first}{last}", False


def _dict_view(context: dict[Any, Any]) -> tuple[str, bool]:
    keys = list(context)
    whole = _json(context)
    shown = ", ".join(repr(k) for k in keys[:20]) + (", ..." if len(keys) > 20 else "")
    head = f"`context` is a dict with {len(keys):,} keys ({len(whole):,} characters as JSON).\nKeys: {shown}"
    if len(whole) <= HEAD_CHARS + TAIL_CHARS:
        return f"{head}\nAll of it, as JSON:\n{fence(whole, 'json')}", True
    if not keys:
        return head, True
    first = f"context[{keys[0]!r}] starts:\n{fence(_text(context[keys[0]])[:HEAD_CHARS])}"
    last = (f"\ncontext[{keys[-1]!r}] ends:\n{fence(_text(context[keys[-1]])[-TAIL_CHARS:])}"
            if len(keys) > 1 else "")
    return f"{head}\n{first}{last}", False


def piece_sizes(sub_window: int) -> tuple[int, int, int]:
    """Tokens of text per sub-call prompt the root is taught: (least, most, the example's piece).

    Most: half the sub-model's window, at most 50,000 (room for the instruction and the reply,
    and long inputs read worse); least: a fifth of that, at most 5,000.
    """
    high = max(500, min(50_000, sub_window // 2) // 500 * 500)
    return min(5_000, high // 5 // 100 * 100), high, min(20_000, high // 2)


def system_prompt(*, can_recurse: bool, sub_window: int | None = None, output_chars: int = 10_000,
                  template: str | None = None) -> str:
    """The root's system prompt: ``SYSTEM_PROMPT``, or a user's ``template`` (``rlm.core.template``), filled in.

    ``sub_window``: the sub-model's context window in tokens, when known.
    """
    window = sub_window or UNKNOWN_SUB_WINDOW
    low, high, piece = piece_sizes(window)
    return (template or SYSTEM_PROMPT).format(rlm_query_line=RLM_QUERY_LINE if can_recurse else "",
                                              sub_window=window, output_chars=output_chars, low=low, high=high,
                                              piece=piece)


def first_user_message(context_description: str, query: str, turns: int | None = None) -> str:
    limit = f" You have {turns} turns." if turns else ""
    return (
        f"{context_description}\n\nThe query:\n{query}\n\n"
        f"Start by exploring `context` in a ```repl block.{limit}"
    )


def answer_now(variables: list[str]) -> str:
    """The forced answer's message: no code, FINAL or FINAL_VAR, and the variables it could name."""
    listed = "\n".join(f"- {v}" for v in variables[:40]) + ("\n- ..." if len(variables) > 40 else "")
    held = f"\nYour variables:\n{listed}" if variables else ""
    return (f"{ANSWER_NOW} Reply with FINAL(your best answer from what you found), or FINAL_VAR(name) to answer "
            f"with a variable's value.{held}")
