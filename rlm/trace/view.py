"""``rlm view run.jsonl``: turn a trace log into one HTML page that opens offline."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import TraceFormatError
from .trace import Trace


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``rlm view``."""
    parser.add_argument("log", help="a trace log (.jsonl) written by RLM(log_dir=...) or Trace.to_jsonl")
    parser.add_argument("-o", "--output", default=None, help="the HTML file to write (default: the log's name with .html)")


def run(args: argparse.Namespace) -> int:
    """Write the page and print its path; exit code 2 for a missing or unreadable log."""
    try:
        trace = Trace.from_jsonl(args.log)
    except FileNotFoundError:
        print(f"rlm view: no such file: {args.log}", file=sys.stderr)
        return 2
    except (TraceFormatError, UnicodeDecodeError) as exc:
        print(f"rlm view: {exc}", file=sys.stderr)
        return 2
    if not trace:
        print(f"rlm view: {args.log} holds no events", file=sys.stderr)
        return 2
    output = Path(args.output) if args.output else Path(args.log).with_suffix(".html")
    trace.save_html(output)
    print(output)
    return 0
