"""Advice in rlm's strings (error messages, docstrings) names only parameters that exist.

A message that says "pass RLM(pricing=...)" when RLM takes no ``pricing`` sends the user
to a TypeError. Every ``Name(keyword=...)`` written in a string literal under rlm/, for the
classes a user builds, is checked against the real signature.
"""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

import rlm
from rlm.config import Settings

ROOT = Path(rlm.__file__).parent
#: What a user builds, and what advice names: their keywords must exist.
BUILT = {name: getattr(rlm, name) for name in (
    "RLM", "Endpoint", "Limits", "Budget", "BatchAPI", "Hedge", "RetryPolicy", "SandboxConfig", "ModelInfo",
    "Cache", "Pricing")}
BUILT["Settings"] = Settings
CALL = re.compile(r"\b(" + "|".join(BUILT) + r")\(")
KEYWORD = re.compile(r"(\w+)\s*=(?!=)")


def strings(tree: ast.AST) -> set[tuple[int, str]]:
    """Every string literal's text (not a ``__repr__``'s); an f-string's formatted parts read as ``...``."""
    reprs = {id(n) for f in ast.walk(tree) if isinstance(f, ast.FunctionDef) and f.name == "__repr__"
             for n in ast.walk(f)}
    found = set()
    for node in ast.walk(tree):
        if id(node) in reprs:
            continue
        if isinstance(node, ast.JoinedStr):
            text = "".join(v.value if isinstance(v, ast.Constant) else "..." for v in node.values)
            found.add((node.lineno, str(text)))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            found.add((node.lineno, node.value))
    return found


def keywords_at_depth_one(text: str, start: int) -> list[str]:
    """The ``name=`` keywords of the call whose ``(`` is at ``start``, not those of calls nested in it."""
    depth, names, i = 0, [], start
    while i < len(text):
        char = text[i]
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
            if depth == 0:
                break
        elif depth == 1:
            match = KEYWORD.match(text, i)
            if match and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
                names.append(match.group(1))
                i = match.end()
                continue
        i += 1
    return names


def advice() -> list[tuple[str, int, str, str]]:
    found = []
    for path in sorted(ROOT.rglob("*.py")):
        for line, text in sorted(strings(ast.parse(path.read_text(encoding="utf-8")))):
            for call in CALL.finditer(text):
                for name in keywords_at_depth_one(text, call.end() - 1):
                    found.append((str(path.relative_to(ROOT.parent)), line, call.group(1), name))
    return found


def test_the_scan_finds_the_advice_it_checks() -> None:
    seen = {(cls, name) for _, _, cls, name in advice()}
    assert ("Budget", "max_cost_usd") in seen and ("Endpoint", "pricing") in seen and ("RLM", "endpoint") in seen


def test_every_parameter_advised_in_a_string_exists() -> None:
    wrong = []
    for where, line, cls, name in advice():
        parameters = inspect.signature(BUILT[cls]).parameters
        if name not in parameters and not any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
            wrong.append(f"{where}:{line}: {cls}({name}=...) but {cls} takes {', '.join(parameters)}")
    assert not wrong, "\n".join(wrong)
