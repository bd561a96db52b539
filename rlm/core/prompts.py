"""The text the root model reads. Pure functions: no I/O, shared by every layer.

The context itself never appears in a prompt: the root sees its type, size and a
short preview, and reads the rest through code.
"""

from __future__ import annotations

import json
import re
from typing import Any

PREVIEW_CHARS = 500

SYSTEM_PROMPT = """\
You answer a query about a context that is far too large to read at once. The context is
loaded in a Python REPL as the variable `context`; you explore it by writing code.

Write Python in fenced blocks tagged repl:
```repl
print(len(context))
print(context[:1000])
```
Each block runs in the same persistent namespace; variables survive between turns. You see
what the code prints (long output is cut in the middle), so print what you need to see
and keep big intermediate values in variables instead of printing them.

Functions available in the REPL:
- llm_query(prompt: str) -> str — ask a sub-model one question. It sees only the prompt
  you pass, so include the text it should read. It handles roughly {sub_window} of text.
- llm_batch(prompts: list[str], max_concurrent: int = 10) -> list[str] — many llm_query
  calls in parallel; answers come back in the same order. Prefer it over a loop of
  llm_query: it is many times faster. A failed item is a string starting with
  "[rlm error]" (its type is FailedCall); the other items are still good. A prompt too
  big for the sub-model is not sent: its item is such an error, with its token count.
- chunk(text, max_tokens=10000, overlap=0) -> list[str] — split text (a list or dict:
  one item per line) into pieces of at most max_tokens tokens, cut at line breaks.
- count_tokens(text) -> int — the number of tokens in a string.
- budget() — what this run has spent and has left (calls, tokens, cost, time); when
  a budget runs out, no more model calls are made, so finish before it does.
{rlm_query_line}- FINAL(answer) — end the run with this answer (also usable in plain text, see below).
- FINAL_VAR(name) — end the run with the value of the REPL variable `name`.

A good plan: look at the size and structure of `context`; split it into chunks that fit
the sub-model; use llm_batch to extract what matters from every chunk; combine the
results in code (and with another llm_query if needed); check the answer; finish.
Put the instruction first and the chunk after it (f"{{instruction}}\n\n{{chunk}}"): prompts
that start alike are cheaper, as providers cache shared prefixes.

When you are done, reply with FINAL(your answer) on its own line, or FINAL_VAR(variable)
to return a variable you built in the REPL. Do not answer before you have looked at the
context, and do not write FINAL until the work is done.
"""

RLM_QUERY_LINE = (
    "- rlm_query(query: str, context) -> str — hand a sub-problem and its own context to a\n"
    "  recursive RLM that can itself write code; use it for sub-problems too big for llm_query.\n"
)

NUDGE_EMPTY = (
    "Your last reply was empty. Continue: write a ```repl block to explore `context`, "
    "or FINAL(answer) if you are done."
)
NUDGE_NO_CODE = (
    "Your last reply had no ```repl block and no FINAL(...). Write code to make progress, "
    "or reply with FINAL(answer) / FINAL_VAR(variable) if you have the answer."
)
NUDGE_TOOL_CALL = (
    "Your last reply was a tool call, and there are no tools here. Write Python in a ```repl block "
    "(llm_query, llm_batch and the others are functions in the REPL), or reply with FINAL(answer)."
)
NOTE_CUT = (
    "Your reply was cut off at its output limit, so its last unfinished code block was not run. "
    "Write shorter replies: one step at a time, and keep long text in variables."
)
ANSWER_NOW = (
    "You have used all your turns. Answer now with FINAL(your best answer), based on what "
    "you have found so far. Do not write code."
)


_SURROGATES = re.compile("[\ud800-\udfff]")


def clean_text(text: str) -> str:
    """Text a model can be sent: a lone surrogate (from a str context, say) cannot be UTF-8, so it becomes U+FFFD."""
    return _SURROGATES.sub("\ufffd", text)


def _chars(value: Any) -> int:
    if isinstance(value, str):
        return len(value)
    try:
        return len(json.dumps(value, default=repr))
    except (TypeError, ValueError):  # tuple keys, say
        return len(repr(value))


def describe_context(context: Any) -> str:
    """Type, size and a short preview of the context, never the whole of it (a file or directory says its own)."""
    if callable(getattr(context, "describe", None)):
        return str(context.describe())
    if isinstance(context, str):
        lines = context.count("\n") + 1 if context else 0
        return (
            f"`context` is a str of {len(context):,} characters ({lines:,} lines).\n"
            f"Its first {min(PREVIEW_CHARS, len(context))} characters:\n"
            f"{_fence(context[:PREVIEW_CHARS])}"
        )
    if isinstance(context, (list, tuple)):
        sizes = [_chars(x) for x in context]
        head = ", ".join(f"{s:,}" for s in sizes[:10]) + (", ..." if len(sizes) > 10 else "")
        first = context[0] if context else None
        sample = first if isinstance(first, str) else repr(first)
        return (
            f"`context` is a {type(context).__name__} of {len(context):,} items ({sum(sizes):,} characters in all; "
            f"item sizes: {head}).\nThe start of context[0]:\n{_fence((sample or '')[:PREVIEW_CHARS])}"
        )
    keys = list(context)
    shown = ", ".join(repr(k) for k in keys[:20]) + (", ..." if len(keys) > 20 else "")
    return (
        f"`context` is a dict with {len(keys):,} keys ({_chars(context):,} characters as JSON).\n"
        f"Keys: {shown}"
    )


def _fence(text: str) -> str:
    return f"```text\n{text}\n```"


def system_prompt(*, can_recurse: bool, sub_window: str = "100k tokens", template: str | None = None) -> str:
    """The root's system prompt: ``SYSTEM_PROMPT``, or a user's ``template`` (``rlm.core.template``), filled in."""
    return (template or SYSTEM_PROMPT).format(
        rlm_query_line=RLM_QUERY_LINE if can_recurse else "", sub_window=sub_window
    )


def first_user_message(context_description: str, query: str) -> str:
    return (
        f"{context_description}\n\nThe query:\n{query}\n\n"
        "Start by exploring `context` in a ```repl block."
    )


def step_feedback(outputs: list[str]) -> str:
    """The REPL's answer to one root reply: the output of each block, in order."""
    if not outputs:
        return NUDGE_NO_CODE
    parts = [
        f"Output of block {i}:\n```text\n{out}\n```" if len(outputs) > 1 else f"REPL output:\n```text\n{out}\n```"
        for i, out in enumerate(outputs, 1)
    ]
    return "\n\n".join(parts) + "\n\nContinue, or reply with FINAL(answer) / FINAL_VAR(variable) when done."
