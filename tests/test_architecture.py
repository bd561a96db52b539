"""The layout docs/architecture.md draws is the code's: layers, no cycles, no reaching into privates.

The module graph is built from every import under rlm/ (at the top, in functions and under
TYPE_CHECKING alike: an import a type checker follows is still a dependency). The layers
and the tree are read from docs/architecture.md, so the page cannot drift from the code.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import rlm

ROOT = Path(rlm.__file__).parent
DOC = ROOT.parent / "docs" / "architecture.md"
#: Private names of other libraries that rlm uses on purpose.
FOREIGN_PRIVATE = {
    ("rlm/repl/sandbox/_launch.py", "_exit"),  # os._exit: the documented way to leave a forked child
    ("rlm/repl/sandbox/reaper.py", "_exit"),  # os._exit: the reaper leaves with the kernel's status
    ("rlm/bench/peer_worker.py", "_make_llm_tools"),  # dspy's internals: the peer bench measures them
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def imports(name: str) -> Iterator[tuple[int, str]]:
    """Each rlm module ``name`` imports, with the line; ``from . import x`` imports ``x``, not the package."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
            named = [f"{base}.{alias.name}" for alias in node.names]
            targets = [t for t in named if t in MODULES] or [base]
        else:
            continue
        for target in targets:
            if target in MODULES and target != name:
                yield node.lineno, target


GRAPH = {name: {target for _, target in imports(name)} for name in MODULES}


def documented_layers() -> list[list[str]]:
    """The layer table of docs/architecture.md, top to bottom: each row's modules and packages."""
    text = DOC.read_text(encoding="utf-8")
    table = text.split("<!-- layers -->", 2)[1]
    rows = [line for line in table.splitlines() if line.startswith("| ") and not line.startswith("| layer")]
    return [[m.strip(" `") for m in row.split("|")[2].split(",")] for row in rows]


def layer_of(name: str, layers: list[list[str]]) -> int:
    """The index of the layer holding ``name`` (the longest listed prefix wins)."""
    best, found = -1, -1
    for i, members in enumerate(layers):
        for member in members:
            inside = name == member or (member != "rlm" and name.startswith(member + "."))  # "rlm": the package
            if inside and len(member) > best:
                best, found = len(member), i
    assert found >= 0, f"{name} is in no layer of docs/architecture.md"
    return found


def test_no_import_cycles_under_rlm() -> None:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in GRAPH[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for name in MODULES:
        if name not in index:
            visit(name)
    assert len(GRAPH) > 100 and sum(map(len, GRAPH.values())) > 300  # the graph was built
    assert not cycles, f"import cycles: {cycles}"


def test_each_layer_imports_only_its_own_and_those_below() -> None:
    layers = documented_layers()
    assert len(layers) >= 8
    upward = [f"{name} (layer {layer_of(name, layers)}) imports {target} (layer {layer_of(target, layers)})"
              for name, targets in GRAPH.items() for target in targets
              if layer_of(target, layers) < layer_of(name, layers)]
    assert not upward, "\n".join(upward)


def test_the_core_imports_no_widget_runtime_or_transport() -> None:
    banned = ("rlm.widgets", "rlm.runtime", "rlm.lm.transport")
    found = [f"{n} imports {t}" for n, ts in GRAPH.items() if n.startswith("rlm.core") for t in ts
             if t.startswith(banned)]
    assert not found


def defined_private_names(tree: ast.AST) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return {n for n in names if n.startswith("_")}


def test_no_module_touches_another_modules_private_members() -> None:
    """``obj._name`` is fine on ``self``/``cls`` and for names the module defines itself; never across modules."""
    found = []
    for path in MODULES.values():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        own = defined_private_names(tree)
        where = str(path.relative_to(ROOT.parent))
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
                if isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
                    continue
                if node.attr not in own and (where, node.attr) not in FOREIGN_PRIVATE:
                    found.append(f"{where}:{node.lineno}: {ast.unparse(node)}")
            elif isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("rlm")):
                found += [f"{where}:{node.lineno}: imports {a.name}" for a in node.names
                          if a.name.startswith("_") and not a.name.startswith("__")]
    assert not found, "\n".join(found)


def test_at_most_ten_modules_sit_loose_at_the_top() -> None:
    """``__init__.py`` and ``__main__.py`` are the package's hooks (``import rlm``, ``python -m rlm``), not modules."""
    loose = sorted(p.name for p in ROOT.glob("*.py") if p.name not in ("__init__.py", "__main__.py"))
    assert len(loose) <= 10, loose


def documented_tree() -> set[str]:
    """The module paths the tree of docs/architecture.md names.

    A line ``rlm/pkg/`` opens a package; indented lines below it name its modules (``a.py, b.py``
    before the description); ``rlm/x.py`` names a module, ``rlm/pkg/**`` a whole subtree.
    """
    block = DOC.read_text(encoding="utf-8").split("<!-- tree -->", 2)[1].split("```")[1]
    named: set[str] = set()
    package = ""
    for line in block.splitlines():
        if line.startswith("rlm/"):
            head = line.split()[0].removeprefix("rlm/")
            if head.endswith("/"):
                package = head
            else:
                named.add(head)
        elif line.startswith("  ") and line.strip():
            entries = re.split(r"\s{2,}", line.strip())[0]
            named.update(package + n for n in re.findall(r"[\w]+\.py", entries))
    return named


def test_the_documented_tree_names_every_module_and_only_real_ones() -> None:
    named = documented_tree()
    files = {str(p.relative_to(ROOT)) for p in ROOT.rglob("*.py")}
    subtrees = [n.removesuffix("**") for n in named if n.endswith("**")]
    missing = sorted(f for f in files if f not in named and not any(f.startswith(s) for s in subtrees))
    stale = sorted(n for n in named if not n.endswith("**") and n not in files)
    assert not missing, f"modules docs/architecture.md does not name: {missing}"
    assert not stale, f"docs/architecture.md names modules that do not exist: {stale}"


#: The sizes the brief sets: a module near 400 lines at most (without packing them), a function 80.
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 80


def test_no_module_over_400_lines() -> None:
    sizes = {str(path.relative_to(ROOT.parent)): len(path.read_text(encoding="utf-8").splitlines())
             for path in MODULES.values()}
    over = [f"{path}: {lines} lines" for path, lines in sorted(sizes.items()) if lines > MAX_MODULE_LINES]
    assert not over, f"modules over {MAX_MODULE_LINES} lines (split them along a seam): {over}"


def functions(tree: ast.AST, prefix: str = "") -> Iterator[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]:
    """Every function and method, nested ones too, with its qualified name (``Class.method``, ``f.inner``)."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield prefix + node.name, node
            yield from functions(node, f"{prefix}{node.name}.")
        elif isinstance(node, ast.ClassDef):
            yield from functions(node, f"{prefix}{node.name}.")
        else:
            yield from functions(node, prefix)


def test_no_function_over_80_lines() -> None:
    over = []
    for path in MODULES.values():
        for name, node in functions(ast.parse(path.read_text(encoding="utf-8"))):
            lines = (node.end_lineno or node.lineno) - node.lineno + 1
            if lines > MAX_FUNCTION_LINES:
                over.append(f"{path.relative_to(ROOT.parent)}:{name}: {lines} lines")
    assert not over, f"functions over {MAX_FUNCTION_LINES} lines: {over}"


def test_the_size_checks_can_fail() -> None:
    """The walk finds methods and nested functions, and measures them from ``def`` to their last line."""
    source = "class A:\n    def m(self):\n        def inner():\n            pass\n" + "        x = 1\n" * 80
    found = {name: (node.end_lineno or 0) - node.lineno + 1 for name, node in functions(ast.parse(source))}
    assert found == {"A.m": 83, "A.m.inner": 2}
