"""``rlm.estimate(context, query)``: what a run is likely to cost, before any model call.

An RLM's cost is mostly its sub-calls, and they are mostly the context read once in
pieces. So the estimate counts the context's tokens and prices the two plans the system
prompt suggests: one pass of ``chunk`` at the sub-model's window (the fewest calls), and
10,000-token chunks with a second pass over their answers (the most). Root turns are
bounded by typical runs (3 turns) and by ``max_iterations``. It is a range, not a quote.
Images the run may look at (pages with no text, figures) are priced as one sub-call each,
at the tokens OpenAI's rule gives for their size (``rlm.lm.vision.image_tokens``).
The live view shows one as a run starts, from ``glance_tokens``: it never reads a file
context or counts more than ``GLANCE_CHARS`` of text, so it costs the run nothing.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..lm.pricing import Pricing
from ..lm.tokens import count_message_tokens, count_tokens
from ..lm.vision import image_tokens
from ..repl.base import load_context
from ..repl.contexts import DirectoryContext, FrameContext, TextFile, value_of
from ..repl.document_context import DocumentContext
from ..repl.steps import as_text
from ..trace.html import NO_MATH
from .prompts import clean_text, describe_context, first_user_message, system_prompt

log = logging.getLogger("rlm")

#: The system prompt's default chunk size, the many-calls plan's.
SMALL_CHUNK = 10_000
#: Share of the sub-model's window a one-pass chunk fills (room for the instruction and reply).
WINDOW_SHARE = 0.8
#: Tokens of instruction per sub-call prompt, and of reply per sub-call, assumed.
INSTRUCTION_TOKENS, REPLY_TOKENS = 200, 400
#: Root turns in a typical run, and tokens each adds to the root's history (code and output).
TYPICAL_TURNS, TURN_TOKENS = 3, 1_500
#: Window assumed for a sub-model the pricing table does not know.
UNKNOWN_WINDOW = 128_000
#: Text the live view's estimate counts exactly; beyond it, four characters a token.
GLANCE_CHARS = 1_000_000


@dataclass(frozen=True, slots=True)
class Estimate:
    """A likely range for one completion: ``(low, high)`` pairs; dollars are None for unpriced models."""

    tokens: int
    root_prompt_tokens: int
    sub_calls: tuple[int, int]
    sub_tokens: tuple[int, int]
    root_tokens: tuple[int, int]
    cost_usd: tuple[float, float] | None
    sub_window: int
    #: Images priced in (one sub-call each), and their prompt tokens together.
    images: int = 0
    image_tokens: int = 0

    @property
    def total_tokens(self) -> tuple[int, int]:
        return self.sub_tokens[0] + self.root_tokens[0], self.sub_tokens[1] + self.root_tokens[1]

    def __str__(self) -> str:
        low, high = self.total_tokens
        cost = "no price known" if self.cost_usd is None else f"${self.cost_usd[0]:.4f}-${self.cost_usd[1]:.4f}"
        looked = f" (and {self.images:,} images, {self.image_tokens:,} tokens)" if self.images else ""
        return (f"context {self.tokens:,} tokens{looked}; root prompt {self.root_prompt_tokens:,} tokens; "
                f"{self.sub_calls[0]:,}-{self.sub_calls[1]:,} sub-calls; {low:,}-{high:,} tokens in all; {cost} "
                "(an estimate: no model was called)")

    def _repr_html_(self) -> str:
        return f"<div class='rlm-estimate {NO_MATH}'><b>Estimate</b>: {self!s}</div>"


def estimate(context: Any, query: str, *, model: str, sub_model: str, pricing: Pricing, max_iterations: int,
             can_recurse: bool = False, tokens: int | None = None, description: str | None = None,
             sandbox: Any = "kernel", images: Sequence[tuple[int, int]] = ()) -> Estimate:
    """The range of tokens and dollars a run of ``query`` over ``context`` is likely to take.

    ``tokens``: the context's, if already known (``glance_tokens``); else they are counted.
    ``description``: the root's description of the context, if already made (it reads all
    of a str to count its lines); else it is made here. Documents are counted as extracted
    text, read where a run would read them (``sandbox``: a fresh sandbox kernel, or
    ``"local"``: this process), never parsed by the caller (``rlm.repl.confined``); their
    pages without text (scans) are counted as images the root will look at. ``images``:
    ``(width, height)`` of each image the root is expected to look at (a PDF's pages without
    text, say): each is one more sub-call of the sub-model, both ends of the range.
    """
    loaded = load_context(context)
    if isinstance(loaded, DocumentContext) and tokens is None:
        from ..repl.confined import read_documents

        info = read_documents(loaded, sandbox)
        tokens, description = info.tokens, description or clean_text(info.description)
        images = images or info.scans
    tokens = _context_tokens(loaded, sub_model) if tokens is None else tokens
    if description is None:
        description = clean_text(describe_context(loaded))
    root = [{"role": "system", "content": system_prompt(can_recurse=can_recurse)},
            {"role": "user", "content": first_user_message(description, query)}]
    root_prompt = count_message_tokens(root, model)
    window = pricing.context_window(sub_model) or UNKNOWN_WINDOW
    one_pass = max(1, math.ceil(tokens / max(1, int(window * WINDOW_SHARE))))
    many = max(1, math.ceil(tokens / SMALL_CHUNK))
    second_pass = math.ceil(many * REPLY_TOKENS / max(1, int(window * WINDOW_SHARE)))
    looked = sum(image_tokens(w, h, model=sub_model) for w, h in images) + len(images) * INSTRUCTION_TOKENS
    calls = (one_pass + len(images), many + second_pass + len(images))
    sub_in = (tokens + one_pass * INSTRUCTION_TOKENS + looked,
              tokens + (many + second_pass) * INSTRUCTION_TOKENS + many * REPLY_TOKENS + looked)
    sub_out = (calls[0] * REPLY_TOKENS, calls[1] * REPLY_TOKENS)
    turns = (TYPICAL_TURNS, max(TYPICAL_TURNS, max_iterations))
    root_in = tuple(sum(root_prompt + t * TURN_TOKENS for t in range(n)) for n in turns)
    root_out = tuple(n * TURN_TOKENS // 3 for n in turns)
    prices = [(pricing.estimate(sub_model, sub_in[i], sub_out[i]), pricing.estimate(model, root_in[i], root_out[i]))
              for i in (0, 1)]
    totals = [None if sub is None or top is None else sub + top for sub, top in prices]
    cost = (totals[0], totals[1]) if totals[0] is not None and totals[1] is not None else None
    return Estimate(tokens, root_prompt, calls, (sub_in[0] + sub_out[0], sub_in[1] + sub_out[1]),
                    (root_in[0] + root_out[0], root_in[1] + root_out[1]), cost, window, len(images),
                    looked - len(images) * INSTRUCTION_TOKENS)


def _context_tokens(loaded: Any, model: str) -> int:
    """The context's tokens as the sub-model would read it: a str whole, a container item by item.

    A file is read, a directory counts its text files, a DataFrame counts as its CSV.
    """
    if isinstance(loaded, FrameContext):
        return count_tokens(loaded.frame.to_csv(index=False), model)
    context = value_of(loaded)
    if isinstance(context, str):
        return count_tokens(context, model)
    items = context.items() if isinstance(context, dict) else enumerate(context)
    return sum(count_tokens(as_text(value), model) for _, value in items)


def glance_or_none(loaded: Any, model: str) -> int | None:
    """``glance_tokens``, or None where the context cannot be counted: the run goes on without the number."""
    try:
        return glance_tokens(loaded, model)
    except Exception:
        log.debug("rlm: the context's tokens could not be counted", exc_info=True)
        return None


def glance_tokens(loaded: Any, model: str) -> int:
    """The context's tokens, cheaply: exact for up to ``GLANCE_CHARS`` of text, else from its characters."""
    if isinstance(loaded, (TextFile, DocumentContext)):  # documents: a guess from bytes until they are read
        return loaded.size // 4
    if isinstance(loaded, DirectoryContext):
        chars = sum(len(text) for text in loaded.files.values())
    elif isinstance(loaded, FrameContext):
        return int(loaded.frame.memory_usage(deep=False).sum()) // 4
    elif isinstance(loaded, str):
        chars = len(loaded)
    else:
        items = loaded.values() if isinstance(loaded, dict) else loaded
        chars = sum(len(as_text(v)) for v in items)
    return _context_tokens(loaded, model) if chars <= GLANCE_CHARS else chars // 4
