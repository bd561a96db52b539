"""Runs one page's examples as a notebook would: in order, one namespace, top-level ``await`` and magics.

Python blocks run in an IPython shell (the same machinery as a Jupyter cell), against the
scripted endpoint the environment points at (``OPENAI_BASE_URL``). ``repl`` blocks are
root code: each is the code a scripted root writes, run by a real completion in a session
(one REPL per page, so variables persist from block to block). Every ``RLM`` a block makes
runs root code in-process (``sandbox="local"``) unless its block is marked ``kernel``:
the examples are about rlm's API, and a kernel per example would cost the suite seconds.
"""

from __future__ import annotations

import ast
import functools
import re
import traceback
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from doc_fixtures import repl_context
from doc_pages import Block, Page

from rlm import RLM, SandboxConfig
from rlm.repl import REPLEnv
from rlm.testing import ScriptedLM

HOW = ("The docs' examples run as notebook cells, in order, one namespace per page, against rlm.testing.ScriptedLM "
       "(tests/docs/README.md). Fix the example or the code it shows. An example that cannot run here (a real "
       "endpoint, a GPU, a cluster) gets <!-- docs-test: check (why) --> on the line before its fence.")
REPL_NAMES = ("llm_query", "llm_batch", "rlm_query", "rlm_query_batched", "chunk", "count_tokens", "budget",
              "FINAL", "FINAL_VAR", "SHOW_VARS", "page_image", "answers")


class ExampleFailed(AssertionError):
    """A doc example did not run: the message names the page, the line and what to do."""


@dataclass
class Sandboxes:
    """What the patched ``RLM`` does with a block's ``sandbox=``: in-process unless the block is marked ``kernel``."""

    keep_kernel: bool = False
    made: list[weakref.ref[RLM]] = field(default_factory=list)
    #: What went wrong inside runs the examples started (a failed REPL step, a forced answer).
    problems: list[str] = field(default_factory=list)

    def watch(self, event: Any) -> None:
        """A trace subscriber on every RLM an example makes: a run that did not go right is a failure too."""
        if event.kind == "exec.end" and event.data.get("error"):
            self.problems.append(f"a REPL step failed:\n{str(event.data['error'])[-600:]}")
        elif event.kind == "run.end" and (event.data.get("status") != "ok" or event.data.get("fallback")):
            self.problems.append(f"a run ended {event.data.get('status')!r} (fallback={event.data.get('fallback')})")

    def close_all(self) -> None:
        for ref in self.made:
            made = ref()
            if made is not None:
                made.close()
        self.made.clear()


@contextmanager
def patched_rlm(sandboxes: Sandboxes) -> Iterator[None]:
    """``RLM(...)`` as the examples call it, with ``sandbox="local"`` unless the block keeps the kernel."""
    original = RLM.__init__

    @functools.wraps(original)
    def init(self: RLM, *args: Any, **kwargs: Any) -> None:
        chosen = kwargs.get("sandbox", "kernel")
        if not sandboxes.keep_kernel and (chosen == "kernel" or isinstance(chosen, SandboxConfig)):
            kwargs["sandbox"] = "local"
        original(self, *args, **kwargs)
        self.subscribers.append(sandboxes.watch)
        sandboxes.made.append(weakref.ref(self))

    RLM.__init__ = init  # type: ignore[method-assign]
    try:
        with loud_repl_env():
            yield
    finally:
        RLM.__init__ = original  # type: ignore[method-assign]


@contextmanager
def loud_repl_env() -> Iterator[None]:
    """The seed's ``REPLEnv.code_execution`` returns an error as text; in an example, that is a failure."""
    original = REPLEnv.code_execution

    @functools.wraps(original)
    def code_execution(self: REPLEnv, code: str) -> Any:
        result = original(self, code)
        if "Error" in result.stderr:
            raise ExampleFailed(f"REPLEnv.code_execution({code!r}) failed in the REPL:\n{result.stderr}")
        return result

    REPLEnv.code_execution = code_execution  # type: ignore[method-assign]
    try:
        yield
    finally:
        REPLEnv.code_execution = original  # type: ignore[method-assign]


def shell() -> Any:
    """One IPython shell for the whole run, with no history file and no colours."""
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    config = Config()
    config.HistoryManager.enabled = False
    config.InteractiveShell.colors = "nocolor"
    config.InteractiveShell.autoawait = True
    return InteractiveShell.instance(config=config)


_CLAIM = re.compile(r"^(?P<indent>\s*)(?P<expr>\S.*?)\s+#\s*(?P<op><=|>=|==|<|>)?\s*(?P<value>[^#]+?)\s*$")


def with_claims(source: str) -> str:
    """``count_tokens("hello world")  # 2`` is a claim: such a line (an expression, then a comment that is a
    literal, or a comparison with one) becomes an ``assert`` of it, on the same line."""
    lines = source.split("\n")
    for i, line in enumerate(lines):
        found = _CLAIM.match(line)
        if not found:
            continue
        try:
            ast.parse(found.group("expr"), mode="eval")
            ast.literal_eval(found.group("value"))
        except (SyntaxError, ValueError):
            continue
        expr, op, value = found.group("expr"), found.group("op") or "==", found.group("value")
        lines[i] = (f"{found.group('indent')}assert ({expr}) {op} {value}, "
                    f"{f'the doc says {expr} {op} {value}, but it is '!r} + repr({expr})")
    return "\n".join(lines)


def run_cell(ipython: Any, block: Block) -> None:
    """Run one block as a cell; raise ``ExampleFailed`` naming the doc line that failed."""
    source = with_claims(block.python_source())
    outcome = ipython.run_cell(source, store_history=False, silent=False)
    error = outcome.error_before_exec or outcome.error_in_exec
    if error is None:
        return
    line = _cell_line(error)
    where = f"{block.page}:{block.line + line}" if line else block.where
    code = source.split("\n")[line - 1].strip() if line else ""
    hint = _hint(error)
    raise ExampleFailed(f"{where}: the example (fence at line {block.line}) raised {type(error).__name__}: {error}\n"
                        f"    {code}\n{hint}{HOW}\n\n{''.join(traceback.format_exception(error))[-3000:]}")


def _cell_line(error: BaseException) -> int:
    """The line of the cell the error happened on (1-based), or 0 when unknown."""
    if isinstance(error, SyntaxError) and error.lineno:
        return error.lineno
    frames = [f for f in traceback.extract_tb(error.__traceback__) if f.filename.startswith("<ipython-input-")
              or "/ipykernel_" in f.filename]
    return frames[-1].lineno or 0 if frames else 0


def _hint(error: BaseException) -> str:
    if isinstance(error, NameError):
        name = getattr(error, "name", "") or ""
        if name in REPL_NAMES:
            return (f"`{name}` exists only where root code runs: if this is root code, put <!-- docs-test: repl --> "
                    "on the line before the fence.\n")
        return (f"`{name}` is not defined: define it in an earlier block of the page, or, if a reader would have "
                "it at hand, add it to the fixture set (tests/docs/doc_fixtures.py).\n")
    return ""


@dataclass
class ReplRun:
    """The ``repl`` blocks of a page: one session (one REPL) per context, on a server scripted per block."""

    server: ScriptedLM
    sessions: dict[str, Any] = field(default_factory=dict)
    owners: list[RLM] = field(default_factory=list)

    def run(self, block: Block) -> None:
        name = block.options.get("context", "report")
        if name not in self.sessions:
            owner = RLM("root", "sub", base_url=self.server.base_url, api_key="k", sandbox="local")
            self.owners.append(owner)
            self.sessions[name] = owner.session(repl_context(name))
        code = with_claims(block.python_source())
        self.server.root = [f"```repl\n{code}\n```", "FINAL('the block ran')"]
        result = self.sessions[name].ask(f"Run the example at {block.where}.")
        outputs = result.steps[0].outputs if result.steps else ()
        error = next((o.error for o in outputs if o.error), None)
        if error is None and result.answer == "the block ran":
            return
        line = _repl_line(error or "")
        where = f"{block.page}:{block.line + line}" if line else block.where
        raise ExampleFailed(f"{where}: the root-code example (fence at line {block.line}) failed in the REPL:\n"
                            f"{error or f'the run ended {result.stopped!r}: {result.answer!r}'}\n{HOW}")

    def close(self) -> None:
        for session in self.sessions.values():
            session.close()
        for owner in self.owners:
            owner.close()


def _repl_line(error: str) -> int:
    found = re.findall(r'File "<repl-\d+>", line (\d+)', error)
    return int(found[-1]) if found else 0


def run_page(page: Page, ipython: Any, names: dict[str, Callable[[], Any]], repl_server: ScriptedLM,
             sandboxes: Sandboxes) -> int:
    """Run every runnable Python block of ``page``; returns how many ran."""
    ipython.reset(new_session=False)
    used = _names_needed(page, ipython)
    ipython.user_ns.update({name: make() for name, make in names.items() if name in used})
    repl = ReplRun(repl_server)
    ran = 0
    try:
        for block in page.blocks:
            if not block.is_python or block.mode == "check":
                continue
            sandboxes.keep_kernel = block.mode == "kernel"
            sandboxes.problems.clear()
            if block.mode == "repl":
                repl.run(block)
            else:
                run_cell(ipython, block)
            if sandboxes.problems:
                raise ExampleFailed(f"{block.where}: the example ran, but a run it started went wrong: "
                                    f"{sandboxes.problems[0]}\n{HOW}")
            ran += 1
    finally:
        sandboxes.keep_kernel = False
        repl.close()
        sandboxes.close_all()
    return ran


def _names_needed(page: Page, ipython: Any) -> set[str]:
    """Names the page's runnable blocks read before any earlier statement of the page binds them."""
    bound: set[str] = set()
    needed: set[str] = set()
    for block in page.blocks:
        if not block.is_python or block.mode not in ("run", "kernel"):
            continue
        source = block.python_source()
        if source.startswith("%%"):  # a cell magic's options may name variables (%%rlm --context report)
            needed |= set(re.findall(r"[A-Za-z_]\w*", source.split("\n", 1)[0])) - bound
        try:
            tree = parse(ipython.transform_cell(source))
        except SyntaxError:
            continue  # run_cell reports it, with its line
        for statement in tree.body:
            nodes = list(ast.walk(statement))
            needed |= {n.id for n in nodes if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)} - bound
            bound |= bound_names(nodes)
    return needed


def parse(source: str) -> ast.Module:
    """A block's syntax tree; top-level ``await`` is allowed, as in a notebook cell."""
    tree = compile(source, "<doc>", "exec", flags=ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True)
    assert isinstance(tree, ast.Module)
    return tree


def bound_names(nodes: list[ast.AST]) -> set[str]:
    """Names these nodes bind: assignments, imports, definitions, loop and ``with`` targets."""
    names = {n.id for n in nodes if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    for node in nodes:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.ExceptHandler)) and node.name:
            names.add(node.name)
    return names
