"""``rlm export``: runs as chat training examples, one JSON object per line.

``rlm export logs/ -o train.jsonl`` writes the root conversation of every run in
``logs/`` that ended with FINAL, in the OpenAI fine-tuning layout; ``rlm export
bench-results/oolong.jsonl --min-score 1`` takes a quality benchmark's logged runs that
scored at least 1, with the answer key in each example's metadata (``--format messages``).
What was left out, and why, goes to stderr. Bad input exits 2 with one line.
"""

from __future__ import annotations

import argparse
import sys

from rlm.cli import arguments
from rlm.trace.endings import ENDINGS

_SOURCE = "a trace log (.jsonl), a folder of them, or a results file of rlm bench ... --log-dir"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``rlm export``."""
    parser.add_argument("source", nargs="+", type=arguments.input_file(_SOURCE, directory=True),
                        help="trace logs (.jsonl), folders of them, or a results file of rlm bench ... --log-dir")
    parser.add_argument("--output", "-o", required=True, metavar="FILE",
                        type=arguments.output_file("a file name for the examples (.jsonl)"),
                        help="the JSONL file to write")
    parser.add_argument("--format", choices=("openai", "messages"), default="openai",
                        help="openai: the fine-tuning file ({messages} per line); messages: the messages and "
                             "each example's metadata (run, answer, a bench's score and answer key)")
    parser.add_argument("--sub-calls", action="store_true",
                        help="also each sub-call (whose whole prompt the trace kept) and each rlm_query child's run")
    parser.add_argument("--stopped", default="final", metavar="LIST",
                        help=f"the endings to keep, comma-separated, or 'all' (final; also {', '.join(ENDINGS[1:])})")
    parser.add_argument("--min-score", type=float, default=None, metavar="X",
                        help="a bench run's score at least X (runs with no score are left out)")


def run(args: argparse.Namespace) -> int:
    """Write the examples; exit 0, or 2 for a missing or unreadable source, 1 when nothing was exported."""
    from rlm.errors import ConfigError, TraceFormatError
    from rlm.trace.export import export

    stopped = None if args.stopped.strip() == "all" else [s.strip() for s in args.stopped.split(",") if s.strip()]
    try:
        done = export(list(args.source), args.output, format=args.format, sub_calls=args.sub_calls,
                      stopped=stopped, min_score=args.min_score)
    except (ConfigError, TraceFormatError, UnicodeDecodeError, OSError) as exc:
        print(f"rlm export: {exc}", file=sys.stderr)
        return 2
    if not done.runs:
        print(f"rlm export: no run in {' '.join(args.source)}; pass {_SOURCE}", file=sys.stderr)
        return 2
    for why, count in done.reasons().items():
        print(f"rlm export: left out {count}: {why}", file=sys.stderr)
    print(f"rlm export: {len(done.examples)} examples from {done.runs} runs -> {args.output}", file=sys.stderr)
    return 0 if done.examples else 1
