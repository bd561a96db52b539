"""The right program for S-NIAH: find every planted needle, answer the keys the query asks for.

Sent whole to the sandbox as root code: standard library only (see the package docstring).
"""

import json
import re

NEEDLE = re.compile(r"The special magic number for ([a-z]+-[a-z]+) is: (\d{7})\.")
ASKED = re.compile(r"`([a-z]+-[a-z]+)`")
PIECE_CHARS = 40_000
SUB_HEADER = (
    "Find the special magic numbers in the text below. Reply with JSON only, an object mapping each key "
    "the question asks about that the text names to its number, or {} when it names none."
)


def pieces(context: str) -> list[str]:
    """The context cut at line breaks into pieces of at most PIECE_CHARS characters."""
    text, start = str(context), 0
    out: list[str] = []
    while start < len(text):
        end = text.rfind("\n", start, start + PIECE_CHARS) + 1 if start + PIECE_CHARS < len(text) else len(text)
        end = end if end > start else min(start + PIECE_CHARS, len(text))
        out.append(text[start:end])
        start = end
    return out


def sub_prompt(piece: str, query: str) -> str:
    """The sub-call that reads one piece."""
    return f"{SUB_HEADER}\n\nQuestion: {query}\n\nText:\n{piece}"


def parse_sub_prompt(prompt: str) -> tuple[str, str] | None:
    """(query, piece) of a prompt made by ``sub_prompt``, else None."""
    if not prompt.startswith(SUB_HEADER + "\n\nQuestion: "):
        return None
    query, _, piece = prompt[len(SUB_HEADER) + len("\n\nQuestion: "):].partition("\n\nText:\n")
    return query, piece


def asked(query: str) -> list[str]:
    """The keys the query asks about, in its order."""
    return list(dict.fromkeys(ASKED.findall(query)))


def solve_piece(piece: str, query: str) -> str:
    """The numbers of the asked keys that this piece names, as JSON."""
    keys = set(asked(query))
    return json.dumps({key: value for key, value in NEEDLE.findall(piece) if key in keys})


def combine(partials: list[str], query: str, wrong: bool = False) -> str:
    """One line per asked key with its number; ``wrong`` gives a number that is off by one."""
    found: dict[str, str] = {}
    for partial in partials:
        try:
            found.update(json.loads(partial))
        except (TypeError, ValueError):
            continue
    lines = []
    for key in asked(query):
        value = found.get(key)
        if value is not None and wrong:
            value = f"{(int(value) + 1) % 10_000_000:07d}"
        lines.append(f"{key}: {value if value is not None else 'not found'}")
    return "\n".join(lines)
