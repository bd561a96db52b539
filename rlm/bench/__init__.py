"""Benchmarks for the command line: ``rlm bench throughput|sandbox|scale|startup|sandbox-attacks|hedge-sim|prompt|
documents``, and answer quality: ``rlm bench sniah|oolong|pairs|codeqa`` (``rlm.bench.quality``).

Each benchmark module has ``add_arguments(parser)`` and ``run(args) -> int``; they
load only when ``rlm bench`` runs, so importing rlm pays nothing for them.
"""

from __future__ import annotations

import argparse
import importlib

from .quality import BENCHES as QUALITY

#: name -> (module, one-line help)
BENCHES: dict[str, tuple[str, str]] = {
    "throughput": (
        "rlm.bench.throughput",
        "batched sub-calls against the ideal, client overhead, a 429 storm, a sequential loop, and the peers",
    ),
    "sandbox": ("rlm.bench.sandbox", "the kernel sandbox's costs: start-up, warm kernels, context, step, bridge"),
    "scale": ("rlm.bench.scale", "chunk at 100 MB-1 GB, a 1 GB context's delivery, the root loop's cost per iteration"),
    "startup": ("rlm.bench.startup", "how long `import rlm` and `rlm --help` take in a fresh process"),
    "sandbox-attacks": ("rlm.bench.sandbox_attacks", "every attack in a fresh host, per isolation level: the table"),
    "hedge-sim": ("rlm.bench.hedge_sim", "hedging policies on a simulated lognormal batch: speedup and extra requests"),
    "prompt": ("rlm.bench.prompt", "what the root reads: root input tokens and feedback size on scripted and real "
               "replies, offline"),
    "documents": ("rlm.bench.documents", "PDF, HTML and DOCX readers against the other libraries; documents made "
                  "ready in the sandbox"),
    **QUALITY,
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One sub-parser per benchmark."""
    subparsers = parser.add_subparsers(dest="bench", metavar="BENCH", required=True)
    for name, (module, help_text) in BENCHES.items():
        sub = subparsers.add_parser(name, help=help_text, description=help_text)
        importlib.import_module(module).add_arguments(sub)


def run(args: argparse.Namespace) -> int:
    """Run the benchmark named on the command line."""
    module, _ = BENCHES[args.bench]
    return int(importlib.import_module(module).run(args))
