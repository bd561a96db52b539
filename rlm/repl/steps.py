"""What root code sees and how one step runs, the same in-process and in the sandbox kernel.

Standard library only: ``LocalREPL`` imports it, and the kernel sandbox copies it into
each kernel's run directory as ``_rlm_steps.py`` (rlm itself is not importable there).
So the parsing of a step, the value of its last expression, its exceptions, the
capture of its output, ``FINAL``/``FINAL_VAR``, ``FailedCall``, the argument checks of
the sub-call helpers and the plain-data codec of the bridge exist once. Images for
sub-calls are checked (and sent over the bridge) by ``rlm.lm.images``, which the kernel
also has, as ``_rlm_images.py``.
"""

from __future__ import annotations

import ast
import collections
import json
import linecache
import re
import struct
import traceback
from typing import Any

try:  # inside rlm
    from ..lm import images as _images
except ImportError:  # in the kernel: the copy beside this file
    import _rlm_images as _images  # type: ignore[no-redef]

#: Kernel -> host bridge frames: the 32-byte token and the body's length, checked before the body is read.
REQUEST_HEADER = struct.Struct(">32sI")
_TAG = "__rlm__"
_SURROGATES = re.compile("[\ud800-\udfff]")
_PLAIN = (str, int, float, bool, type(None))


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


def check_rlm_batch(queries: Any, contexts: Any, max_concurrent: Any = None) -> tuple[list[str], list[Any]]:
    """``rlm_query_batched(queries, contexts=None, max_concurrent=None)``: as many contexts as queries, or none."""
    if max_concurrent is not None and (isinstance(max_concurrent, bool) or not isinstance(max_concurrent, int)
                                       or max_concurrent < 1):
        raise TypeError(f"rlm_query_batched(max_concurrent=...) takes an int >= 1 or None, got {max_concurrent!r}")
    if isinstance(queries, str) or not isinstance(queries, (list, tuple)):
        raise TypeError("rlm_query_batched(queries) takes a list of query strings")
    if not all(isinstance(q, str) for q in queries):
        raise TypeError("rlm_query_batched(queries): every query must be a string")
    if contexts is None:
        return list(queries), [None] * len(queries)
    if isinstance(contexts, str) or not isinstance(contexts, (list, tuple)) or len(contexts) != len(queries):
        raise TypeError("rlm_query_batched(queries, contexts): contexts must be a list as long as queries")
    return list(queries), list(contexts)


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


def check_query(prompt: Any, model: Any, images: Any = None, detail: Any = None) -> list[bytes]:
    """The argument checks of ``llm_query``, the same in both REPLs; returns the images as bytes."""
    if not isinstance(prompt, str):
        raise TypeError(f"llm_query(prompt) takes a string, got {type(prompt).__name__}")
    _check_model("llm_query", model)
    _images.check_detail(detail, "llm_query")
    return _images.check(images)


def check_batch_images(images: Any, prompts: list[str], detail: Any) -> list[list[bytes] | _images.ImageError] | None:
    """``llm_batch(images=...)``: one entry per prompt; a bad entry is that item's error (its ``FailedCall``)."""
    _images.check_detail(detail, "llm_batch")
    return _images.check_batch(images, len(prompts))


def check_batch(prompts: Any, max_concurrent: Any, model: Any) -> list[str]:
    """The argument checks of ``llm_batch``; returns the prompts as a list."""
    if isinstance(prompts, (str, bytes)):
        raise TypeError(
            "llm_batch(prompts) takes a list of prompt strings, not one string; use llm_query(prompt) for one"
        )
    try:
        items = list(prompts)
    except TypeError:
        raise TypeError(f"llm_batch(prompts) takes a list of strings, got {type(prompts).__name__}") from None
    bad = [i for i, p in enumerate(items) if not isinstance(p, str)]
    if bad:
        raise TypeError(
            f"llm_batch(prompts): items {bad[:5]} are not strings "
            f"(first is {type(items[bad[0]]).__name__}); convert them with str() first"
        )
    if not isinstance(max_concurrent, int) or isinstance(max_concurrent, bool):
        raise TypeError(f"llm_batch(max_concurrent=...) takes an int, got {type(max_concurrent).__name__}")
    if max_concurrent < 1:
        raise ValueError(f"llm_batch(max_concurrent=...) must be a positive int, got {max_concurrent!r}")
    _check_model("llm_batch", model)
    return items


def check_rlm_query(query: Any) -> None:
    if not isinstance(query, str):
        raise TypeError(f"rlm_query(query) takes a string, got {type(query).__name__}")


def _check_model(fn: str, model: Any) -> None:
    if model is not None and not isinstance(model, str):
        raise TypeError(f"{fn}(model=...) takes a model name (str) or None, got {type(model).__name__}")


# -- plain data over the bridge ------------------------------------------------------------


def encode_plain(value: Any, what: str = "value") -> Any:
    """Plain data as JSON that keeps tuples and non-string dict keys (``decode_plain`` undoes it)."""
    try:
        return _encode(value, what)
    except RecursionError:
        raise TypeError(f"{what} is nested too deeply to send") from None


def _encode(value: Any, what: str) -> Any:
    if isinstance(value, _PLAIN):
        return value
    if isinstance(value, list):
        return [_encode(v, what) for v in value]
    if isinstance(value, tuple):
        return {_TAG: "tuple", "items": [_encode(v, what) for v in value]}
    if isinstance(value, dict):
        if all(isinstance(k, str) and k != _TAG for k in value):
            return {k: _encode(v, what) for k, v in value.items()}
        return {_TAG: "dict", "items": [[_encode(k, what), _encode(v, what)] for k, v in value.items()]}
    raise TypeError(f"{what} must be plain data (str, int, float, bool, None, list, tuple, dict), "
                    f"not {type(value).__name__}")


def decode_plain(value: Any) -> Any:
    """The value ``encode_plain`` sent; builds nothing but plain types, so the host may call it on kernel data."""
    try:
        return _decode_plain(value)
    except RecursionError:
        raise TypeError("the value is nested too deeply") from None


def _decode_plain(value: Any) -> Any:
    if isinstance(value, list):
        return [_decode_plain(v) for v in value]
    if not isinstance(value, dict):
        return value
    tag = value.get(_TAG)
    if tag is None:
        return {k: _decode_plain(v) for k, v in value.items()}
    items = value.get("items")
    if not isinstance(items, list):
        raise TypeError("a tagged value without items")
    if tag == "tuple":
        return tuple(_decode_plain(v) for v in items)
    if tag == "dict":
        out = {}
        for pair in items:
            if not isinstance(pair, list) or len(pair) != 2:
                raise TypeError("a dict item is not a [key, value] pair")
            key = _decode_plain(pair[0])
            try:
                out[key] = _decode_plain(pair[1])
            except TypeError:
                raise TypeError(f"unhashable dict key of type {type(key).__name__}") from None
        return out
    raise TypeError(f"unknown tag {tag!r}")
