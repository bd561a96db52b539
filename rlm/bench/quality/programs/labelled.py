"""The right program for OOLONG-style and OOLONG-Pairs-style questions over labelled records.

Each line of the context is a record ``Date: ... || User: ... || Instance: <a question>``
whose label (what kind of question it is, as in TREC's coarse classes) is not written
anywhere. This program knows the generator's templates, so it labels every instance
exactly, then counts, compares or pairs users. Sent whole to the sandbox as root code:
standard library only (see the package docstring).
"""

import itertools
import json
import re

LABELS = ("numeric value", "entity", "location", "description and abstract concept", "abbreviation", "human being")

#: Instance templates per label. Several labels share a first word ("What", "Which"), so
#: a keyword rule gets some wrong, as on real TREC questions; a reader of the text does not.
TEMPLATES: dict[str, tuple[str, ...]] = {
    "numeric value": (
        "How many {plural} fit in a standard {container}?",
        "What is the population of {city}?",
        "In what year did {event}?",
        "How tall is {landmark}?",
        "What is the average weight of an adult {animal}?",
    ),
    "entity": (
        "What {category} is best known for {trait}?",
        "Name a {category} that {habit}.",
        "What is the name of the ship that {voyage}?",
        "Which breed of {animal} is the most {quality}?",
    ),
    "location": (
        "Where is {landmark} located?",
        "What is the capital of {country}?",
        "Which country borders {country}?",
        "In which city was {org} founded?",
    ),
    "description and abstract concept": (
        "Why do {plural} {behaviour}?",
        "What is the meaning of the word {word}?",
        "How does a {device} work?",
        "What is the difference between {concept} and {concept2}?",
    ),
    "abbreviation": (
        "What does {acronym} stand for?",
        "What is the full form of {acronym}?",
        "{acronym} is short for what?",
    ),
    "human being": (
        "Who invented the {device}?",
        "Who was the first {role} of {country}?",
        "What is the name of the {role} who {deed}?",
        "Which {role} wrote {work}?",
    ),
}

#: The questions the generators ask, each matched back by ``question``.
PREAMBLE = (
    "Each line of the context is a record: a date, a user ID and an instance (a question someone asked). "
    "Every instance has exactly one of these labels, which the context does not show: {labels}."
)
QUESTIONS = {
    "count": "How many instances have the label '{a}'? Answer with the number only.",
    "most": "Which label is the most common among all instances? Answer with the label only.",
    "least": "Which label is the least common among all instances? Answer with the label only.",
    "compare": (
        "Is the label '{a}' more common, less common, or the same frequency as the label '{b}'? "
        "Answer with 'more common', 'less common' or 'same frequency'."
    ),
    "both": "List every pair of user IDs where both users have at least one instance with the label '{a}'.",
    "cross": (
        "List every pair of user IDs where one user has at least one instance with the label '{a}' "
        "and the other has at least one instance with the label '{b}'."
    ),
    "exclusive": (
        "List every pair of user IDs where both users have at least one instance with the label '{a}' "
        "and neither user has any instance with the label '{b}'."
    ),
}
PAIRS_FORMAT = " Write each pair as (smaller ID, larger ID), one pair per line."
RECORD = re.compile(r"User: (\d+) \|\| Instance: (.*)$")
PIECE_CHARS = 40_000
SUB_HEADER = (
    "Label every record below with one of the labels the question lists, then reply with JSON only: "
    '{"counts": {label: number of records}, "users": {user ID: [labels of that user\'s records]}}.'
)


def _regex(template: str, slot: str) -> str:
    """A template as a regular expression, each ``{slot}`` matched by ``slot``."""
    return slot.join(re.escape(part) for part in re.split(r"\{\w+\}", template))


_INSTANCE = [(label, re.compile(f"^{_regex(t, '(.+?)')}$")) for label, ts in TEMPLATES.items() for t in ts]
_QUESTION = {kind: re.compile(_regex(q, "([^']+)")) for kind, q in QUESTIONS.items()}


def classify(instance: str) -> str | None:
    """The label of an instance written from one of TEMPLATES."""
    for label, pattern in _INSTANCE:
        if pattern.match(instance):
            return label
    return None


def question(query: str) -> tuple[str, str, str]:
    """(kind, label a, label b) of the question in the query."""
    for kind, pattern in _QUESTION.items():
        match = pattern.search(query)
        if match:
            labels = [*match.groups(), "", ""]
            return kind, labels[0], labels[1]
    raise ValueError(f"not a question this program answers: {query[:200]!r}")


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
    """The sub-call that labels one piece's records."""
    return f"{SUB_HEADER}\n\nQuestion: {query}\n\nText:\n{piece}"


def parse_sub_prompt(prompt: str) -> tuple[str, str] | None:
    """(query, piece) of a prompt made by ``sub_prompt``, else None."""
    if not prompt.startswith(SUB_HEADER + "\n\nQuestion: "):
        return None
    query, _, piece = prompt[len(SUB_HEADER) + len("\n\nQuestion: "):].partition("\n\nText:\n")
    return query, piece


def solve_piece(piece: str, query: str) -> str:
    """Label counts, and the labels of each user that the question is about, as JSON."""
    kind, a, b = question(query)
    counts: dict[str, int] = {}
    users: dict[str, list[str]] = {}
    for line in piece.splitlines():
        match = RECORD.search(line)
        label = classify(match.group(2).strip()) if match else None
        if match is None or label is None:
            continue
        counts[label] = counts.get(label, 0) + 1
        if label in (a, b) and kind in ("both", "cross", "exclusive"):
            seen = users.setdefault(match.group(1), [])
            if label not in seen:
                seen.append(label)
    return json.dumps({"counts": counts, "users": users})


def combine(partials: list[str], query: str, wrong: bool = False) -> str:
    """The answer from every piece's counts; ``wrong`` answers plausibly but falsely."""
    kind, a, b = question(query)
    counts = dict.fromkeys(LABELS, 0)
    users: dict[int, set[str]] = {}
    for partial in partials:
        try:
            data = json.loads(partial)
            for label, n in data["counts"].items():
                counts[label] = counts.get(label, 0) + int(n)
            for user, labels in data["users"].items():
                users.setdefault(int(user), set()).update(labels)
        except (TypeError, ValueError, KeyError, AttributeError):
            continue
    if kind == "count":
        return str(counts[a] + (20 if wrong else 0))
    if kind in ("most", "least"):
        ranked = sorted(LABELS, key=lambda label: counts[label], reverse=kind == "most")
        return ranked[1] if wrong else ranked[0]
    if kind == "compare":
        answers = ["less common", "same frequency", "more common"]
        sign = (counts[a] > counts[b]) - (counts[a] < counts[b])
        return answers[(sign + 1 + (1 if wrong else 0)) % 3]
    with_a = sorted(u for u, labels in users.items() if a in labels)
    with_b = {u for u, labels in users.items() if b in labels}
    if kind == "both":
        pairs = set(itertools.combinations(with_a, 2))
    elif kind == "cross":
        pairs = {(min(x, y), max(x, y)) for x in with_a for y in with_b if x != y}
    else:
        pairs = set(itertools.combinations([u for u in with_a if u not in with_b], 2))
    shift = 1 if wrong else 0
    return "\n".join(f"({x + shift}, {y + shift})" for x, y in sorted(pairs))
