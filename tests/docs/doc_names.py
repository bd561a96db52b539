"""What the docs name must exist: modules, attributes, and every keyword given to a call of rlm's.

A small static reader, not a type checker: it follows names through a page's blocks in
order (imports, ``x = Known(...)``, ``with ... as x``), knows the fixtures
(``doc_fixtures``), and types a call by its return annotation, so ``result =
rlm.completion(...)`` makes ``result`` an ``RLMResult`` and ``result.fork(at=2)`` is checked
against ``RLMResult.fork``. Only things from the ``rlm`` package are judged; anything it
cannot follow is left alone. Prose is read too: a code span or a comment such as
```` `RLM(pricing=...)` ```` or ```` `Limits.step_timeout` ```` is checked the same way, with
``rlm`` standing for the module or an ``RLM``, ``result`` for an ``RLMResult``, and so on.
"""

from __future__ import annotations

import ast
import builtins
import dataclasses
import importlib
import importlib.util
import inspect
import io
import re
import tokenize
import types
import typing
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import rlm
from rlm import RLM, Checkpoint, MapResult, RLMResult, Session, Trace
from rlm.core.estimate import Estimate
from rlm.testing import ScriptedLM

#: What a name means in prose (and for a page's fixtures): a conventional instance, or the module.
CONVENTIONAL: dict[str, type] = {"result": RLMResult, "partial": RLMResult, "fixed": RLMResult, "s": Session,
                                 "session": Session, "lm": ScriptedLM, "cp": Checkpoint, "trace": Trace,
                                 "found": Estimate, "answers": MapResult, "results": MapResult}


@dataclass(frozen=True)
class Known:
    """What an expression is known to be: an object (module, class, function), or an instance of ``cls``."""

    obj: Any = None
    cls: type | None = None
    #: ``obj`` is a function reached through an instance: its first parameter is bound.
    bound: bool = False


UNKNOWN = Known()


@dataclass
class Reader:
    """Reads blocks and snippets of one page in order, collecting findings (``page:line: message``)."""

    page: str
    scope: dict[str, Known] = field(default_factory=dict)
    findings: list[str] = field(default_factory=list)
    line: int = 0

    def fail(self, message: str) -> None:
        finding = f"{self.page}:{self.line}: {message}"
        if finding not in self.findings:
            self.findings.append(finding)

    # ------------------------------------------------------------------ statements

    def statements(self, tree: ast.Module, first_line: int, strict_names: bool) -> None:
        """Follow a block's statements; ``strict_names``: a name nothing defines is a finding (blocks not run)."""
        for statement in tree.body:
            self.line = first_line + statement.lineno
            nodes = list(ast.walk(statement))
            if strict_names:
                self.undefined(statement, nodes)
            for node in nodes:
                if isinstance(node, (ast.Call, ast.Attribute)):
                    self.line = first_line + node.lineno
                    self.known(node)
            self.line = first_line + statement.lineno
            self.bind(statement)

    def undefined(self, statement: ast.stmt, nodes: list[ast.AST]) -> None:
        local = {n.id for n in nodes if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
        for node in nodes:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                local |= {a.arg for a in ast.walk(node.args) if isinstance(a, ast.arg)}
            if isinstance(node, ast.comprehension):
                local |= {n.id for n in ast.walk(node.target) if isinstance(n, ast.Name)}
        for node in nodes:
            if (isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and node.id not in self.scope
                    and node.id not in local and not hasattr(builtins, node.id)):
                self.fail(f"`{node.id}` is not defined: define it in an earlier block of the page, or add it to the "
                          "fixtures (tests/docs/doc_fixtures.py)")

    def bind(self, statement: ast.stmt) -> None:
        if isinstance(statement, ast.Import):
            for alias in statement.names:
                top = alias.name.split(".")[0]
                target = self.module(alias.name)
                self.scope[alias.asname or top] = Known(target if alias.asname else self.module(top))
        elif isinstance(statement, ast.ImportFrom) and statement.module:
            source = self.module(statement.module)
            for alias in statement.names:
                self.scope[alias.asname or alias.name] = self.attribute(Known(source), alias.name)
        elif isinstance(statement, ast.Assign):
            value = self.known(statement.value)
            for target in statement.targets:
                for name in ast.walk(target):
                    if isinstance(name, ast.Name):
                        self.scope[name.id] = value if isinstance(target, ast.Name) else UNKNOWN
        elif isinstance(statement, (ast.With, ast.AsyncWith)):
            for item in statement.items:
                if isinstance(item.optional_vars, ast.Name):
                    self.scope[item.optional_vars.id] = self.entered(self.known(item.context_expr))
            for inner in statement.body:
                self.bind(inner)
        elif isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            self.scope[statement.name] = UNKNOWN
        else:
            for node in ast.walk(statement):
                if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                    self.scope[node.id] = UNKNOWN
                elif isinstance(node, ast.ExceptHandler) and node.name:
                    self.scope[node.name] = UNKNOWN

    def module(self, name: str) -> Any:
        if name != "rlm" and not name.startswith("rlm."):
            return None
        try:
            return importlib.import_module(name)
        except ImportError as exc:
            self.fail(f"`import {name}` fails: {exc}")
            return None

    # ---------------------------------------------------------------- expressions

    def known(self, node: ast.AST) -> Known:
        if isinstance(node, ast.Name):
            return self.scope.get(node.id, UNKNOWN)
        if isinstance(node, ast.Attribute):
            return self.attribute(self.known(node.value), node.attr)
        if isinstance(node, ast.Await):
            return self.known(node.value)
        if isinstance(node, ast.Call):
            return self.call(self.known(node.func), node)
        return UNKNOWN

    def attribute(self, base: Known, name: str) -> Known:
        if base.cls is not None:
            return self.instance_attribute(base.cls, name)
        obj = base.obj
        if obj is None or not ours(obj):
            return UNKNOWN
        if isinstance(obj, types.ModuleType) and not hasattr(obj, name):
            try:
                return Known(importlib.import_module(f"{obj.__name__}.{name}"))
            except ImportError:
                pass
        if isinstance(obj, type) and not hasattr(obj, name) and name in fields_of(obj):
            return self.instance_attribute(obj, name)  # a field: `Limits.step_timeout` names the setting
        try:
            return Known(getattr(obj, name))
        except AttributeError:
            self.fail(f"`{qualified(obj)}.{name}` does not exist")
            return UNKNOWN

    def instance_attribute(self, cls: type, name: str) -> Known:
        if not ours(cls):
            return UNKNOWN
        member = inspect.getattr_static(cls, name, None)
        if member is None and name not in fields_of(cls):
            self.fail(f"`{cls.__name__}` has no attribute `{name}`")
            return UNKNOWN
        if callable(member) and not isinstance(member, type):
            return Known(getattr(cls, name), bound=not isinstance(member, (staticmethod, classmethod)))
        if isinstance(member, property) and member.fget is not None:
            return Known(cls=returned(member.fget))
        return Known(cls=one_class(hints(cls).get(name) or made_in_init(cls).get(name)))

    def call(self, func: Known, node: ast.Call) -> Known:
        obj = func.obj
        if obj is None or not callable(obj) or not ours(obj):
            return UNKNOWN
        self.check_arguments(obj, node, func.bound)
        if isinstance(obj, type):
            return Known(cls=obj)
        return Known(cls=returned(obj))

    def check_arguments(self, obj: Any, node: ast.Call, bound: bool) -> None:
        try:
            signature = inspect.signature(obj)
        except (TypeError, ValueError):
            return
        starred = any(isinstance(a, ast.Starred) for a in node.args) or any(k.arg is None for k in node.keywords)
        keywords = {k.arg: None for k in node.keywords if k.arg is not None}
        positional = [None] * (len(node.args) + bound)
        try:
            if starred:
                signature.bind_partial(**{k: None for k in keywords if accepts(signature, k)})
                missing = [k for k in keywords if not accepts(signature, k)]
                if missing:
                    raise TypeError(f"got an unexpected keyword argument {missing[0]!r}")
            else:
                signature.bind_partial(*positional, **keywords)
        except TypeError as exc:
            self.fail(f"`{qualified(obj)}(...)`: {exc} (its parameters: {signature})")

    def entered(self, value: Known) -> Known:
        """What ``with value as x`` binds ``x`` to."""
        if value.cls is not None:
            enter = getattr(value.cls, "__enter__", None)
            entered = returned(enter) if enter is not None else None
            return Known(cls=entered or value.cls)
        return UNKNOWN


def ours(obj: Any) -> bool:
    """Whether ``obj`` is rlm's to judge (a module, class or function of the rlm package)."""
    if isinstance(obj, types.ModuleType):
        return obj.__name__ == "rlm" or obj.__name__.startswith("rlm.")
    module = getattr(obj, "__module__", None) or ""
    return module == "rlm" or module.startswith("rlm.")


def qualified(obj: Any) -> str:
    if isinstance(obj, types.ModuleType):
        return obj.__name__
    return getattr(obj, "__qualname__", None) or getattr(obj, "__name__", repr(obj))


def accepts(signature: inspect.Signature, name: str) -> bool:
    params = signature.parameters
    return name in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


@cache
def hints(cls: type) -> dict[str, Any]:
    try:
        return typing.get_type_hints(cls)
    except Exception:  # noqa: BLE001 - a forward reference we cannot resolve: no types, not a finding
        return {}


def fields_of(cls: type) -> set[str]:
    names = set(hints(cls)) | set(made_in_init(cls))
    for klass in cls.__mro__:
        names |= set(getattr(klass, "__annotations__", {}))
        names |= set(getattr(klass, "__slots__", ()))
    if dataclasses.is_dataclass(cls):
        names |= {f.name for f in dataclasses.fields(cls)}
    return names


@cache
def made_in_init(cls: type) -> dict[str, Any]:
    """The attributes ``__init__`` sets on ``self`` (``self.x = ...``), with their annotation where it has one."""
    made: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        init = klass.__dict__.get("__init__")
        if not ours(klass) or init is None:
            continue
        try:
            tree = ast.parse(inspect.cleandoc("\n" + inspect.getsource(init)))
        except (OSError, TypeError, SyntaxError):
            continue
        namespace = vars(inspect.getmodule(init) or rlm)
        for node in ast.walk(tree):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(
                node, ast.AnnAssign) else []
            for target in targets:
                on_self = isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name)
                if on_self and target.value.id == "self":  # type: ignore[attr-defined]
                    made[target.attr] = annotation(node, namespace)
    return made


def annotation(node: ast.AST, namespace: dict[str, Any]) -> Any:
    if not isinstance(node, ast.AnnAssign):
        return None
    try:
        return eval(ast.unparse(node.annotation), dict(namespace))  # rlm's own annotation text
    except Exception:  # noqa: BLE001 - a name only imported for type checking: unknown
        return None


def one_class(hint: Any) -> type | None:
    """``T`` from ``T`` or ``T | None``; None for anything else."""
    if isinstance(hint, type):
        return hint
    members = [m for m in typing.get_args(hint) if m is not type(None)]
    return members[0] if len(members) == 1 and isinstance(members[0], type) else None


def returned(func: Any) -> type | None:
    """The class a function is annotated to return, when it is one."""
    try:
        found = typing.get_type_hints(func).get("return")
    except Exception:  # noqa: BLE001 - unresolvable annotations: unknown, not a finding
        return None
    return found if isinstance(found, type) and found is not type(None) else None


# ------------------------------------------------------------------------- prose

_CALL_START = re.compile(r"(?<![\w.])([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)\(")
_FILE = re.compile(r"\.(py|md|js|css|json|jsonl|txt|toml|csv|html|sqlite\d?|db|ipynb)$")
_DOTTED = re.compile(r"^([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+)(?:\(\))?$")


def prose_reader(page: str, repl_names: dict[str, Any]) -> Reader:
    """A reader whose scope is what prose may name: rlm's public names, the REPL's helpers, conventional names."""
    reader = Reader(page)
    reader.scope.update({name: Known(getattr(rlm, name)) for name in rlm.__all__})
    reader.scope.update({name: Known(value) for name, value in repl_names.items()})
    reader.scope.update({name: Known(cls=cls) for name, cls in CONVENTIONAL.items()})
    reader.scope.update({"rlm": Known(rlm), "_an_rlm": Known(cls=RLM)})
    return reader


def check_snippet(reader: Reader, snippet: str, line: int) -> None:
    """Check the calls and dotted names in one code span or comment."""
    reader.line = line
    dotted = _DOTTED.match(snippet.strip())
    if dotted and dotted.group(1).split(".")[0] in reader.scope and not _FILE.search(snippet):
        names = dotted.group(1).split(".")
        through_module(reader, names)
    for call in calls_in(snippet):
        try:
            node = ast.parse(call, mode="eval").body
        except SyntaxError:
            node = loose_call(call)
        if isinstance(node, ast.Call):
            head = ast.unparse(node.func).split(".")[0]
            if head in reader.scope:
                if head == "rlm":
                    node.func = ast.parse(module_or_instance(ast.unparse(node.func)), mode="eval").body
                reader.line = line
                reader.known(node)


def through_module(reader: Reader, names: list[str]) -> None:
    expression = module_or_instance(".".join(names))
    reader.known(ast.parse(expression, mode="eval").body)


def module_or_instance(dotted: str) -> str:
    """``rlm.x``: the module's ``x`` when it has one, else an ``RLM``'s (``rlm.completion``)."""
    names = dotted.split(".")
    if names[0] != "rlm" or len(names) < 2:
        return dotted
    module_has = hasattr(rlm, names[1]) or importlib.util.find_spec(f"rlm.{names[1]}") is not None
    return dotted if module_has else ".".join(["_an_rlm", *names[1:]])


def calls_in(text: str) -> list[str]:
    """Every ``name(...)`` in ``text`` with its balanced arguments (unbalanced ones are left out)."""
    found = []
    for match in _CALL_START.finditer(text):
        depth, end = 0, None
        for i in range(match.end() - 1, len(text)):
            depth += {"(": 1, ")": -1}.get(text[i], 0)
            if depth == 0:
                end = i
                break
        if end is not None:
            found.append(text[match.start():end + 1])
    return found


def loose_call(call: str) -> ast.Call | None:
    """A call written loosely (``Budget(max_calls=, max_tokens=...)``): its name and keyword names only."""
    name, _, inner = call.partition("(")
    try:
        func = ast.parse(name, mode="eval").body
    except SyntaxError:
        return None
    depth, keywords = 0, []
    for piece in re.split(r"([()\[\]{},])", inner[:-1]):
        depth += {"(": 1, "[": 1, "{": 1, ")": -1, "]": -1, "}": -1}.get(piece, 0)
        if depth == 0 and (found := re.match(r"\s*([A-Za-z_]\w*)\s*=(?!=)", piece)):
            keywords.append(ast.keyword(arg=found.group(1), value=ast.Constant(None)))
    return ast.Call(func=func, args=[], keywords=keywords) if keywords else None


def comments(code: str) -> list[tuple[int, str]]:
    """The comments of a Python block, with their line (1-based); none if it does not tokenize."""
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(code).readline))
    except (tokenize.TokenError, SyntaxError, IndentationError):
        return []
    return [(t.start[0], t.string.lstrip("#").strip()) for t in tokens if t.type == tokenize.COMMENT]
