"""The ``rlm`` command line: every command lives in this package (``ask``, ``map``, the rest here).

Subcommands live in ``COMMANDS``: each entry names a function that declares its
arguments and one that runs it, so new commands are added without touching
``main``.
"""

from __future__ import annotations

import argparse
import math
import random
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from types import FrameType
from typing import TYPE_CHECKING, NamedTuple, NoReturn

from rlm import bench
from rlm.cli import arguments
from rlm.errors import ConfigError
from rlm.serve import cli as serve_cli

if TYPE_CHECKING:  # the server and the trace reader load when their command runs
    from rlm.testing import ScriptedRequest

__all__ = ["COMMANDS", "Command", "main"]

_CANNED_ANSWER = "This is a canned answer from rlm serve-fake."
_LOG = "a trace log (.jsonl) written by RLM(log_dir=...) or Trace.to_jsonl"


class Command(NamedTuple):
    """One subcommand: its help line, its argument declarations, and its body."""

    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


def _parse_latency(text: str) -> float | tuple[float, float]:
    """``0.2`` is a fixed latency, ``0.1,0.5`` a uniform range."""
    try:
        parts = [float(p) for p in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected SECONDS or LO,HI, got {text!r}") from None
    if len(parts) == 1 and parts[0] >= 0:
        return parts[0]
    if len(parts) == 2 and 0 <= parts[0] <= parts[1]:
        return parts[0], parts[1]
    raise argparse.ArgumentTypeError(f"expected SECONDS or LO,HI with 0 <= LO <= HI, got {text!r}")


def _serve_fake_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``serve-fake``."""
    parser.add_argument("--port", type=arguments.number(int, 0, 65535), default=8000,
                        help="port on 127.0.0.1; 0 picks a free one (default 8000)")
    parser.add_argument(
        "--latency",
        type=_parse_latency,
        default=0.0,
        metavar="SECONDS|LO,HI",
        help="delay before each reply: fixed, or uniform in [LO, HI]",
    )
    parser.add_argument(
        "--latency-sigma", type=float, default=0.0, metavar="SIGMA",
        help="sub-call latency lognormal with median --latency and this sigma (0: off); seeded by --seed",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of --latency-sigma's draws (0)")
    parser.add_argument(
        "--reply", default=None, help="answer every request with TEXT (default: root FINAL(...), sub echoes the prompt)"
    )
    parser.add_argument(
        "--root-reply", default=None, metavar="TEXT", help="answer root calls with TEXT (overrides --reply)"
    )
    parser.add_argument(
        "--admit", type=arguments.number(int, 1), default=None, metavar="N",
        help="answer 429 (with Retry-After) beyond N requests in flight"
    )
    parser.add_argument(
        "--admit-retry-after", type=arguments.number(float, 0), default=0.5, metavar="SECONDS",
        help="Retry-After of --admit's 429s (0.5)"
    )


def _echo_prompt(request: ScriptedRequest) -> str:
    """Sub-call default: the prompt's start, so callers can see what was asked."""
    return request.prompt[:80]


def _canned_final(request: ScriptedRequest) -> str:
    """Root default: finish at once, so any RLM pointed at the server terminates."""
    return f"FINAL({_CANNED_ANSWER})"


def lognormal_latency(median: float, sigma: float, seed: int) -> Callable[[ScriptedRequest], float]:
    """Sub-call latencies drawn from a lognormal (a heavy tail, as endpoints have); root calls take ``median``."""
    draws = random.Random(seed)

    def latency(request: ScriptedRequest) -> float:
        return median if request.role == "root" else median * math.exp(draws.gauss(0.0, sigma))

    return latency


def _serve_fake(args: argparse.Namespace) -> int:
    """Run a ScriptedLM in the foreground until SIGINT or SIGTERM."""
    reply: str | None = args.reply
    root_reply: str | None = args.root_reply if args.root_reply is not None else reply
    root = _canned_final if root_reply is None else lambda request: root_reply
    sub = _echo_prompt if reply is None else lambda request: reply
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        """Only flag the stop: shutting the server down belongs to the main flow."""
        stop.set()

    from rlm.testing import ScriptedLM

    latency = args.latency
    if args.latency_sigma:
        if args.latency_sigma < 0 or not isinstance(args.latency, float):
            print("rlm serve-fake: --latency-sigma needs a sigma >= 0 and one --latency (the median)", file=sys.stderr)
            return 2
        latency = lognormal_latency(args.latency, args.latency_sigma, args.seed)
    # Counters only: a long benchmark would otherwise keep every request body.
    lm = ScriptedLM(root=root, sub=sub, latency=latency, port=args.port, record=False)
    if args.admit is not None:
        lm.admit(args.admit, retry_after=args.admit_retry_after)
    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        try:
            lm.start()
        except OSError as exc:
            print(f"rlm serve-fake: cannot listen on 127.0.0.1:{args.port}: {exc}", file=sys.stderr)
            return 1
        print(f"serving on {lm.base_url} (Ctrl-C to stop)", flush=True)
        stop.wait()
    finally:
        lm.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


def _view_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``rlm view``."""
    parser.add_argument("log", nargs="+", type=arguments.input_file(_LOG),
                        help=f"{_LOG}; 2 to 8 logs: the runs side by side; a results file of rlm bench --log-dir: "
                        "every question")
    parser.add_argument("-o", "--output", default=None, type=arguments.output_file("a file name for the page (.html)"),
                        help="the HTML file to write (default: the log's name with .html; for several, "
                        "<first>-compare.html)")


def _view(args: argparse.Namespace) -> int:
    """Write the page and print its path; exit code 2 for a missing, unreadable or empty log."""
    from rlm.errors import TraceFormatError
    from rlm.trace.view import write_pages

    try:
        output = write_pages(args.log, args.output)
    except FileNotFoundError as exc:
        print(f"rlm view: no such file: {exc.filename}", file=sys.stderr)
        return 2
    except UnicodeDecodeError as exc:
        print(f"rlm view: a log is not UTF-8 text ({exc.reason}); pass {_LOG}", file=sys.stderr)
        return 2
    except (TraceFormatError, ValueError) as exc:
        print(f"rlm view: {exc}", file=sys.stderr)
        return 2
    print(output)
    return 0


def _export_arguments(parser: argparse.ArgumentParser) -> None:
    from rlm.cli import export

    export.add_arguments(parser)


def _export(args: argparse.Namespace) -> int:
    from rlm.cli import export

    return export.run(args)


def _ask_arguments(parser: argparse.ArgumentParser) -> None:
    from rlm.cli import ask

    ask.add_arguments(parser)


def _ask(args: argparse.Namespace) -> int:
    from rlm.cli import ask

    return ask.run(args)


def _map_arguments(parser: argparse.ArgumentParser) -> None:
    from rlm.cli import map as map_cli

    map_cli.add_arguments(parser)


def _map(args: argparse.Namespace) -> int:
    from rlm.cli import map as map_cli

    return map_cli.run(args)


COMMANDS: dict[str, Command] = {
    "ask": Command(
        help="answer a question over a file, a directory or stdin (simulated model without a key)",
        add_arguments=_ask_arguments,
        run=_ask,
    ),
    "map": Command(
        help="a resumable map over a .jsonl or .csv file: one sub-call per row, answers as JSONL",
        add_arguments=_map_arguments,
        run=_map,
    ),
    "serve": Command(
        help="serve RLMs as an OpenAI-compatible endpoint (POST /v1/chat/completions) on 127.0.0.1",
        add_arguments=serve_cli.serve_arguments,
        run=serve_cli.serve,
    ),
    "mcp": Command(
        help="an MCP server (stdio, or --http): ask, estimate and map over documents with an RLM",
        add_arguments=serve_cli.mcp_arguments,
        run=serve_cli.mcp,
    ),
    "serve-fake": Command(
        help="serve a scripted OpenAI-compatible model on 127.0.0.1 (for demos and benchmarks)",
        add_arguments=_serve_fake_arguments,
        run=_serve_fake,
    ),
    "bench": Command(
        help="run a benchmark: throughput, sandbox (costs), scale (big contexts, the loop's cost), "
             "sandbox-attacks (the attack table), answer quality (sniah, oolong, pairs, codeqa)",
        add_arguments=bench.add_arguments,
        run=bench.run,
    ),
    "view": Command(
        help="write a trace log (.jsonl) as one HTML page (call tree, latency timeline) that opens offline; "
             "several logs side by side",
        add_arguments=_view_arguments,
        run=_view,
    ),
    "export": Command(
        help="runs (trace logs, folders of them, a bench results file) as chat training examples (JSONL)",
        add_arguments=_export_arguments,
        run=_export,
    ),
}


class _Parser(argparse.ArgumentParser):
    """A bad argument is one line on stderr, what is wrong and where to read more, and exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message}; see {self.prog} --help\n")


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The top-level parser with one subparser per registered command.

    Given the command line, only the command it names gets its arguments declared:
    ``rlm bench``'s import every benchmark, which ``rlm --help`` need not wait for.
    """
    from rlm import __version__

    parser = _Parser(prog="rlm", description="Recursive Language Models")
    parser.add_argument("--version", action="version", version=f"rlm {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    named = next((a for a in argv if not a.startswith("-")), None) if argv is not None else None
    for name, command in COMMANDS.items():
        sub = subparsers.add_parser(name, help=command.help, description=command.help)
        if argv is None or name == named:
            command.add_arguments(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``rlm`` script; returns the process exit code."""
    argv = sys.argv[1:] if argv is None else argv
    try:
        args, extra = build_parser(argv).parse_known_args(argv)
    except SystemExit as done:  # --help, --version, or a bad argument's one line: the code, returned
        return int(done.code or 0)  # argparse exits with 0 or 2
    if extra:  # named here, not by argparse: its message would name the top-level `rlm`
        return _say(args, f"unrecognized arguments: {' '.join(extra)}; see {_name(args)} --help", 2)
    try:
        return COMMANDS[args.command].run(args)
    except ConfigError as exc:  # a bad argument found once the command looked closer: exit 2, as argparse's
        return _say(args, str(exc), 2)
    except OSError as exc:  # a file the command could not read or write: no traceback for that either
        return _say(args, str(exc), 1)


def _name(args: argparse.Namespace) -> str:
    """The command as typed: ``rlm view``, ``rlm bench sniah``."""
    return " ".join(["rlm", args.command, *([args.bench] if getattr(args, "bench", None) else [])])


def _say(args: argparse.Namespace, message: str, code: int) -> int:
    """One line on stderr, prefixed with the command, and the exit code."""
    print(f"{_name(args)}: {' '.join(message.split())}", file=sys.stderr)
    return code

