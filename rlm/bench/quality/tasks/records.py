"""Labelled records for the OOLONG-style tasks: short questions whose kind (the label) is never written.

Each record is ``Date: Mar 03, 2023 || User: 48213 || Instance: What is the capital of Peru?``.
An instance is written from one template of its label (``programs.labelled.TEMPLATES``)
filled from the word lists below; its label is what the generator chose, kept beside it.
"""

from __future__ import annotations

import datetime
import random
import string
from dataclasses import dataclass

from ..programs.labelled import LABELS, PREAMBLE, TEMPLATES

_WORDS: dict[str, tuple[str, ...]] = {
    "plural": ("marbles", "tennis balls", "paper clips", "grains of rice", "oranges", "bricks", "teaspoons",
               "golf balls", "sugar cubes", "coins"),
    "container": ("shoebox", "bathtub", "school bus", "suitcase", "shipping container", "jam jar", "wheelbarrow"),
    "city": ("Lagos", "Lima", "Osaka", "Kraków", "Porto", "Nairobi", "Hanoi", "Quito", "Tbilisi", "Perth"),
    "event": ("the first moon landing happen", "the Berlin Wall fall", "the Titanic sink", "the printing press "
              "appear in Europe", "the first modern Olympics open", "the Suez Canal open"),
    "landmark": ("the Eiffel Tower", "Machu Picchu", "the Great Sphinx", "Table Mountain", "the Burj Khalifa",
                 "Angkor Wat", "the Golden Gate Bridge", "Mount Kilimanjaro"),
    "animal": ("elephant", "dog", "horse", "cat", "camel", "penguin", "giraffe", "goat"),
    "category": ("animal", "instrument", "mineral", "plant", "board game", "fabric", "vehicle"),
    "trait": ("its loud call", "its bright colour", "its hardness", "its sweet smell", "its long history",
              "its speed"),
    "habit": ("lives in the desert", "grows on rocks", "floats on water", "glows in the dark", "sleeps all winter"),
    "voyage": ("sank on its first voyage", "carried settlers to Plymouth", "reached the South Pole first",
               "circled the globe under Magellan"),
    "quality": ("loyal", "playful", "patient", "energetic", "gentle"),
    "country": ("Peru", "Norway", "Kenya", "Vietnam", "Chile", "Portugal", "Mongolia", "Ghana", "Laos", "Austria"),
    "org": ("the Red Cross", "Nokia", "IKEA", "the United Nations", "Toyota", "UNESCO"),
    "behaviour": ("migrate in winter", "shed their leaves", "hibernate", "glow at night", "sing at dawn"),
    "word": ("serendipity", "nostalgia", "entropy", "irony", "resilience", "utopia"),
    "device": ("telephone", "light bulb", "steam engine", "microwave oven", "bicycle", "printing press",
               "thermometer"),
    "concept": ("weather", "justice", "a virus", "empathy", "speed", "a theory"),
    "concept2": ("climate", "fairness", "a bacterium", "sympathy", "velocity", "a hypothesis"),
    "role": ("president", "astronaut", "composer", "queen", "mayor", "prime minister", "poet"),
    "deed": ("painted the Mona Lisa", "discovered penicillin", "first climbed Everest", "wrote Hamlet",
             "split the atom"),
    "work": ("The Odyssey", "Don Quixote", "War and Peace", "the Moonlight Sonata", "Pride and Prejudice"),
}
_START = datetime.date(2019, 1, 1).toordinal()
_END = datetime.date(2024, 12, 31).toordinal()


@dataclass(frozen=True, slots=True)
class Record:
    """One line of the context and the label it was written for."""

    user: int
    label: str
    line: str


def instance(rng: random.Random, label: str) -> str:
    """A question of the given label, from one of its templates."""
    template = rng.choice(TEMPLATES[label])
    slots = [name for _, name, _, _ in string.Formatter().parse(template) if name]
    return template.format(**{name: acronym(rng) if name == "acronym" else rng.choice(_WORDS[name])
                              for name in slots})


def acronym(rng: random.Random) -> str:
    """An upper-case acronym of three to five letters."""
    return "".join(rng.choice(string.ascii_uppercase) for _ in range(rng.randint(3, 5)))


def record(rng: random.Random, label: str, user: int) -> Record:
    """A record of ``user`` whose instance has ``label``."""
    date = datetime.date.fromordinal(rng.randint(_START, _END)).strftime("%b %d, %Y")
    text = instance(rng, label)
    return Record(user, label, f"Date: {date} || User: {user} || Instance: {text}")


def preamble() -> str:
    """What every query of these tasks says first: the record format and the labels."""
    return PREAMBLE.format(labels=", ".join(LABELS))
