"""Parse root-model replies: the code blocks to run, the final answer, and long REPL output.

Models write sloppy markdown, so every function here is lenient about layout (indented or
unterminated fences, Windows line endings, markdown decoration, cut-off output) and strict
about intent: a line-leading ``FINAL(...)`` / ``FINAL_VAR(...)`` outside any code is an answer
(``find_final``), and so is one that ends the reply's last line of text
(``find_trailing_final``, which the loop reads only in a reply without code); prose that
merely mentions FINAL mid-sentence never ends a run. Every function is linear in the reply.
"""

from __future__ import annotations

import ast
import re
import textwrap
from array import array
from bisect import bisect_left
from dataclasses import dataclass
from typing import Literal

__all__ = ["Final", "find_code_blocks", "find_final", "find_trailing_final", "mentions_final", "prose_of",
           "truncate_output", "unrun_fences"]

#: Fence tags that mean "run this": ours, and what models trained on other scaffolds write.
_EXEC_LANGS = frozenset({"repl", "python", "py", "python3", "py3", "ipython", "pycon"})
_STRING_PREFIXES = frozenset({"", "r", "u", "b", "f", "rb", "br", "fr", "rf"})
_OPEN_FENCE = re.compile(r"^[ \t]*(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
_CLOSE_FENCE = re.compile(r"^[ \t]*(?P<fence>`{3,}|~{3,})[ \t]*$")
_FINAL_CALL = re.compile(r"^[ \t>*#\-]*(?P<name>FINAL_VAR|FINAL)\(", re.MULTILINE)
#: FINAL( anywhere in a line (not glued to a word or a backtick), and what may follow one ending a reply.
_MID_CALL = re.compile(r"(?<![\w`])(?P<name>FINAL_VAR|FINAL)\(")
_AFTER_LAST_CALL = re.compile(r"[\s.!*_]*")
#: The characters a call's parentheses depend on; the scan skips all others.
_TOKENS = re.compile(r"[()\\'\"\n]")


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


class _Closer:
    """Where a '(' closes (None: never), for every '(' from ``lo`` on, in time linear in the text.

    The rules are Python's, leniently: outside strings a backslash escapes the next
    character (so escaped quotes and LaTeX ``\\(`` are not structure); a string must close
    (a single-quoted one on its own line), else its quote is a stray character; a quote
    right after a word is an apostrophe. The scan from a '(' is a walk over the text that,
    from any position, goes the same way whichever '(' it started from; so one pass from
    the right settles every '(' at once (``first[j]``: where the walk from token ``j``
    first closes more than it opened), and a reply of 200,000 cut-off calls costs what
    one long call does. Only the characters that matter are visited (``_TOKENS``).
    """

    def __init__(self, source: str, lo: int) -> None:
        self.pos = array("q", (m.start() for m in _TOKENS.finditer(source, lo)))
        n = self.n = len(self.pos)
        chars = [source[p] for p in self.pos]
        free = self._unescaped(chars)
        # Per token, the first unescaped token from it on that ends a '...' / "..." string (its
        # quote, or a line break), and that starts a ''' / """ triple.
        stop = {q: array("q", [n]) * (n + 1) for q in "'\""}
        triple = {q: array("q", [n]) * (n + 1) for q in "'\""}
        for i in range(n - 1, -1, -1):
            for q in "'\"":
                stop[q][i] = i if free[i] and chars[i] in (q, "\n") else stop[q][i + 1]
                triple[q][i] = i if free[i] and source.startswith(q * 3, self.pos[i]) else triple[q][i + 1]
        first = array("q", [n]) * (n + 1)
        for j in range(n - 1, -1, -1):
            ch, step = chars[j], j + 1
            if ch == ")":
                first[j] = j
                continue
            if ch == "(":
                inner = first[j + 1]
                first[j] = n if inner == n else first[inner + 1]
                continue
            if ch == "\\":
                step = j + 2 if j + 1 < n and self.pos[j + 1] == self.pos[j] + 1 else j + 1
            elif ch in "'\"" and _opens_string(source, self.pos[j]):
                if source.startswith(ch * 3, self.pos[j]):
                    close = triple[ch][j + 3]
                    step = close + 3 if close < n else j + 1
                else:
                    close = stop[ch][j + 1]
                    step = close + 1 if close < n and chars[close] == ch else j + 1
            first[j] = first[min(step, n)]
        self.first = first

    def __call__(self, paren: int) -> int | None:
        """Where the '(' at index ``paren`` of the text closes, or None."""
        close = self.first[bisect_left(self.pos, paren) + 1]
        return None if close >= self.n else self.pos[close]

    def _unescaped(self, chars: list[str]) -> bytearray:
        """Which tokens no backslash escapes: those after an even run of backslashes.

        Every walk enters a run of backslashes at its first one, so this holds for all walks.
        """
        free = bytearray(len(chars))
        run, last = 0, -2
        for i, ch in enumerate(chars):
            if self.pos[i] != last + 1:
                run = 0
            free[i] = not run & 1
            run = run + 1 if ch == "\\" else 0
            last = self.pos[i]
        return free


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


def _final_of(name: str, arg: str) -> Final:
    if name == "FINAL_VAR":
        return Final("var", arg.strip(" \t\n'\"`"))
    literal = _string_literal_value(arg)
    return Final("text", arg if literal is None else literal)


def find_final(text: str | None) -> Final | None:
    """The final answer in a root reply (the last line-leading FINAL/FINAL_VAR call), or None.

    Code and inline code are ignored so examples never end a run. An unterminated call (cut-off
    output) takes the rest of the reply, but a later complete call still wins over it.
    Linear in the reply on every input (``_Closer``).
    """
    if not text:
        return None
    lines = _lines(text)
    source = "\n".join(lines)
    prose = _masked_prose(lines)
    closer: _Closer | None = None
    last: tuple[str, int, int | None] | None = None
    pos = 0
    while (match := _FINAL_CALL.search(prose, pos)) is not None:
        arg_start = match.end()
        closer = closer or _Closer(source, arg_start - 1)
        close = _line_close(source, arg_start, closer(arg_start - 1))
        last = (match["name"], arg_start, close)
        pos = arg_start if close is None else close + 1
    if last is None:
        return None
    name, arg_start, close = last
    return _final_of(name, source[arg_start:close].strip())


def find_trailing_final(text: str | None) -> Final | None:
    """A FINAL(...) / FINAL_VAR(...) inside a sentence that ends the reply's last line of text, or None.

    Real replies end "Final answer: FINAL(42)" or "So the answer is FINAL(42).": the call is
    not at the start of its line, so ``find_final`` does not take it. What may follow it is
    sentence punctuation and markdown emphasis; a call in inline code is followed by its
    closing backtick, so it never qualifies. The caller decides when to take it (the loop:
    in a reply without code).
    """
    if not text:
        return None
    lines = _lines(text)
    source, prose = "\n".join(lines), _masked_prose(lines)
    calls = list(_MID_CALL.finditer(prose))
    if not calls:
        return None
    closer = _Closer(source, calls[0].end() - 1)
    for match in reversed(calls):
        close = closer(match.end() - 1)
        if close is not None and _AFTER_LAST_CALL.fullmatch(prose, close + 1) is not None:
            return _final_of(match["name"], source[match.end():close].strip())
    return None


def mentions_final(text: str) -> bool:
    """Whether the reply's text (not its code blocks) writes FINAL( or FINAL_VAR( anywhere."""
    return _MID_CALL.search(_masked_prose(_lines(text))) is not None


def unrun_fences(text: str) -> list[str]:
    """The tags of the reply's fenced blocks that hold something and are not run ("" for a bare fence)."""
    return [f.lang for f in _scan_fences(_lines(text)) if f.lang not in _EXEC_LANGS and "".join(f.body).strip()]


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
    """The reply without its fenced blocks: what it says in words ("" for a reply that is only code)."""
    lines = _lines(text)
    fenced = {n for fence in _scan_fences(lines) for n in range(fence.start, fence.end + 1)}
    return "\n".join(line for n, line in enumerate(lines) if n not in fenced).strip()


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
