"""S-NIAH: one or more "special magic numbers" planted in a long text; name the ones asked for.

The haystack is plain prose made from word lists, with no digits in it, so a needle's
seven-digit value is the only number in the context. Each needle is its own line at a
random depth. With one needle the answer must be exactly its number; with several,
the score is the F1 of the numbers named against the right ones.
"""

from __future__ import annotations

import argparse
import random

from ..items import Item, count, fill_lines, item_rng

GENERATOR = "sniah/v1"
_ADJ = ("quiet", "amber", "silver", "hollow", "northern", "crimson", "gentle", "bitter", "golden", "distant",
        "frozen", "hidden", "lucky", "narrow", "pale", "rapid", "sleepy", "steady", "velvet", "wild")
_NOUN = ("harbor", "falcon", "meadow", "lantern", "orchard", "glacier", "compass", "willow", "canyon", "beacon",
         "thistle", "quarry", "summit", "marble", "ember", "prairie", "anchor", "violet", "cellar", "spire")
_SUBJECTS = ("The old ferryman", "A travelling painter", "The village council", "Every spring the river",
             "The night watchman", "A group of students", "The baker on the corner", "Our neighbour",
             "The museum guide", "A stubborn mule", "The lighthouse keeper", "The choir")
_VERBS = ("remembered", "painted", "argued about", "walked past", "wrote a letter about", "quietly admired",
          "complained about", "sang of", "carried", "forgot", "measured", "dreamed of")
_OBJECTS = ("the long winter", "a broken bridge", "the market square", "an unfinished map", "the first snow",
            "a crooked fence", "the evening tide", "a forgotten song", "the empty station", "a borrowed coat")
_TAILS = ("before anyone else woke", "while the kettle boiled", "without saying a word", "as the bells rang",
          "long after the harvest", "under a grey sky", "with some reluctance", "for reasons nobody knew")


def needle(key: str, value: str) -> str:
    """The sentence a needle is written as."""
    return f"The special magic number for {key} is: {value}."


def _paragraph(rng: random.Random) -> str:
    return " ".join(f"{rng.choice(_SUBJECTS)} {rng.choice(_VERBS)} {rng.choice(_OBJECTS)} {rng.choice(_TAILS)}."
                    for _ in range(rng.randint(3, 6)))


def make_item(size: int, seed: int, index: int, needles: int = 1) -> Item:
    """A haystack of ``size`` tokens with ``needles`` needles, all of them asked for."""
    rng = item_rng(GENERATOR, size, seed, index)
    keys = rng.sample([f"{a}-{n}" for a in _ADJ for n in _NOUN], needles)
    values = [str(v) for v in rng.sample(range(1_000_000, 10_000_000), needles)]
    planted = [needle(k, v) for k, v in zip(keys, values, strict=True)]
    lines = fill_lines(size, lambda: _paragraph(rng), reserved=sum(count(p + "\n") for p in planted))
    for line in planted:
        lines.insert(rng.randint(0, len(lines)), line)
    context = "\n".join(lines) + "\n"
    asked = ", ".join(f"`{k}`" for k in keys)
    if needles == 1:
        query = (f"What is the special magic number for {asked} mentioned in the text? "
                 "Answer with the number only.")
    else:
        query = (f"What are the special magic numbers for {asked} mentioned in the text? "
                 "Answer with each key and its number, one per line.")
    return Item(task="sniah", id=item_id(size, seed, index, needles), size=size, seed=seed, index=index,
                kind="single" if needles == 1 else f"multi-{needles}", context=context, query=query,
                expected=values, metric="exact" if needles == 1 else "f1", answer_type="needles",
                tokens=count(context))


def item_id(size: int, seed: int, index: int, needles: int = 1) -> str:
    """The item's name in results files: stable while the generator's version is."""
    return f"{GENERATOR}/n{needles}/{size}/s{seed}/{index}"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``rlm bench sniah``'s arguments."""
    from ..cli import add_common

    add_common(parser)
    parser.add_argument("--needles", type=int, default=1, help="needles planted and asked for (default 1)")


def run(args: argparse.Namespace) -> int:
    """Run ``rlm bench sniah``."""
    from ..cli import fail, run_task
    from ..runner import Task

    if args.needles < 1:
        return fail("sniah", "--needles must be at least 1")
    needles = args.needles
    return run_task(args, Task("sniah", lambda s, seed, i: make_item(s, seed, i, needles),
                               lambda s, seed, i: item_id(s, seed, i, needles)))
