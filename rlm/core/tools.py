"""Host tools: the user's functions, callable from root code in either sandbox.

A tool always runs in the host (in the kernel sandbox the call crosses the bridge), so
it may hold keys, files and connections root code must not. Arguments and results are
plain data, checked both ways; a tool's exception reaches root code as an exception of
the same name with its message.
"""

from __future__ import annotations

import asyncio
import inspect
import keyword
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError
from ..repl.plain import decode_plain, encode_plain

#: Names root code already has; a tool may not take one.
RESERVED = frozenset({
    "llm_query", "llm_batch", "rlm_query", "FINAL", "FINAL_VAR", "FailedCall", "budget", "chunk", "count_tokens",
    "llm_query_batched", "rlm_query_batched", "SUBMIT", "sub_llm", "SHOW_VARS", "context", "answer", "answers",
    "query", "completion_context", "task_0", "input_0", "exit", "quit", "print",
})
#: Characters of a tool's docstring line shown to the root.
DOC_CHARS = 200


@dataclass(frozen=True, slots=True)
class Tool:
    """One tool: its function, and how the root is told about it."""

    name: str
    fn: Callable[..., Any]
    signature: str
    doc: str

    @property
    def line(self) -> str:
        """The system prompt's line for this tool."""
        return f"- {self.name}{self.signature}" + (f" — {self.doc}" if self.doc else "")

    async def call(self, args: list[Any], kwargs: dict[str, Any]) -> Any:
        """Run the tool on rlm's loop (awaited) or in a worker thread (a plain function); check its result.

        The result goes back as a plain-data copy, so root code never holds a host object.
        """
        if inspect.iscoroutinefunction(self.fn):
            result = await self.fn(*args, **kwargs)
        else:
            result = await asyncio.to_thread(self.fn, *args, **kwargs)
            if inspect.isawaitable(result):
                result = await result
        return decode_plain(encode_plain(result, f"the result of tool {self.name}()"))


def as_tools(tools: Mapping[str, Callable[..., Any]] | Sequence[Callable[..., Any]] | None) -> dict[str, Tool]:
    """The tools of ``RLM(tools=...)``: a dict of name to function, or a list of functions (named by ``__name__``)."""
    if tools is None:
        return {}
    if isinstance(tools, Mapping):
        pairs = list(tools.items())
    elif isinstance(tools, Sequence) and not isinstance(tools, (str, bytes)):
        pairs = [(getattr(fn, "__name__", ""), fn) for fn in tools]
    else:
        raise ConfigError(
            f"tools must be a dict of name to function or a list of functions, got {type(tools).__name__}")
    found: dict[str, Tool] = {}
    for name, fn in pairs:
        if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name) or name.startswith("_"):
            raise ConfigError(f"tool name {name!r} is not a Python name root code could call; name it in a dict")
        if name in RESERVED or name.startswith("context_"):
            raise ConfigError(f"tool name {name!r} is taken by an rlm helper or variable; pick another")
        if not callable(fn):
            raise ConfigError(f"tool {name!r} is not callable: {fn!r}")
        if name in found:
            raise ConfigError(f"two tools are named {name!r}")
        found[name] = Tool(name, fn, _signature(fn), _first_line(fn))
    return found


def _signature(fn: Callable[..., Any]) -> str:
    """The signature as the root should read it: annotations evaluated (not quoted), no ``typing.``."""
    try:
        try:
            signature = inspect.signature(fn, eval_str=True)
        except (NameError, SyntaxError, AttributeError):  # an annotation that names what is not importable here
            signature = inspect.signature(fn)
    except (TypeError, ValueError):  # some builtins have none
        return "(...)"
    return str(signature).replace("typing.", "")


def _first_line(fn: Callable[..., Any]) -> str:
    doc = inspect.getdoc(fn) or ""
    line = doc.strip().split("\n", 1)[0].strip()
    return line[:DOC_CHARS]


def tools_prompt(tools: Mapping[str, Tool]) -> str:
    """The system prompt's section on tools ("" without any)."""
    if not tools:
        return ""
    lines = "\n".join(tool.line for tool in tools.values())
    return (
        "\nTools (functions in the REPL that run outside it; pass and get back plain data: str, numbers, "
        f"bool, None, lists, dicts; a tool's error is raised in your code as an exception):\n{lines}\n"
    )
