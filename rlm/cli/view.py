"""``rlm view``: trace logs as one HTML page that opens offline; several logs side by side."""

from __future__ import annotations

import argparse
import sys

from rlm.cli import arguments

LOG = "a trace log (.jsonl) written by RLM(log_dir=...) or Trace.to_jsonl"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``rlm view``."""
    parser.add_argument("log", nargs="+", type=arguments.input_file(LOG),
                        help=f"{LOG}; 2 to 8 logs: the runs side by side; a results file of rlm bench --log-dir: "
                        "every question")
    parser.add_argument("-o", "--output", default=None, type=arguments.output_file("a file name for the page (.html)"),
                        help="the HTML file to write (default: the log's name with .html; for several, "
                        "<first>-compare.html)")


def run(args: argparse.Namespace) -> int:
    """Write the page and print its path; exit code 2 for a missing, unreadable or empty log."""
    from rlm.errors import TraceFormatError
    from rlm.trace.view import write_pages

    try:
        output = write_pages(args.log, args.output)
    except FileNotFoundError as exc:
        print(f"rlm view: no such file: {exc.filename}", file=sys.stderr)
        return 2
    except UnicodeDecodeError as exc:
        print(f"rlm view: a log is not UTF-8 text ({exc.reason}); pass {LOG}", file=sys.stderr)
        return 2
    except (TraceFormatError, ValueError) as exc:
        print(f"rlm view: {exc}", file=sys.stderr)
        return 2
    print(output)
    return 0
