"""Texts of four kinds, of any size, for tokenizer tests and benchmarks (no downloads).

Prose, code, CJK and one long line with no spaces differ most in tokens per character,
and the last is where tiktoken's BPE gets slow; a chunker sized by one kind must still
fit the others. Large texts repeat a 1 MB block built once, in one allocation.
"""

from __future__ import annotations

import random
import textwrap
from pathlib import Path

from .corpus import make_report

KINDS = ("prose", "code", "cjk", "nospace")
_BLOCK = 2**20
_CJK_PUNCTUATION = "。，、！？：；「」"


def sample_text(kind: str, chars: int, seed: int = 0) -> str:
    """``chars`` characters of ``kind`` (one of ``KINDS``), the same for the same arguments."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    base = _block(kind, min(chars, _BLOCK), seed)
    whole, rest = divmod(chars, len(base))
    return "".join([base] * whole + [base[:rest]])


def _block(kind: str, chars: int, seed: int) -> str:
    rng = random.Random(seed)
    parts: list[str] = []
    size = 0
    while size < chars:
        part = _part(kind, rng, len(parts))
        parts.append(part)
        size += len(part)
    return "".join(parts)[:chars]


def _part(kind: str, rng: random.Random, n: int) -> str:
    if kind == "prose":
        report = make_report(sections=20, seed=rng.randrange(2**31))
        return "\n".join(textwrap.fill(p, 78) for p in report.text.split("\n")) + "\n"
    if kind == "code":
        sources = sorted(Path(__file__).resolve().parent.parent.rglob("*.py"))
        return sources[n % len(sources)].read_text(encoding="utf-8")
    if kind == "cjk":
        line = "".join(chr(rng.randrange(0x4E00, 0x4E00 + 2500)) if rng.random() > 0.08
                       else rng.choice(_CJK_PUNCTUATION) for _ in range(rng.randint(20, 120)))
        return line + "\n"
    return "".join(rng.choices("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", k=4096))
