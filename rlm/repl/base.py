"""The one interface every REPL implements, and what root code sees inside it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ..lm.budget import BudgetReport
from .contexts import SUPPORTED_CONTEXT, load_context
from .document_context import ContextInfo

__all__ = ["CAPTURE_CHARS", "SUPPORTED_CONTEXT", "REPL", "ContextInfo", "ExecResult", "Host", "load_context",
           "tool_names"]

#: What one step keeps of its output (head and tail) at least, whatever the root is sent of it
#: (``Limits.max_output_chars``): the trace shows more than the root reads, and memory stays bounded.
CAPTURE_CHARS = 2_000_000


@dataclass(frozen=True, slots=True)
class ExecResult:
    """What one REPL step produced. ``error`` is the traceback text of root code that raised."""

    stdout: str
    stderr: str
    error: str | None
    seconds: float
    final: str | None = None
    #: rlm helpers the step reassigned, which were put back.
    restored: tuple[str, ...] = ()

    def feedback(self) -> str:
        """The text the root model reads back for this step ("" when it printed nothing)."""
        parts = [self.stdout.rstrip("\n")] if self.stdout.strip() else []
        if self.stderr.strip():
            parts.append("[stderr]\n" + self.stderr.rstrip("\n"))
        if self.error:
            parts.append(self.error.rstrip("\n"))
        return "\n".join(parts)


class Host(Protocol):
    """The model-calling side a REPL calls back into; keys and limits live here.

    A host with tools also has ``tool_names`` (the functions the REPL defines) and
    ``async tool(name, args, kwargs)`` (see ``rlm.core.host.RunHost``); others need neither.
    """

    async def llm_query(
        self, prompt: str, model: str | None = None, images: list[bytes] | None = None, detail: str | None = None
    ) -> str:
        """A sub-call; ``images`` (PNG/JPEG bytes, checked again here) go with the prompt."""
        ...

    async def llm_batch(
        self, prompts: list[str], max_concurrent: int = 10, model: str | None = None,
        images: Sequence[list[bytes] | Exception] | None = None, detail: str | None = None,
    ) -> list[str]:
        """Sub-calls in parallel, answers in order; ``images`` has one entry per prompt (an error: a refused item)."""
        ...

    async def rlm_query(self, query: str, context: Any = None) -> str: ...

    async def rlm_batch(self, queries: list[str], contexts: list[Any], max_concurrent: int | None = None) -> list[str]:
        """Recursive children side by side, answers in order (``rlm_query_batched``)."""
        ...

    async def budget(self) -> BudgetReport:
        """What the run has spent against its budget; the REPL's ``budget()`` shows it."""
        ...


class REPL(Protocol):
    """Where root code runs: state persists across ``execute`` calls of one completion."""

    async def start(self, context: Any, host: Host, query: str = "") -> ContextInfo | None:
        """Load ``context``; documents are read here, and then what the root is told of them comes back."""
        ...

    async def execute(self, code: str) -> ExecResult: ...

    async def get_variable(self, name: str) -> str: ...

    async def rebind(self, host: Host, query: str) -> None:
        """A session's next question runs under a new host and sets ``query``; the variables stay."""
        ...

    async def put(self, name: str, value: Any) -> ContextInfo | None:
        """Set a variable: a session's added context, its ``answers``; documents, as ``start`` reads them."""
        ...

    async def close(self) -> None: ...


def tool_names(host: Host) -> tuple[str, ...]:
    """The host's tools, if it has any."""
    names = getattr(host, "tool_names", ())
    return tuple(n for n in names if isinstance(n, str))
