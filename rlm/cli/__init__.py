"""The ``rlm`` command line: the command table and ``main``; each command is a module of this package.

Subcommands live in ``COMMANDS``: each entry names a function that declares its
arguments and one that runs it, so new commands are added without touching
``main``. ``rlm serve``/``rlm mcp`` are ``rlm.serve.cli``'s, ``rlm bench`` is ``rlm.bench``'s.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from typing import NamedTuple, NoReturn

from rlm import bench
from rlm.errors import ConfigError
from rlm.serve import cli as serve_cli

__all__ = ["COMMANDS", "Command", "main"]


class Command(NamedTuple):
    """One subcommand: its help line, its argument declarations, and its body."""

    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


def lazy(module: str, help: str) -> Command:
    """A command of ``rlm.cli.<module>`` (its ``add_arguments`` and ``run``), imported only when it is named.

    Why: ``rlm --help`` and every other command need not wait for what one command imports.
    """

    def add_arguments(parser: argparse.ArgumentParser) -> None:
        importlib.import_module(f"rlm.cli.{module}").add_arguments(parser)

    def run(args: argparse.Namespace) -> int:
        code: int = importlib.import_module(f"rlm.cli.{module}").run(args)
        return code

    return Command(help, add_arguments, run)


COMMANDS: dict[str, Command] = {
    "ask": lazy("ask", "answer a question over a file, a directory or stdin (simulated model without a key)"),
    "map": lazy("map", "a resumable map over a .jsonl or .csv file: one sub-call per row, answers as JSONL"),
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
    "serve-fake": lazy("serve_fake", "serve a scripted OpenAI-compatible model on 127.0.0.1 (for demos and "
                                     "benchmarks)"),
    "bench": Command(
        help="run a benchmark: throughput, sandbox (costs), scale (big contexts, the loop's cost), "
             "sandbox-attacks (the attack table), answer quality (sniah, oolong, pairs, codeqa)",
        add_arguments=bench.add_arguments,
        run=bench.run,
    ),
    "view": lazy("view", "write a trace log (.jsonl) as one HTML page (call tree, latency timeline) that opens "
                         "offline; several logs side by side"),
    "export": lazy("export", "runs (trace logs, folders of them, a bench results file) as chat training examples "
                             "(JSONL)"),
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

