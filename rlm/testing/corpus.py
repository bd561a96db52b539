"""A reproducible long document for demos, notebooks and tests (no downloads).

``make_report`` writes a company's annual report: many sections of routine text,
a few of which mention given topics, so a question has a known right answer.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

_SUBJECTS = [
    "The logistics division",
    "Our Nordic subsidiary",
    "The cloud platform team",
    "Regional sales",
    "The procurement office",
    "Customer support",
    "The research lab",
    "Facilities management",
    "The treasury group",
    "Manufacturing in Leipzig",
    "The retail network",
    "Human resources",
]
_VERBS = [
    "reported steady volumes",
    "renegotiated two supplier contracts",
    "reduced energy use by 4%",
    "hired eleven engineers",
    "opened a training centre",
    "closed a legacy warehouse",
    "migrated its billing system",
    "met every quarterly target",
    "cut delivery times",
    "completed a safety audit",
    "launched a loyalty programme",
    "refinanced a credit line",
]
_TAILS = [
    "in line with the plan approved last year",
    "despite higher freight costs",
    "ahead of the schedule set by the board",
    "with no impact on headcount",
    "after a pilot in two cities",
    "as part of the efficiency programme",
]


@dataclass(frozen=True, slots=True)
class Report:
    """The document text and which section numbers mention each planted topic."""

    text: str
    sections: int
    planted: dict[str, tuple[int, ...]]


def _filler(rng: random.Random, sentences: int) -> str:
    return " ".join(f"{rng.choice(_SUBJECTS)} {rng.choice(_VERBS)} {rng.choice(_TAILS)}." for _ in range(sentences))


def make_report(
    sections: int = 200,
    *,
    sentences_per_section: int = 12,
    planted: dict[str, str] | None = None,
    per_topic: int = 3,
    seed: int = 7,
) -> Report:
    """A report of ``sections`` sections; each topic's sentence is planted in ``per_topic`` of them.

    ``planted`` maps a topic name to a sentence template with ``{n}`` for the section number.
    """
    rng = random.Random(seed)
    planted = (
        planted
        if planted is not None
        else {
            "merger": (
                "Section {n} notes that the board approved the merger with Halvorsen Maritime, "
                "closing in the third quarter."
            ),
            "lawsuit": "Section {n} discloses a lawsuit filed by a former distributor over unpaid commissions.",
        }
    )
    where: dict[str, tuple[int, ...]] = {
        topic: tuple(sorted(rng.sample(range(1, sections + 1), per_topic))) for topic in planted
    }
    parts = []
    for n in range(1, sections + 1):
        body = _filler(rng, sentences_per_section)
        extra = [template.format(n=n) for topic, template in planted.items() if n in where[topic]]
        if extra:
            sentences = body.split(". ")
            for sentence in extra:
                sentences.insert(rng.randrange(1, len(sentences)), sentence.rstrip("."))
            body = ". ".join(sentences)
        parts.append(f"## Section {n}\n\n{body}\n")
    return Report("\n".join(parts), sections, where)
