"""What every quality task produces: one item (a context, a query, the known answer) of a given size.

Sizes are tokens counted with rlm's own offline tokenizer (``rlm.lm.tokens``), so "128k"
means the same context on every machine. Items are built from a string seed
(task, size, seed, index): the same command line always makes the same items.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

#: How a dict context (file path -> text) is shown to a method that reads text: the base
#: model, the summary agent. The code-QA programs split on the same header.
FILE_HEADER = "### file: "
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([km]?)\s*$", re.I)
_UNITS = {"": 1, "k": 1024, "m": 1024 * 1024}


@dataclass(frozen=True)
class Item:
    """One question over one context, with its answer known from how the context was made.

    ``metric``: ``"number"`` (0.75^|error|), ``"exact"`` or ``"f1"``; ``answer_type`` says
    how an answer's text is read (``rlm.bench.quality.scoring``). ``tokens`` is the
    context's real size; ``size`` the one asked for.
    """

    task: str
    id: str
    size: int
    seed: int
    index: int
    kind: str
    context: str | dict[str, str]
    query: str
    expected: Any
    metric: str
    answer_type: str
    tokens: int

    @property
    def fingerprint(self) -> str:
        """A digest of what the item asks: the runner will not resume an item whose digest changed."""
        digest = hashlib.sha1(usedforsecurity=False)
        digest.update(json.dumps([self.query, self.expected], sort_keys=True).encode())
        digest.update(as_text(self.context).encode("utf-8", "surrogatepass"))
        return digest.hexdigest()[:16]

    def describe(self) -> dict[str, Any]:
        """The item without its context: what a results line keeps."""
        data = asdict(self)
        del data["context"]
        return data


def item_rng(task: str, size: int, seed: int, index: int) -> random.Random:
    """The random source of one item; a str seed is hashed the same way on every platform."""
    return random.Random(f"{task}:{size}:{seed}:{index}")


def parse_size(text: str) -> int:
    """``"8k"`` -> 8192, ``"1m"`` -> 1048576, ``"5000"`` -> 5000 (tokens)."""
    match = _SIZE.match(text)
    if not match:
        raise ValueError(f"a size is a number of tokens with an optional k or m (8k, 128k, 1m), got {text!r}")
    tokens = int(float(match.group(1)) * _UNITS[match.group(2).lower()])
    if tokens < 1:
        raise ValueError(f"a size must be at least one token, got {text!r}")
    return tokens


def size_label(tokens: int) -> str:
    """The short name of a size: 8192 -> ``8k``, 1048576 -> ``1m``."""
    for unit, factor in (("m", 1024 * 1024), ("k", 1024)):
        if tokens >= factor and tokens % factor == 0:
            return f"{tokens // factor}{unit}"
    return str(tokens)


def fill_lines(target_tokens: int, make_line: Callable[[], str], reserved: int = 0) -> list[str]:
    """Lines from ``make_line()`` until they hold ``target_tokens - reserved`` tokens, newlines included."""
    from ...lm.tokens import get_encoding

    encoding = get_encoding()
    lines: list[str] = []
    total = 0
    goal = max(target_tokens - reserved, 1)
    while total < goal:
        line = make_line()
        lines.append(line)
        total += len(encoding.encode_ordinary(line + "\n"))
    return lines


def count(text: str) -> int:
    """The tokens of a context, as sizes are measured."""
    from ...lm.tokens import count_tokens

    return count_tokens(text)


def as_text(context: str | dict[str, str]) -> str:
    """A context as one text: a dict becomes one ``### file: path`` section per entry."""
    if isinstance(context, str):
        return context
    parts = []
    for path, text in context.items():
        parts.append(f"{FILE_HEADER}{path}\n{text}")
        if not text.endswith("\n"):
            parts.append("\n")
    return "".join(parts)
