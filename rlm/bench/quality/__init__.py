"""Answer quality on long contexts: task generators, methods, scripted harness policies, scorers.

``rlm bench sniah|oolong|pairs|codeqa`` runs the base model, an iterative summary agent,
a program-only root and the RLM (``llm_query`` only, or ``llm_batch``) on the same
seeded items and prints score, dollars, tokens, sub-calls and time per method
(docs/benchmarks.md). Importing this package loads nothing: each task module is an
``rlm bench`` subcommand that imports the rest when it runs.
"""

from __future__ import annotations

#: name -> (module, one-line help), merged into ``rlm.bench.BENCHES``.
BENCHES: dict[str, tuple[str, str]] = {
    "sniah": ("rlm.bench.quality.tasks.sniah", "answer quality: needles planted in a long text (single or multi)"),
    "oolong": ("rlm.bench.quality.tasks.oolong", "answer quality: count, rank and compare hidden labels of records"),
    "pairs": ("rlm.bench.quality.tasks.pairs", "answer quality: pairs of users whose hidden labels meet a condition"),
    "codeqa": ("rlm.bench.quality.tasks.codeqa", "answer quality: questions about a real source tree"),
}
