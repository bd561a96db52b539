"""What root code reaches from the REPL: sub-calls, recursive children, tools, the budget.

Every limit lives here, in the host, where code in the REPL cannot change it:
``max_depth``, ``max_children`` (children in flight at once per parent) and
``max_descendants`` (children one completion may start, at all depths).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import LimitExceeded, LMError, SandboxError
from ..lm import images as image_checks
from ..lm.budget import BudgetReport
from ..lm.vision import Image, checked
from ..repl.steps import FailedCall, as_text
from .result import RLMResult
from .settings import LoopSettings

if TYPE_CHECKING:
    from ..lm.dispatcher import Dispatcher

#: Characters of a tool call's arguments kept in its trace event.
ARGS_PREVIEW = 300


class Tree:
    """What every run of one completion shares: how many children it has started."""

    def __init__(self, max_descendants: int) -> None:
        self.max_descendants = max_descendants
        self.started = 0

    def admit(self) -> None:
        if self.started >= self.max_descendants:
            raise LimitExceeded(
                f"this completion has started its limit of {self.max_descendants} recursive children "
                "(Limits.max_descendants); combine the remaining work in code or with llm_batch"
            )
        self.started += 1


class Loop(Protocol):
    """What the host reaches of the root loop it serves (``core.loop.RootLoop``; neither imports the other)."""

    @property
    def settings(self) -> LoopSettings: ...

    @property
    def dispatcher(self) -> Dispatcher: ...

    @property
    def can_recurse(self) -> bool: ...

    @property
    def tree(self) -> Tree: ...

    def child(self, parent_span: str | None, dispatcher: Dispatcher | None = None) -> Loop:
        """A recursive child one deeper."""
        ...

    async def answer(self, context: Any, query: str) -> str:
        """Only the answer (a child's steps are in the shared trace)."""
        ...

    async def run(self, context: Any, query: str, *, schema: Any = None) -> RLMResult:
        """The whole completion."""
        ...


@dataclass(frozen=True, slots=True)
class ToolCall:
    """The tool call a function is running inside, so that its own completions join the run."""

    host: RunHost
    span: str
    spawned: set[asyncio.Task[Any]]


#: Set while a tool runs: ``RLM.completion`` called from it becomes a child of that run.
current_tool: ContextVar[ToolCall | None] = ContextVar("rlm_current_tool", default=None)


class RunHost:
    """The host side of one run's REPL. ``parent`` is the running step's span: sub-calls land under it."""

    def __init__(self, run: Loop, dispatcher: Dispatcher | None = None) -> None:
        self._run = run
        #: Where its calls go: the run's dispatcher, or a fork's replay of a recorded run.
        self.dispatcher = dispatcher if dispatcher is not None else run.dispatcher
        self.parent: str | None = None
        self._children: asyncio.Semaphore | None = None

    @property
    def run(self) -> Loop:
        return self._run

    @property
    def tool_names(self) -> tuple[str, ...]:
        """The tools the REPL defines as functions."""
        return tuple(self._run.settings.tools)

    async def llm_query(
        self, prompt: str, model: str | None = None, images: list[bytes] | None = None, detail: str | None = None
    ) -> str:
        """A sub-call; its images are checked here again (the REPL's checks are root code's side)."""
        chosen = self._run.settings.check_model("llm_query", model)
        image_checks.check_detail(detail, "llm_query")
        seen = await _checked(images, "llm_query(images=...)")
        return _shown(await self.dispatcher.query(prompt, model=chosen, parent=self.parent, images=seen,
                                                  detail=detail))

    async def llm_batch(
        self, prompts: list[str], max_concurrent: int = 10, model: str | None = None,
        images: Sequence[list[bytes] | Exception] | None = None, detail: str | None = None,
    ) -> list[str]:
        """Sub-calls side by side; an item whose images are refused is its ``FailedCall``, the rest go."""
        chosen = self._run.settings.check_model("llm_batch", model)
        image_checks.check_detail(detail, "llm_batch")
        entries: list[list[Image] | Exception] | None = None
        if images is not None:
            if len(images) != len(prompts):
                raise TypeError(f"llm_batch: {len(images)} entries of images for {len(prompts)} prompts")
            entries = []
            for k, entry in enumerate(images):
                try:
                    entries.append(entry if isinstance(entry, Exception) else
                                   await _checked(entry, f"llm_batch(images=...) item {k}"))
                except image_checks.ImageError as exc:
                    entries.append(exc)
        results = await self.dispatcher.batch(
            prompts, model=chosen, max_concurrent=max_concurrent, parent=self.parent, images=entries, detail=detail,
        )
        return [_shown(r) for r in results]

    async def budget(self) -> BudgetReport:
        """What the completion has spent against its budget."""
        return self.dispatcher.budget.report()

    async def rlm_query(self, query: str, context: Any = None) -> str:
        """A recursive child, within the depth, children and descendants limits; a failure is a ``FailedCall``."""
        run = self._run
        if not run.can_recurse:
            prompt = query if context is None else f"{query}\n\n{as_text(context)}"
            return await self.llm_query(prompt)
        if self._children is None:
            self._children = asyncio.Semaphore(run.settings.max_children)
        async with self._children:
            try:
                run.tree.admit()
                return await run.child(self.parent, self.dispatcher).answer("" if context is None else context, query)
            except (LMError, LimitExceeded, SandboxError, TypeError, ValueError) as exc:
                return FailedCall(exc)

    async def rlm_batch(self, queries: list[str], contexts: list[Any], max_concurrent: int | None = None) -> list[str]:
        """``rlm_query_batched``: children side by side (at most ``max_children``); answers in order."""
        if max_concurrent is None:
            return list(await asyncio.gather(*(self.rlm_query(q, c) for q, c in zip(queries, contexts, strict=True))))
        gate = asyncio.Semaphore(max_concurrent)

        async def one(query: str, context: Any) -> str:
            async with gate:
                return await self.rlm_query(query, context)

        return list(await asyncio.gather(*(one(q, c) for q, c in zip(queries, contexts, strict=True))))

    async def tool(self, name: str, args: list[Any], kwargs: dict[str, Any]) -> Any:
        """Run one of the user's tools in the host; each call is a ``tool`` span of the trace."""
        tool = self._run.settings.tools.get(name)
        if tool is None:
            raise NameError(f"no tool named {name!r}")
        tracer = self.dispatcher.tracer
        span = tracer.start("tool", self.parent, name=name, args=_preview(args, kwargs))
        started = time.perf_counter()
        call = ToolCall(self, span, set())
        token = current_tool.set(call)
        error: str | None = None
        try:
            return await tool.call(args, kwargs)
        except asyncio.CancelledError:
            for task in call.spawned:  # completions a threaded tool started join the Stop
                task.cancel()
            error = "cancelled"
            raise
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"[:1000]
            raise
        finally:
            current_tool.reset(token)
            tracer.end("tool", span, self.parent, name=name, seconds=time.perf_counter() - started, error=error)


#: Images bigger than this in all are hashed on a worker thread, off the runtime loop.
OFF_LOOP_IMAGE_BYTES = 2 * 2**20


async def _checked(raw: Any, what: str) -> list[Image]:
    """Root code's images, checked as the REPL checked them (count, size, header) and hashed; ``ImageError`` if not."""
    if isinstance(raw, list) and sum(len(d) for d in raw if isinstance(d, (bytes, bytearray))) > OFF_LOOP_IMAGE_BYTES:
        return await asyncio.to_thread(checked, raw, what)
    return checked(raw, what)


def _shown(value: str | Exception) -> str:
    """A sub-call's answer as root code sees it: a failure is a ``FailedCall`` carrying the error."""
    return FailedCall(value) if isinstance(value, Exception) else value


def _preview(args: list[Any], kwargs: dict[str, Any]) -> str:
    parts = [repr(a) for a in args] + [f"{k}={v!r}" for k, v in kwargs.items()]
    text = ", ".join(parts)
    return text if len(text) <= ARGS_PREVIEW else text[: ARGS_PREVIEW - 3] + "..."
