"""What root code sees and how one step runs, the same in-process and in the sandbox kernel.

Standard library only: ``LocalREPL`` imports it, and the kernel sandbox copies it into
each kernel's run directory as ``_rlm_steps.py`` (rlm itself is not importable there).
So the parsing of a step, the value of its last expression, its exceptions, the
capture of its output, ``FINAL``/``FINAL_VAR``, ``FailedCall`` and the other scaffolds'
names exist once. Beside it, copied the same way: the argument checks of the sub-call
helpers (``rlm.repl.checks``), the plain-data codec of the bridge (``rlm.repl.plain``) and
the images of sub-calls (``rlm.lm.images``).
"""

from __future__ import annotations

import ast
import collections
import json
import linecache
import re
import traceback
from typing import Any

try:  # inside rlm
    from .plain import encode_plain
except ImportError:  # in the kernel: the copy beside this file
    from _rlm_plain import encode_plain  # type: ignore[no-redef]

_SURROGATES = re.compile("[\ud800-\udfff]")


class FinalAnswer(BaseException):
    """Raised by ``FINAL``/``FINAL_VAR``; a BaseException so ``except Exception`` cannot swallow it."""

    def __init__(self, answer: str) -> None:
        super().__init__(answer)
        self.answer = answer


class Interrupted(BaseException):
    """Stops a step from outside it (a timeout, a cancelled run); ``except Exception`` lets it by."""


class FailedCall(str):
    """The text a failed sub-call returns in place of an answer.

    It is a ``str`` so root code that joins or prints batch results keeps working,
    and it is detectable by type (``isinstance(r, FailedCall)``) with the exception
    kept in ``.error``, so one failed item never sinks a batch.
    """

    error: BaseException | None

    def __new__(cls, error: BaseException | str) -> FailedCall:
        if isinstance(error, BaseException):
            text = f"[rlm error] {type(error).__name__}: {error}"
        else:
            text = f"[rlm error] {error}"
        self = super().__new__(cls, text)
        self.error = error if isinstance(error, BaseException) else None
        return self

    def __reduce__(self) -> tuple[Any, ...]:
        return (FailedCall, (str(self)[len("[rlm error] ") :],))


def as_text(value: Any) -> str:
    """How an answer or a variable reaches the host: itself if a str, else ``str()``."""
    return value if isinstance(value, str) else str(value)


def final(answer: Any) -> None:
    """``FINAL(answer)`` inside code: ends the run with this answer."""
    raise FinalAnswer(as_text(answer))


def final_var(namespace: dict[str, Any], name: Any) -> None:
    """``FINAL_VAR(name)`` inside code: ends the run with a variable's value.

    Models often pass the value itself (``FINAL_VAR(answer)`` without quotes): a value that
    is not a variable's name is the answer. A missing name that looks like one is a typo.
    """
    if not isinstance(name, str):
        raise FinalAnswer(as_text(name))
    key = name.strip().strip("'\"")
    if key not in namespace and not key.isidentifier():
        raise FinalAnswer(name)
    if key not in namespace:
        raise NameError(
            f"FINAL_VAR: no variable named {key!r}. Assign it in a code block first, "
            "or call FINAL(value) with the answer itself."
        )
    raise FinalAnswer(as_text(namespace[key]))


def get_variable(namespace: dict[str, Any], name: str) -> str:
    """A variable as text, for a ``FINAL_VAR`` written in the reply's prose; ``KeyError`` if absent."""
    key = name.strip().strip("'\"")
    if key not in namespace:
        raise KeyError(f"no variable named {key!r} in the REPL")
    return as_text(namespace[key])


def submit(*args: Any, **fields: Any) -> None:
    """DSPy's ``SUBMIT(...)``: one value is the answer; several named fields are answered as JSON."""
    if len(args) == 1 and not fields:
        raise FinalAnswer(as_text(args[0]))
    if not args and len(fields) == 1:
        raise FinalAnswer(as_text(next(iter(fields.values()))))
    if args:
        raise TypeError("SUBMIT takes one answer, or named fields: SUBMIT(answer=...) or SUBMIT(name=..., year=...)")
    raise FinalAnswer(json.dumps(fields, default=str, ensure_ascii=False))


def show_vars(namespace: dict[str, Any], hidden: set[str]) -> str:
    """``SHOW_VARS()``: root code's variables with their types and sizes (not rlm's helpers)."""
    rows = []
    for name, value in namespace.items():
        if name.startswith("_") or name in hidden or isinstance(value, type(ast)):
            continue
        size = f"len {len(value):,}" if hasattr(value, "__len__") and not callable(value) else ""
        rows.append(f"{name}: {type(value).__name__}{' (' + size + ')' if size else ''}")
    text = "\n".join(rows) if rows else "(no variables yet)"
    print(text)
    return text


def ready_answer(namespace: dict[str, Any]) -> str | None:
    """rlms' ``answer`` dict: ``answer["ready"] = True`` ends the run with ``answer["content"]``."""
    answer = namespace.get("answer")
    if isinstance(answer, dict) and answer.get("ready") is True:
        return as_text(answer.get("content", ""))
    return None


#: What IPython puts in the kernel's namespace: not the root's variables.
IPYTHON_NAMES = ("In", "Out", "get_ipython", "open")

#: Names root code may use that rlm does not teach but other scaffolds taught their models;
#: they are data, so they are never restored.
SCAFFOLD_DATA = ("answer", "query", "completion_context", "task_0", "input_0")


def scaffold_helpers(helpers: dict[str, Any], namespace: dict[str, Any], rlm_batch: Any) -> dict[str, Any]:
    """What other scaffolds taught their models: ``llm_query_batched``, ``rlm_query_batched``
    (parallel ``rlm_query``, order kept), ``SHOW_VARS()``, DSPy's ``SUBMIT(...)`` and minrlm's
    ``sub_llm(task, text)``."""
    llm_query = helpers["llm_query"]
    names: dict[str, Any] = {
        "llm_query_batched": helpers["llm_batch"],
        "rlm_query_batched": rlm_batch,
        "SUBMIT": submit,
        "sub_llm": lambda task, text="": llm_query(f"{task}\n\n{text}" if text else task),
    }
    hidden = {*helpers, *names, "SHOW_VARS", *SCAFFOLD_DATA, "context", "exit", "quit", *IPYTHON_NAMES}
    names["SHOW_VARS"] = lambda: show_vars(namespace, hidden)
    return names


def scaffold_data(query: str, context: Any) -> dict[str, Any]:
    """rlms' ``answer`` dict and ``completion_context``, the query as ``query``, minrlm's
    ``task_0``/``input_0``: data, never restored."""
    return {"answer": {"content": "", "ready": False}, "query": query, "completion_context": context,
            "task_0": query, "input_0": context}


def tool_function(name: str, call: Any) -> Any:
    """The REPL's function for the host tool ``name``: plain-data arguments, checked here, then ``call``."""
    def tool(*args: Any, **kwargs: Any) -> Any:
        return call(name, encode_plain(list(args), f"{name}() arguments"), encode_plain(kwargs, f"{name}() arguments"))

    tool.__name__ = tool.__qualname__ = name
    tool.__doc__ = f"The host tool {name}; runs outside the REPL."
    return tool


def restore(namespace: dict[str, Any], helpers: dict[str, Any]) -> list[str]:
    """Put back rlm's helpers that a step reassigned or deleted; returns their names."""
    restored = []
    for name, helper in helpers.items():
        if namespace.get(name) is not helper:
            namespace[name] = helper
            restored.append(name)
    return restored


def restored_note(names: list[str]) -> str:
    return (f"You reassigned {', '.join(names)}; rlm's own {'were' if len(names) > 1 else 'was'} put back for "
            "the next step (give your own function another name).")


def run_code(code: str, namespace: dict[str, Any], out: Any, filename: str) -> tuple[str | None, str | None]:
    """Run one step's code as a notebook cell would: ``(error text, final answer)``, never an exception.

    The last expression's value is shown, as in a notebook; tracebacks start at root
    code's own frames (``filename``, ``<repl-N>``, names them).
    """
    error: str | None = None
    answer: str | None = None
    try:
        linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
        tree = ast.parse(code, filename, "exec")
        last = tree.body[-1] if tree.body and isinstance(tree.body[-1], ast.Expr) else None
        if last is not None:
            tree.body.pop()  # evaluated apart below, so its value is shown
        exec(compile(tree, filename, "exec"), namespace)
        if last is not None:
            value = eval(compile(ast.Expression(last.value), filename, "eval"), namespace)
            if value is not None:
                out.write(repr(value) + "\n")
    except FinalAnswer as found:
        answer = found.answer
    except KeyboardInterrupt:
        error = "KeyboardInterrupt"
    except Interrupted as stop:
        error = f"Interrupted: {stop}"
    except SyntaxError as exc:
        error = "".join(traceback.format_exception_only(type(exc), exc))
    except BaseException as exc:  # noqa: BLE001 - root code may raise anything, SystemExit included
        error = user_traceback(exc)
    return error, answer


def user_traceback(exc: BaseException) -> str:
    """The traceback from root code's first frame on (rlm's own frames are noise to the root)."""
    tb = exc.__traceback__
    while tb is not None and not tb.tb_frame.f_code.co_filename.startswith("<repl-"):
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(exc), exc, tb))


class BinaryCapture:
    """``sys.stdout.buffer``: bytes written here land in the text capture, decoded leniently."""

    def __init__(self, text: Capture) -> None:
        self._text = text

    def write(self, data: bytes | bytearray | memoryview) -> int:
        raw = bytes(data)
        self._text.write(raw.decode("utf-8", "replace"))
        return len(raw)

    def flush(self) -> None:
        """Nothing to flush."""


class Capture:
    """A text sink that keeps the head and the tail past ``cap`` characters."""

    encoding = "utf-8"
    errors = "replace"

    def __init__(self, cap: int) -> None:
        self.buffer = BinaryCapture(self)
        self._half = max(1, cap // 2)
        self._head: list[str] = []
        self._head_len = 0
        self._tail: collections.deque[str] = collections.deque()
        self._tail_len = 0
        self._total = 0

    def write(self, text: str) -> int:
        text = str(text)
        n = len(text)
        self._total += n
        room = self._half - self._head_len
        if room > 0:
            self._head.append(text[:room])
            self._head_len += min(room, n)
            text = text[room:]
        if text:
            self._tail.append(text[-self._half :])
            self._tail_len += len(self._tail[-1])
            while self._tail_len - len(self._tail[0]) >= self._half:
                self._tail_len -= len(self._tail.popleft())
        return n

    def flush(self) -> None:
        """Streams must be flushable; there is nothing to flush."""

    def isatty(self) -> bool:
        return False

    def getvalue(self) -> str:
        """What was written, capped; lone surrogates (which no UTF-8 channel can carry) become U+FFFD."""
        head = "".join(self._head)
        tail = "".join(self._tail)
        if len(tail) > self._half:
            tail = tail[-self._half :]
        omitted = self._total - len(head) - len(tail)
        text = f"{head}\n... [{omitted} characters omitted] ...\n{tail}" if omitted > 0 else head + tail
        return _SURROGATES.sub("\ufffd", text)
