"""The command lines the docs show: found, read against ``rlm ... --help``, and the concrete ones run.

A command line is a line of a shell block, or of a plain block, that starts with ``rlm `` or
``python -m rlm``, or a code span of the prose that does (``rlm ask ... --estimate``). Its
subcommands (``rlm bench sniah|oolong``: each of them) must be listed by the command's
``--help``, and every option it gives (``--model``, ``-o``) by its subcommand's ``--help``.
A line with nothing left to fill in once its ``[optional ...]`` groups are dropped (no
``FILE``, ``M``, ``...`` or ``a|b``) is run, in the page's order, in-process, against the
scripted endpoint: ``ask``, ``map``, ``view``, ``export`` and ``--version``; benchmarks and servers
only show their help.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import re
import shlex
from dataclasses import dataclass
from functools import cache

from doc_pages import SHELL, Page, code_spans

#: Commands run for real when a line is concrete; the others (benchmarks, servers) only --help.
RUN = ("ask", "map", "view", "export")
_PLACEHOLDER = re.compile(r"^(?:[A-Z][A-Z_]*|\.\.\.)$|\||\.\.\.")


@dataclass(frozen=True)
class CommandLine:
    where: str
    text: str
    #: From a shell block (run when concrete), not a code span or a plain block (checked only).
    shell: bool = False


def command_lines(page: Page) -> list[CommandLine]:
    found = []
    for block in page.blocks:
        if block.lang not in (*SHELL, "", "text"):
            continue
        lines = block.code.replace("\\\n", " ").split("\n")
        for n, line in enumerate(lines, start=1):
            text = line.strip()
            if (block.lang in SHELL and text.startswith(("rlm ", "python -m rlm"))) or looks_like_a_command(text):
                found.append(CommandLine(f"{page.name}:{block.line + n}", text, block.lang in SHELL))
    for paragraph in page.prose:
        for offset, span in code_spans(paragraph.text):
            span = span.replace("\\|", "|")
            if looks_like_a_command(span):
                found.append(CommandLine(f"{page.name}:{paragraph.line + offset}", span))
    return found


def looks_like_a_command(text: str) -> bool:
    """``rlm`` then an option or a subcommand (a plain block may also hold a progress line or a message)."""
    if text.startswith("python -m rlm."):
        return True
    if any(word.endswith(":") for word in text.split()[:3]):  # "rlm bench throughput: 5 parts": what rlm says
        return False
    second = text.split()[1] if text.startswith("rlm ") and len(text.split()) > 1 else ""
    return second.startswith("-") or second.split("|")[0] in subcommands(())


def words(text: str) -> list[str]:
    """The line's words without its trailing comment, quotes resolved."""
    try:
        return shlex.split(text, comments=True)
    except ValueError:
        return text.split("#", 1)[0].split()


def without_optional(tokens: list[str]) -> list[str]:
    """``tokens`` without ``[...]`` groups (which may span several words)."""
    kept, depth = [], 0
    for token in tokens:
        opened = depth > 0 or token.startswith("[")
        depth += token.count("[") - token.count("]")
        if not opened:
            kept.append(token)
    return kept


def concrete(tokens: list[str]) -> bool:
    return not any(_PLACEHOLDER.search(t) for t in tokens)


@cache
def help_of(path: tuple[str, ...]) -> str:
    """``rlm PATH --help`` as printed, run in-process."""
    from rlm.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
        main([*path, "--help"])
    return out.getvalue()


def subcommands(path: tuple[str, ...]) -> set[str]:
    text = help_of(path)
    section = text.split("positional arguments:", 1)[1] if "positional arguments:" in text else ""
    section = re.split(r"\n\S", section, maxsplit=1)[0]
    return set(re.findall(r"^ {4}([a-z][\w-]*)", section, re.M))


def options(path: tuple[str, ...]) -> set[str]:
    return set(re.findall(r"(?<![\w-])(--?[A-Za-z][\w-]*)", help_of(path)))


def check(line: CommandLine) -> tuple[list[str], tuple[str, ...], list[str]]:
    """(findings, the subcommand path, the tokens to run if the line is concrete, else [])."""
    tokens = words(line.text)
    if tokens[:2] == ["python", "-m"]:
        module = tokens[2]
        if importlib.util.find_spec(module) is None:
            return [f"{line.where}: `{line.text}`: no module {module}"], (), []
        return [], (), []
    path: list[str] = []
    rest = tokens[1:]
    while rest and not rest[0].startswith(("-", "[")):
        alternatives = rest[0].split("|")
        known = subcommands(tuple(path))
        if not known or not all(a in known for a in alternatives):
            break
        path.append(alternatives[0])
        rest.pop(0)
    expected = subcommands(tuple(path))
    if rest and expected and not rest[0].startswith(("-", "[")) and rest[0] != "...":
        unknown = [a for a in rest[0].split("|") if a not in expected]
        name = " ".join(["rlm", *path])
        return [f"{line.where}: `{line.text}`: `{name}` has no command {', '.join(unknown)} "
                f"(it has {', '.join(sorted(expected))})"], (), []
    findings = []
    for alternative in (tokens[len(path)].split("|") if path else [""]):
        at = (*path[:-1], alternative) if path else ()
        given = {t.strip("[]").split("=")[0] for t in rest if t.strip("[]").startswith("-") and t != "-"}
        unknown = sorted(given - options(at))
        if unknown:
            findings.append(f"{line.where}: `{line.text}`: `rlm {' '.join(at)}` has no option {', '.join(unknown)} "
                            f"(see `rlm {' '.join(at)} --help`)")
    runnable = without_optional(tokens)
    return findings, tuple(path), runnable if line.shell and concrete(runnable) else []
