"""Code QA over a real source tree: where a name is defined, how many classes or functions match,
who calls a function. The answers come from reading each file with ``ast``.

The tree is this repository's (or ``--source DIR``): its Python files, a seeded choice of
them adding up to the requested size. A tree smaller than the size is used whole, and
the results say its real size. Questions are chosen so that their answer is unique:
a top-level name defined in one file only, a base class or a parameter name used at
least twice, a function called from two to twenty places.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
from collections import Counter
from pathlib import Path

from ....errors import ConfigError
from ..items import Item, as_text, count, item_rng
from ..programs.code import QUESTIONS, facts

GENERATOR = "codeqa/v1"
KINDS = ("where", "bases", "params", "callers")
MAX_FILE_BYTES = 1024 * 1024
_SKIP = frozenset({".git", ".hg", ".venv", "venv", "node_modules", "__pycache__", ".mypy_cache", ".ruff_cache",
                   ".pytest_cache", ".tox", "build", "dist", "site-packages"})


def default_source() -> Path:
    """This repository when rlm runs from a checkout, else the installed package's own directory."""
    package = Path(__file__).resolve().parents[3]
    return package.parent if (package.parent / "pyproject.toml").is_file() else package


@functools.lru_cache(maxsize=4)
def read_tree(root: str) -> dict[str, str]:
    """Every readable Python file under ``root`` by its relative posix path, sorted."""
    base = Path(root)
    files: dict[str, str] = {}
    for path in sorted(base.rglob("*.py")):
        relative = path.relative_to(base)
        if any(part in _SKIP or part.startswith(".") for part in relative.parts[:-1]) or not path.is_file():
            continue
        if path.stat().st_size > MAX_FILE_BYTES:
            continue
        try:
            files[relative.as_posix()] = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
    if not files:
        raise FileNotFoundError(f"no Python files under {root}")
    return files


class CodeTree:
    """One source tree: its files, their sizes and facts, computed once and shared by every item."""

    def __init__(self, root: str | Path) -> None:
        self.root = str(Path(root).resolve())
        self.files = read_tree(self.root)
        digest = hashlib.sha1(usedforsecurity=False)
        for path, text in self.files.items():
            digest.update(f"{path}\0{text}\0".encode("utf-8", "surrogatepass"))
        self.digest = digest.hexdigest()[:10]
        self._tokens: dict[str, int] = {}
        self._facts: dict[str, dict[str, list[list[str]]]] = {}

    def tokens(self, path: str) -> int:
        if path not in self._tokens:
            self._tokens[path] = count(as_text({path: self.files[path]}))
        return self._tokens[path]

    def facts(self, path: str) -> dict[str, list[list[str]]]:
        if path not in self._facts:
            self._facts[path] = facts(path, self.files[path])
        return self._facts[path]

    def item_id(self, size: int, seed: int, index: int) -> str:
        """The item's name: the generator's version and the tree's digest, so a changed tree is new work."""
        return f"{GENERATOR}/{self.digest}/{size}/s{seed}/{index}"

    def make_item(self, size: int, seed: int, index: int) -> Item:
        """A seeded choice of files adding up to ``size`` tokens, and one question about them."""
        rng = item_rng(f"{GENERATOR}/{self.digest}", size, seed, index)
        paths = sorted(self.files)
        rng.shuffle(paths)
        chosen: list[str] = []
        total = 0
        for path in paths:
            if total >= size:
                break
            chosen.append(path)
            total += self.tokens(path)
        chosen.sort()
        for offset in range(len(KINDS)):
            kind = KINDS[(index + offset) % len(KINDS)]
            candidates = self._candidates(kind, chosen)
            if candidates:
                break
        else:
            raise ConfigError(f"{len(chosen)} files of {self.root} give no question to ask: "
                              "pass a larger --sizes or a --source tree with more definitions")
        name = rng.choice(sorted(candidates))
        expected = candidates[name]
        context = {path: self.files[path] for path in chosen}
        metric, answer_type = {"where": ("exact", "text"), "callers": ("f1", "names")}.get(kind, ("number", "number"))
        return Item(task="codeqa", id=self.item_id(size, seed, index), size=size, seed=seed, index=index, kind=kind,
                    context=context, query=QUESTIONS[kind].format(name=name), expected=expected, metric=metric,
                    answer_type=answer_type, tokens=count(as_text(context)))

    def _candidates(self, kind: str, paths: list[str]) -> dict[str, str | int | list[str]]:
        """Names this kind of question may ask about in these files, each with its answer."""
        known = [(path, self.facts(path)) for path in paths]
        if kind == "where":
            defined = Counter(top for _, f in known for [top] in f["toplevel"])
            return {top: path for path, f in known for [top] in f["toplevel"] if defined[top] == 1}
        if kind == "bases":
            bases = Counter(b for _, f in known for _, *names in f["classes"] for b in set(names))
            return {b: n for b, n in bases.items() if n >= 2 and b not in ("", "object")}
        if kind == "params":
            params = Counter(p for _, f in known for _, ps, _ in f["functions"] for p in set(ps.split(",")))
            return {p: n for p, n in params.items() if 2 <= n <= 80 and p not in ("", "self", "cls")}
        callers: dict[str, set[str]] = {}
        for _, f in known:
            for function, _, calls in f["functions"]:
                for callee in filter(None, calls.split(",")):
                    callers.setdefault(callee, set()).add(function)
        return {c: sorted(fs) for c, fs in callers.items() if 2 <= len(fs) <= 20}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``rlm bench codeqa``'s arguments."""
    from ..cli import add_common

    add_common(parser)
    parser.add_argument("--source", default=None, metavar="DIR",
                        help="the source tree to ask about (default: this repository, or the installed package)")


def run(args: argparse.Namespace) -> int:
    """Run ``rlm bench codeqa``."""
    from ..cli import fail, run_task
    from ..runner import Task

    try:
        tree = CodeTree(args.source or default_source())
    except FileNotFoundError as exc:
        return fail("codeqa", f"{exc}: pass --source DIR, a directory with Python files")
    return run_task(args, Task("codeqa", tree.make_item, tree.item_id))
