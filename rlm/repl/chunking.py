"""``chunk``: split text into pieces of at most ``max_tokens`` tokens, fast and without token lists.

Each piece is sized from the token density of the piece before it, ended after a line
break (else a space) in its last fifth, and then counted on its own; one over
``max_tokens`` is cut shorter and counted again. Up to 8 M characters (``exact=None``, the
default) a piece is counted exactly, so every piece fits by construction, the text is
tokenized about once and the memory is the pieces themselves. Past that (or with
``exact=False``) a piece is counted from windows spread over it, 1/32 of it in all, and
the count is raised by four standard errors of the windows' densities: uneven text gets
shorter pieces instead of pieces over the limit, and windows that disagree by more than
10 % send the piece to an exact count. 100 MB takes 0.4-0.85 s that way here, against 4-16 s
counted exactly (docs/performance.md).

Standard library and the tokenizer wheels only: copied into each sandbox kernel as
``_rlm_chunking.py`` so that root code chunks where the context is.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

try:  # inside rlm
    from ..lm import counter
except ImportError:  # in the kernel: the copy beside this file
    import _rlm_counter as counter  # type: ignore[no-redef]

#: A piece may end early, at a line break or a space, if one lies in its last fifth.
SNAP_FRACTION = 0.2
#: A piece is aimed at this share of ``max_tokens``: the next stretch of text may be a little denser.
FILL = 0.95
#: Below this share of ``max_tokens`` a piece is grown once (the text got sparser).
GROW_BELOW = 0.7
#: Sampled pieces: this share of a piece is counted, in this many windows at most, each at least this long.
SAMPLED, MAX_WINDOWS, MIN_WINDOW_CHARS = 1 / 32, 32, 64
#: A sampled count is raised by this many standard errors of its windows' mean density.
SAFETY = 4.0
#: Past this relative error the windows disagree too much to trust: the piece is counted exactly.
MAX_ERROR = 0.1
#: ``exact=None`` (the default) counts exactly up to this many characters, as ``count_tokens`` does.
EXACT_CHARS = counter.EXACT_CHARS

Count = Callable[[str], int]


def joined(context: Any) -> str:
    """A list becomes one item per line, a dict one ``key: value`` per line."""
    if isinstance(context, str):
        return context
    if isinstance(context, dict):
        return "\n".join(f"{k}: {v if isinstance(v, str) else json.dumps(v)}" for k, v in context.items())
    if isinstance(context, (list, tuple)):
        return "\n".join(x if isinstance(x, str) else json.dumps(x) for x in context)
    return str(context)


def chunk(context: Any, max_tokens: int = 10_000, overlap: int = 0, model: str | None = None, *,
          exact: bool | None = None) -> list[str]:
    """Split text into pieces of at most ``max_tokens`` tokens, each overlapping the last by about ``overlap``.

    Pieces are exact substrings of the text, preferably ending after a line break (else a
    space) near their end; without overlap they join back into the text. A list or dict
    is split as one line per item. ``model`` picks the tokenizer (default ``o200k_base``).
    A piece is one character at least, even where that character alone has more tokens.
    Up to 8 M characters every piece is counted exactly and fits; above, pieces are sized
    from a sampled density of the text, and pieces of mixed text are counted exactly
    (``exact=True`` counts every piece, at about 25 MB/s; ``exact=False`` always samples).

    Example::

        pieces = chunk(context, max_tokens=20_000, overlap=200)
        answers = llm_batch([f"Find dates in:\\n{p}" for p in pieces])
    """
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise ValueError(f"chunk(max_tokens=...) must be an int >= 1, got {max_tokens!r}")
    if isinstance(overlap, bool) or not isinstance(overlap, int) or not 0 <= overlap < max_tokens:
        raise ValueError(f"chunk(overlap=...) must be an int with 0 <= overlap < max_tokens, got {overlap!r}")
    text = joined(context)
    if not text:
        return []
    tokens = counter.counter_for(model)
    sized = _Pieces(text, max_tokens, tokens, len(text) <= EXACT_CHARS if exact is None else exact)
    pieces: list[str] = []
    start = 0
    while True:
        end = sized.next_end(start)
        pieces.append(text[start:end])
        if end >= len(text):
            return pieces
        start = _overlap_start(text, start, end, overlap, sized.density, tokens) if overlap else end


class _Pieces:
    """Where each piece ends, learning the text's density (tokens per character) as it goes."""

    def __init__(self, text: str, max_tokens: int, tokens: Count, exact: bool) -> None:
        self.text = text
        self.max = max_tokens
        self.tokens = tokens
        self.exact = exact
        sample = text[: min(len(text), 65_536)]
        self.density = max(tokens(sample), 1) / len(sample)

    def count(self, start: int, end: int) -> int:
        if not self.exact:
            sampled = self._sampled(start, end)
            if sampled is not None:
                return sampled
        return self.tokens(self.text[start:end])

    def _sampled(self, start: int, end: int) -> int | None:
        """An upper estimate from windows spread over the piece, or None where they disagree too much.

        Why: counting a whole 100 MB text takes 4-14 s here; 1/32 of it, in windows spread
        evenly over each piece, takes a fraction of a second. The estimate is raised by
        ``SAFETY`` standard errors of the windows' mean density, so a piece of uneven text
        comes out shorter rather than over ``max_tokens``.
        """
        length = end - start
        budget = min(max(int(length * SAMPLED), 8 * MIN_WINDOW_CHARS), length // 4)
        windows = min(MAX_WINDOWS, budget // MIN_WINDOW_CHARS)
        if windows < 4:
            return None
        size = budget // windows
        step = length // windows
        densities = [self.tokens(self.text[at : at + size]) / size
                     for at in range(start + (step - size) // 2, end - size + 1, step)][:windows]
        n = len(densities)
        mean = sum(densities) / n
        if mean == 0:
            return None
        spread = math.sqrt(sum((d - mean) ** 2 for d in densities) / (n - 1))  # statistics.stdev is 10x slower
        error = spread / mean / math.sqrt(n)
        if error > MAX_ERROR:
            return None
        return math.ceil(mean * length * (1 + SAFETY * error))

    def next_end(self, start: int) -> int:
        """The end of the piece from ``start``: at most ``max_tokens`` (as counted), ended at a break if it can be."""
        n = len(self.text)
        if (n - start) * self.density <= self.max * 1.2:
            rest = self.count(start, n)
            if rest <= self.max:
                return n
            self.density = rest / (n - start)
        grown = False
        aim = start + max(1, int(self.max * FILL / self.density))
        while True:
            end = _snap(self.text, start, min(aim, n))
            used = self.count(start, end)
            if used > self.max and end - start > 1:
                aim = start + max(1, int((end - start) * self.max * FILL / used))
                continue
            self.density = max(used, 1) / (end - start)
            if end < n and used < self.max * GROW_BELOW and not grown:
                grown = True  # the text got sparser: one more try at a fuller piece
                aim = start + int(self.max * FILL / self.density)
                if aim > end + 1:
                    continue
            return end


def _snap(text: str, start: int, end: int) -> int:
    """Move ``end`` back to just after a line break, else a space, in the piece's last fifth."""
    if end >= len(text):
        return len(text)
    floor = max(start + 1, end - int((end - start) * SNAP_FRACTION))
    for wanted in ("\n", " "):
        at = text.rfind(wanted, floor - 1, end)
        if at != -1:
            return at + 1
    return end


def _overlap_start(text: str, start: int, end: int, overlap: int, density: float, tokens: Count) -> int:
    """Where the piece after ``[start, end)`` starts: about ``overlap`` tokens before ``end``, at a word."""
    back = max(1, int(overlap / density))
    for _ in range(3):
        begin = max(start + 1, end - back)
        space = text.find(" ", begin, end)
        if begin > start + 1 and space != -1 and space - begin < back // 4:
            begin = space + 1  # start at a word, not inside one
        got = tokens(text[begin:end])
        if got == 0 or abs(got - overlap) <= max(2, overlap // 10):
            return begin
        back = max(1, int((end - begin) * overlap / got))
    return begin
