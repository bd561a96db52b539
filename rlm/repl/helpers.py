"""Helpers root code can call in the REPL, shared by every REPL implementation.

``chunk`` and ``count_tokens`` are pure; the in-process REPL calls them directly,
the kernel sandbox's host on the kernel's behalf (the tokenizer lives on the host).
"""

from __future__ import annotations

import json
from typing import Any

from ..lm.tokens import count_tokens, encoding_for

__all__ = ["PURE_HELPERS", "chunk", "count_tokens"]

#: A chunk may end early, at a line break or a space, if one lies in its last fifth.
SNAP_FRACTION = 0.2


def _joined(context: Any) -> str:
    """A list becomes one item per line, a dict one ``key: value`` per line."""
    if isinstance(context, str):
        return context
    if isinstance(context, dict):
        return "\n".join(f"{k}: {v if isinstance(v, str) else json.dumps(v)}" for k, v in context.items())
    if isinstance(context, (list, tuple)):
        return "\n".join(x if isinstance(x, str) else json.dumps(x) for x in context)
    return str(context)


def chunk(
    context: Any, max_tokens: int = 10_000, overlap: int = 0, model: str | None = None, *, max_pieces: int | None = None
) -> list[str]:
    """Split text into pieces of at most ``max_tokens`` tokens, each overlapping the last.

    Pieces are exact substrings of the text, cut between tokens and never inside a
    character, preferably after a line break (else a space) near the end of a
    piece; without overlap they join back into the text. A list or dict is split
    as one line per item. ``model`` picks the tokenizer (default ``o200k_base``);
    ``max_pieces`` refuses a split into more pieces than that (the sandbox's host sets it).

    Example::

        pieces = chunk(context, max_tokens=20_000, overlap=200)
        answers = llm_batch([f"Find dates in:\\n{p}" for p in pieces])
    """
    if not isinstance(max_tokens, int) or max_tokens < 1:
        raise ValueError(f"chunk(max_tokens=...) must be an int >= 1, got {max_tokens!r}")
    if not isinstance(overlap, int) or not 0 <= overlap < max_tokens:
        raise ValueError(f"chunk(overlap=...) must be an int with 0 <= overlap < max_tokens, got {overlap!r}")
    text = _joined(context)
    if not text:
        return []
    encoding = encoding_for(model)
    tokens = encoding.encode_ordinary(text)
    if len(tokens) <= max_tokens:
        return [text]
    pieces_needed = -(-(len(tokens) - overlap) // (max_tokens - overlap))
    if max_pieces is not None and pieces_needed > max_pieces:
        raise ValueError(f"chunk(max_tokens={max_tokens}) would make about {pieces_needed:,} pieces, over the "
                         f"{max_pieces:,} one call may return; use a larger max_tokens")
    offsets = _char_offsets(encoding.decode_tokens_bytes(tokens), text)
    pieces: list[str] = []
    start, n = 0, len(tokens)
    while True:
        end = _snap(text, offsets, start, min(start + max_tokens, n), n, max_tokens)
        while end < n and offsets[end] <= offsets[start]:
            end += 1  # only when max_tokens is smaller than one character's tokens
        pieces.append(text[offsets[start] : offsets[end]])
        if end >= n:
            return pieces
        nxt = max(end - overlap, start + 1)
        while offsets[nxt] <= offsets[start] or (nxt < end and offsets[nxt] == offsets[nxt - 1]):
            nxt += 1  # move forward in the text, and never start inside a character
        start = nxt


def _char_offsets(token_bytes: list[bytes], text: str) -> list[int]:
    """Character offset where each token starts (plus the end), for exact slicing.

    Counts the UTF-8 lead bytes before each boundary (continuation bytes are
    deleted in C by ``translate``). A boundary inside a multi-byte character maps to
    that character's start, so the character goes whole to the piece after the cut
    and no piece grows past its token count.
    """
    offsets = [0]
    chars = 0
    for i, piece in enumerate(token_bytes):
        chars += len(piece.translate(None, _CONTINUATION))
        following = token_bytes[i + 1][:1] if i + 1 < len(token_bytes) else b""
        offsets.append(chars - 1 if following and following[0] & 0xC0 == 0x80 else chars)
    offsets[-1] = len(text)
    return offsets


_CONTINUATION = bytes(range(0x80, 0xC0))


def _snap(text: str, offsets: list[int], start: int, end: int, n: int, max_tokens: int) -> int:
    """Move ``end`` back to just after a line break, else a space, in the piece's last fifth."""
    if end >= n:
        return n
    floor = max(start + 1, end - int(max_tokens * SNAP_FRACTION))
    for wanted in ("\n", " "):
        for cut in range(end, floor - 1, -1):
            at = offsets[cut]
            if at > offsets[start] and text[at - 1] == wanted:
                return cut
    return end


#: Helpers that need no host: a REPL puts these in its namespace as they are.
PURE_HELPERS: dict[str, Any] = {"chunk": chunk, "count_tokens": count_tokens}
