"""What the base model and the summary agent are asked, and what each method adds to the query.

The text methods' prompts are parsed back by the offline harness model
(``rlm.bench.quality.policies``), so each prompt and its parser live side by side here.
"""

from __future__ import annotations

import re

#: Added to the query for the RLM methods, so the root knows what it may use.
METHOD_NOTES = {
    "program": (
        "\n\n(Sub-calls are disabled in this run: llm_query, llm_batch and rlm_query return errors. "
        "Answer with code alone.)"
    ),
    "rlm-query": "\n\n(Use llm_query for sub-calls, one at a time; do not use llm_batch.)",
    "rlm-batch": "",
}

BASE = (
    "Read the text below, then answer the question.\n\nQuestion: {query}\n\nText:\n{text}\n\n"
    "Question: {query}\nAnswer:"
)
NO_NOTES = "(none yet)"
STEP = (
    "You are reading a long text in {n} parts to answer a question. You will not see the parts again, so you "
    "keep notes.\n\nQuestion: {query}\n\nYour notes so far:\n{notes}\n\nPart {i} of {n}:\n{part}\n\n"
    "Reply with your updated notes only: everything from your notes so far and from this part that you need "
    "to answer the question."
)
LAST = (
    "You have read a long text in {n} parts and kept notes to answer a question.\n\nQuestion: {query}\n\n"
    "Your notes:\n{notes}\n\nAnswer the question from your notes."
)

_BASE = re.compile(r"^Read the text below, then answer the question\.\n\nQuestion: (.*?)\n\nText:\n(.*)\n\nQuestion: ",
                   re.S)
_STEP = re.compile(r"^You are reading a long text in \d+ parts.*?\n\nQuestion: (.*?)\n\nYour notes so far:\n(.*?)"
                   r"\n\nPart \d+ of \d+:\n(.*)\n\nReply with your updated notes only", re.S)
_LAST = re.compile(r"^You have read a long text in \d+ parts.*?\n\nQuestion: (.*?)\n\nYour notes:\n(.*)"
                   r"\n\nAnswer the question from your notes\.$", re.S)


def parse_base(prompt: str) -> tuple[str, str] | None:
    """(query, text) of a base-model prompt."""
    match = _BASE.match(prompt)
    return (match.group(1), match.group(2)) if match else None


def parse_step(prompt: str) -> tuple[str, str, str] | None:
    """(query, notes, part) of a summary agent's reading step."""
    match = _STEP.match(prompt)
    return (match.group(1), match.group(2), match.group(3)) if match else None


def parse_last(prompt: str) -> tuple[str, str] | None:
    """(query, notes) of the summary agent's last call."""
    match = _LAST.match(prompt)
    return (match.group(1), match.group(2)) if match else None
