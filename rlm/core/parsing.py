"""Parse root-model replies: the code blocks to run, the final answer, and long REPL output.

Models write sloppy markdown, so every function here is lenient about layout (indented or
unterminated fences, Windows line endings, markdown decoration, cut-off output) and strict
about intent: only line-leading ``FINAL(...)`` / ``FINAL_VAR(...)`` outside any code counts as
an answer, so prose that merely mentions FINAL never ends a run.
"""

from __future__ import annotations

import ast
import re
import textwrap
from dataclasses import dataclass
from typing import Literal

__all__ = ["Final", "find_code_blocks", "find_final", "prose_of", "truncate_output"]

#: Fence tags that mean "run this": ours, and what models trained on other scaffolds write.
_EXEC_LANGS = frozenset({"repl", "python", "py", "python3", "py3", "ipython", "pycon"})
_STRING_PREFIXES = frozenset({"", "r", "u", "b", "f", "rb", "br", "fr", "rf"})
_OPEN_FENCE = re.compile(r"^[ \t]*(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
_CLOSE_FENCE = re.compile(r"^[ \t]*(?P<fence>`{3,}|~{3,})[ \t]*$")
_FINAL_CALL = re.compile(r"^[ \t>*#\-]*(?P<name>FINAL_VAR|FINAL)\(", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class Final:
    """A final answer: literal text, or the name of a REPL variable holding the answer."""

    kind: Literal["text", "var"]
    value: str


@dataclass(frozen=True, slots=True)
class _Fence:
    """One fenced block as line indices, so callers can both extract and mask it."""

    lang: str
    start: int
    end: int
    body: tuple[str, ...]
    closed: bool = True


def _lines(text: str) -> list[str]:
    """Split on any line ending so CRLF / CR replies parse exactly like LF ones."""
    return text.replace("\r\n", "\n").replace("\r", "\n").split("\n")


def _scan_fences(lines: list[str]) -> list[_Fence]:
    """Find fenced blocks of every language; an unclosed fence runs to the end (cut-off output)."""
    fences: list[_Fence] = []
    decorations: list[str] = []  # bare outer fences around a code block, whose closing line is no opening
    i = 0
    while i < len(lines):
        opening = _OPEN_FENCE.match(lines[i])
        if opening is None or (opening["fence"][0] == "`" and "`" in opening["info"]):
            i += 1
            continue
        marker = opening["fence"]
        words = opening["info"].split()
        lang = words[0].lower().strip("{}.") if words else ""  # ```{python} and ```.python too
        if not lang and decorations and decorations[-1][0] == marker[0] and len(marker) >= len(decorations[-1]):
            decorations.pop()  # the close of a decorative fence
            i += 1
            continue
        if not lang and _next_opens_exec(lines, i + 1):
            decorations.append(marker)  # a bare fence around a ```python block: the inner block is the code
            i += 1
            continue
        j = i + 1
        while j < len(lines):
            closing = _CLOSE_FENCE.match(lines[j])
            if (
                closing is not None
                and closing["fence"][0] == marker[0]
                and len(closing["fence"]) >= len(marker)
            ):
                break
            j += 1
        fences.append(_Fence(lang, i, min(j, len(lines) - 1), tuple(lines[i + 1 : j]), j < len(lines)))
        i = j + 1
    return fences


def _next_opens_exec(lines: list[str], i: int) -> bool:
    """Whether the first non-blank line from ``i`` opens an executable fence."""
    while i < len(lines) and not lines[i].strip():
        i += 1
    if i >= len(lines):
        return False
    opening = _OPEN_FENCE.match(lines[i])
    words = opening["info"].split() if opening is not None else []
    return bool(words) and words[0].lower().strip("{}.") in _EXEC_LANGS


def _block_code(body: tuple[str, ...]) -> str:
    """Trim blank edge lines and dedent, so list-indented blocks still run as valid Python."""
    lines = list(body)
    while lines and not lines[0].strip():
        lines.pop(0)
    while lines and not lines[-1].strip():
        lines.pop()
    return textwrap.dedent("\n".join(lines))


def find_code_blocks(text: str | None, *, closed_only: bool = False) -> list[str]:
    """Code of every ```repl / ```python / ```py (or ~~~) block, in order, for the REPL to run.

    Other languages and bare fences are documentation, not instructions, so they are skipped;
    blocks with no code at all are dropped because running them only wastes a turn.
    ``closed_only`` drops a block whose fence never closes: in a reply cut at its output
    cap, that block is cut too.
    """
    if not text:
        return []
    blocks: list[str] = []
    for fence in _scan_fences(_lines(text)):
        if fence.lang in _EXEC_LANGS and (fence.closed or not closed_only):
            code = _block_code(fence.body)
            if code:
                blocks.append(code)
    return blocks


def _masked_prose(lines: list[str]) -> str:
    """The reply with fenced blocks blanked, keeping every offset unchanged.

    Inline `code` needs no masking: its opening backtick precedes any FINAL inside it on the
    same line, so the line-start rule already rejects it.
    """
    fenced = {n for fence in _scan_fences(lines) for n in range(fence.start, fence.end + 1)}
    return "\n".join(" " * len(line) if n in fenced else line for n, line in enumerate(lines))


def _opens_string(text: str, i: int) -> bool:
    """Whether the quote at i starts a string rather than being an apostrophe (it's, 5'10")."""
    k = i
    while k > 0 and (text[k - 1].isalnum() or text[k - 1] == "_"):
        k -= 1
    return text[k:i].lower() in _STRING_PREFIXES


def _string_end(text: str, i: int) -> int | None:
    """Index just past the string literal opening at i, or None if it never closes.

    Single-quoted strings must close on their own line, as in Python; otherwise the quote is
    treated as a stray character so one unmatched quote in prose cannot swallow the answer.
    """
    quote = text[i]
    triple = text.startswith(quote * 3, i)
    j = i + (3 if triple else 1)
    while j < len(text):
        ch = text[j]
        if ch == "\\":
            j += 2
        elif triple and text.startswith(quote * 3, j):
            return j + 3
        elif not triple and ch == quote:
            return j + 1
        elif not triple and ch == "\n":
            return None
        else:
            j += 1
    return None


def _match_parens(text: str, start: int, known: dict[int, int | None]) -> None:
    """Record in known where the '(' at start, and every '(' seen after it, closes (None: never).

    One scan serves every later FINAL( it passes over, so a reply full of cut-off calls stays
    linear instead of rescanning to the end once per call. Outside strings a backslash escapes
    the next character, so escaped quotes (\\") and LaTeX \\( \\) are not structure.
    """
    stack = [start]
    i = start + 1
    while i < len(text) and stack:
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        if ch in "'\"" and _opens_string(text, i):
            end = _string_end(text, i)
            if end is not None:
                i = end
                continue
        elif ch == "(":
            stack.append(i)
        elif ch == ")":
            known[stack.pop()] = i
        i += 1
    for open_pos in stack:
        known[open_pos] = None


def _string_literal_value(arg: str) -> str | None:
    """The value of arg if it is exactly a Python str literal, so FINAL("x") means x."""
    if not arg or arg[-1] not in "'\"":
        return None
    try:
        tree = ast.parse(arg, mode="eval")
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return None
    body = tree.body
    if isinstance(body, ast.Constant) and isinstance(body.value, str):
        return body.value
    return None


def find_final(text: str | None) -> Final | None:
    """The final answer in a root reply (the last line-leading FINAL/FINAL_VAR call), or None.

    Code and inline code are ignored so examples never end a run. An unterminated call (cut-off
    output) takes the rest of the reply, but a later complete call still wins over it.
    """
    if not text:
        return None
    lines = _lines(text)
    source = "\n".join(lines)
    prose = _masked_prose(lines)
    closes: dict[int, int | None] = {}
    result: Final | None = None
    pos = 0
    while (match := _FINAL_CALL.search(prose, pos)) is not None:
        arg_start = match.end()
        if arg_start - 1 not in closes:
            _match_parens(source, arg_start - 1, closes)
        close = _line_close(source, arg_start, closes[arg_start - 1])
        if close is None:
            arg = source[arg_start:].strip()
            pos = arg_start
        else:
            arg = source[arg_start:close].strip()
            pos = close + 1
        if match["name"] == "FINAL_VAR":
            result = Final("var", arg.strip(" \t\n'\"`"))
        else:
            literal = _string_literal_value(arg)
            result = Final("text", arg if literal is None else literal)
    return result


def _line_close(source: str, arg_start: int, close: int | None) -> int | None:
    """Where a one-line FINAL(...) really ends: the line's last ")" when the match stops short.

    Answers carry smileys and stray parentheses ("FINAL(yes :))", "FINAL(see 3) above)"): a
    call that closes on its own line before the line's last ")", with the line ending in ")",
    takes everything up to that last one.
    """
    if close is None:
        return None
    line_end = source.find("\n", arg_start)
    line_end = len(source) if line_end < 0 else line_end
    if close >= line_end:
        return close
    line = source[arg_start:line_end].rstrip()
    if not line.endswith(")") or "FINAL" in source[close:line_end]:
        return close
    return arg_start + len(line) - 1


def prose_of(text: str) -> str:
    """The reply without its fenced blocks: what a forced answer says in words, never code.

    A reply that is only code leaves its code's text, unfenced, rather than nothing.
    """
    lines = _lines(text)
    fences = _scan_fences(lines)
    fenced = {n for fence in fences for n in range(fence.start, fence.end + 1)}
    prose = "\n".join(line for n, line in enumerate(lines) if n not in fenced).strip()
    if prose:
        return prose
    return "\n\n".join(_block_code(f.body) for f in fences).strip()


def truncate_output(text: str, limit: int) -> str:
    """Keep the head (~60%) and tail of long REPL output so the root sees how it starts and ends.

    The marker states how much was cut, so the root knows to narrow its query instead of
    assuming it saw everything. limit <= 0 disables truncation.
    """
    if limit <= 0 or len(text) <= limit:
        return text
    head = limit * 6 // 10
    tail = limit - head
    omitted = len(text) - limit
    return f"{text[:head]}\n... [{omitted} characters omitted] ...\n{text[len(text) - tail:]}"
