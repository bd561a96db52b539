"""The right program for code QA over a source tree: read every file with ``ast``, answer from the facts.

The context is a dict of path -> Python source. The host's generator asks its questions
from these same facts (``facts``), so what counts as a definition, a base class, a
parameter or a call is defined once, here. Sent whole to the sandbox as root code:
standard library only (see the package docstring).
"""

import ast
import json
import re

#: How a text reader sees a dict context (``rlm.bench.quality.items.as_text`` writes it).
FILE_HEADER = "### file: "
PIECE_CHARS = 40_000
QUESTIONS = {
    "where": "In which file is the top-level function or class `{name}` defined? Answer with the file's path only.",
    "bases": (
        "How many classes in these files name `{name}` directly among their base classes? "
        "Answer with the number only."
    ),
    "params": (
        "How many functions and methods in these files have a parameter named `{name}`? Answer with the number only."
    ),
    "callers": (
        "Which functions and methods call `{name}` in their own body, as `{name}(...)` or `x.{name}(...)` (a call "
        "inside a nested function counts for the nested one)? List each as path::qualified.name, for example "
        "pkg/mod.py::Class.method, one per line."
    ),
}
SUB_HEADER = (
    "Read the Python files below and reply with JSON only: a list of what in them answers the question "
    "(file paths, path::qualified.name entries, or one number), [] when nothing does."
)
_QUESTION = {kind: re.compile(re.escape(q).replace(re.escape("{name}"), r"([\w.]+)")) for kind, q in QUESTIONS.items()}


def _parse(source: str) -> list[ast.stmt]:
    """The module's statements; a file cut short is read block by block, skipping what does not parse."""
    try:
        return ast.parse(source).body
    except (SyntaxError, ValueError):
        pass
    blocks: list[list[str]] = [[]]
    for line in source.splitlines():
        starts = re.match(r"(def |async def |class |@)", line) is not None
        if starts and blocks[-1] and not blocks[-1][-1].startswith("@"):
            blocks.append([])
        blocks[-1].append(line)
    body: list[ast.stmt] = []
    for block in blocks:
        try:
            body.extend(ast.parse("\n".join(block)).body)
        except (SyntaxError, ValueError):
            continue
    return body


def _base_name(node: ast.expr) -> str:
    if isinstance(node, ast.Subscript):
        node = node.value
    if isinstance(node, ast.Attribute):
        return node.attr
    return node.id if isinstance(node, ast.Name) else ""


def _called(body: list[ast.stmt]) -> set[str]:
    """Names called in these statements, not looking into nested functions or classes."""
    names: set[str] = set()
    todo: list[ast.AST] = list(body)
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name):
                names.add(func.id)
            elif isinstance(func, ast.Attribute):
                names.add(func.attr)
        todo.extend(ast.iter_child_nodes(node))
    return names


def facts(path: str, source: str) -> dict[str, list[list[str]]]:
    """What one file defines: top-level names, classes and their bases, functions, their parameters and calls."""
    found: dict[str, list[list[str]]] = {"toplevel": [], "classes": [], "functions": []}
    body = _parse(source)
    found["toplevel"] = [[node.name] for node in body
                         if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
    todo: list[tuple[str, ast.stmt]] = [("", node) for node in body]
    while todo:
        prefix, node = todo.pop(0)
        if isinstance(node, ast.ClassDef):
            name = prefix + node.name
            found["classes"].append([f"{path}::{name}", *[_base_name(b) for b in node.bases]])
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            name = prefix + node.name
            args = node.args
            params = [a.arg for a in [*args.posonlyargs, *args.args, *args.kwonlyargs]]
            params += [a.arg for a in (args.vararg, args.kwarg) if a is not None]
            found["functions"].append([f"{path}::{name}", ",".join(params), ",".join(sorted(_called(node.body)))])
        else:
            todo.extend((prefix, child) for child in ast.iter_child_nodes(node) if isinstance(child, ast.stmt))
            continue
        todo.extend((name + ".", child) for child in node.body)
    return found


def question(query: str) -> tuple[str, str]:
    """(kind, name) of the question in the query."""
    for kind, pattern in _QUESTION.items():
        match = pattern.search(query)
        if match:
            return kind, match.group(1)
    raise ValueError(f"not a question this program answers: {query[:200]!r}")


def files_of(text: str) -> dict[str, str]:
    """The files of a piece of text written as ``### file: path`` sections."""
    files: dict[str, str] = {}
    path = None
    for line in text.splitlines(keepends=True):
        if line.startswith(FILE_HEADER):
            path = line[len(FILE_HEADER):].strip()
            files[path] = ""
        elif path is not None:
            files[path] += line
    return files


def pieces(context: dict[str, str]) -> list[str]:
    """Whole files, several to a piece up to PIECE_CHARS characters, each under its header."""
    out: list[str] = []
    for path, source in context.items():
        section = f"{FILE_HEADER}{path}\n{source}" + ("" if source.endswith("\n") else "\n")
        if out and len(out[-1]) + len(section) <= PIECE_CHARS:
            out[-1] += section
        else:
            out.append(section)
    return out


def sub_prompt(piece: str, query: str) -> str:
    """The sub-call that reads one piece's files."""
    return f"{SUB_HEADER}\n\nQuestion: {query}\n\nText:\n{piece}"


def parse_sub_prompt(prompt: str) -> tuple[str, str] | None:
    """(query, piece) of a prompt made by ``sub_prompt``, else None."""
    if not prompt.startswith(SUB_HEADER + "\n\nQuestion: "):
        return None
    query, _, piece = prompt[len(SUB_HEADER) + len("\n\nQuestion: "):].partition("\n\nText:\n")
    return query, piece


def solve_piece(piece: str, query: str) -> str:
    """What this piece's files contribute to the answer, as a JSON list."""
    kind, name = question(query)
    found: list[str] = []
    for path, source in files_of(piece).items():
        known = facts(path, source)
        if kind == "where":
            found += [path for [top] in known["toplevel"] if top == name]
        elif kind == "bases":
            found += [cls for cls, *bases in known["classes"] if name in bases]
        elif kind == "params":
            found += [fn for fn, params, _ in known["functions"] if name in params.split(",")]
        else:
            found += [fn for fn, _, calls in known["functions"] if name in calls.split(",")]
    return json.dumps(found)


def combine(partials: list[str], query: str, wrong: bool = False) -> str:
    """The answer from every piece's findings; ``wrong`` names the wrong file, count or functions."""
    kind, _ = question(query)
    found: list[str] = []
    for partial in partials:
        try:
            found += [str(x) for x in json.loads(partial)]
        except (TypeError, ValueError):
            continue
    if kind in ("bases", "params"):
        return str(len(found) + (20 if wrong else 0))
    if kind == "where":
        return (found[0] + ".bak" if wrong else found[0]) if found else "not found"
    return "\n".join(name + ("_" if wrong else "") for name in found)
