"""Refuse a prompt bigger than the model's context window before it is sent.

The most common RLM failure users report is the root pasting a whole chunk, or the
whole context, into one sub-call: the endpoint rejects it (or silently truncates it)
after a slow upload. We count its tokens first and give the root an error it can act
on: how many tokens, the limit, and how to split.
"""

from __future__ import annotations

from typing import Any

from ..errors import ContextWindowExceeded
from .pricing import Pricing
from .tokens import TOKENS_PER_MESSAGE, TOKENS_PER_REPLY, count_message_tokens, message_chars

#: UTF-8 needs at most 4 bytes a character and every token is at least one byte.
MAX_TOKENS_PER_CHAR = 4


def check_window(messages: list[dict[str, Any]], model: str, pricing: Pricing, extra_tokens: int = 0) -> int | None:
    """Raise ``ContextWindowExceeded`` if the prompt does not fit ``model``'s window.

    Returns the prompt's token count when it had to be counted, else None: a prompt
    whose characters cannot add up to the window is not tokenized at all, so small
    calls cost nothing here. Models with no known window are not checked.
    ``extra_tokens``: what the request carries besides its text (its images).
    """
    window = pricing.context_window(model)
    if window is None:
        return None
    framing = TOKENS_PER_REPLY + len(messages) * (TOKENS_PER_MESSAGE + 2) + extra_tokens
    if message_chars(messages) * MAX_TOKENS_PER_CHAR + framing <= window:
        return None
    tokens = count_message_tokens(messages, model) + extra_tokens
    if tokens > window:
        piece = max(1, window // 2)
        raise ContextWindowExceeded(
            f"prompt is {tokens:,} tokens but the context window of {model!r} is {window:,} tokens, "
            f"so it was not sent. Split the text into pieces of at most about {piece:,} tokens, "
            f"e.g. pieces = chunk(text, max_tokens={piece}), and send them with llm_batch.",
            model=model, tokens=tokens, limit=window,
        )
    return tokens
