"""``Session``: many questions over one REPL and one conversation (``rlm.session(context)``)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from . import runtime
from .core.conversation import Conversation
from .core.result import RLMResult
from .errors import ConfigError
from .trace.events import Subscriber

if TYPE_CHECKING:
    from .engine import Engine


class Session:
    """Questions that build on each other: the REPL's variables and the root's history persist.

    Example::

        with rlm.session(report) as s:
            s.ask("List the subsidiaries, keep them in a variable `subs`.")
            s.ask("Which of `subs` had a loss?")
            s.ask("And this year?", context=new_filing)   # loaded as `context_2`

    Each question is its own run: its own live view in a notebook, trace, budget and
    ``RLMResult``. Earlier answers are in the REPL as ``answers`` (oldest first) and here
    as ``.answers``. Near the root's window older turns are compacted, so long sessions
    keep working. Questions are answered one at a time.
    """

    def __init__(self, engine: Engine, context: Any = None) -> None:
        self._engine = engine
        self._context = context
        self._conversation = Conversation(engine.make_repl())
        self._busy = threading.Lock()
        self._closed = False
        self.results: list[RLMResult] = []

    @property
    def answers(self) -> list[Any]:
        """Each answered question's answer, oldest first (typed answers as plain data)."""
        return list(self._conversation.answers)

    def _context_of(self, context: Any) -> Any:
        """The first question brings the session's context (or its own); later ones only what they add."""
        if self._closed:
            raise ConfigError("this session is closed; start another with rlm.session(context)")
        if self._conversation.started:
            return context
        if self._context is not None and context is not None:
            raise ConfigError("the session's first question already has the session's context; "
                              "pass more context from the second question on")
        return self._context if context is None else context

    def ask(self, query: str, *, context: Any = None, schema: Any = None,
            subscribers: list[Subscriber] | None = None, view: bool | None = None) -> RLMResult:
        """The next question; blocks until answered. ``context`` adds one under a name the root is told."""
        with self._one_at_a_time():
            result = self._engine.answer(self._context_of(context), query, schema=schema, subscribers=subscribers,
                                         view=view, conversation=self._conversation)
        self.results.append(result)
        return result

    async def aask(self, query: str, *, context: Any = None, schema: Any = None,
                   subscribers: list[Subscriber] | None = None, view: bool | None = None) -> RLMResult:
        """Awaitable ``ask``."""
        with self._one_at_a_time():
            result = await self._engine.aanswer(self._context_of(context), query, schema=schema,
                                                subscribers=subscribers, view=view, conversation=self._conversation)
        self.results.append(result)
        return result

    @contextlib.contextmanager
    def _one_at_a_time(self) -> Iterator[None]:
        if not self._busy.acquire(blocking=False):
            raise ConfigError("this session is answering another question; wait for it (one question at a time)")
        try:
            yield
        finally:
            self._busy.release()

    def close(self) -> None:
        """Stop the session's REPL (its sandbox kernel); the RLM stays usable."""
        if not self._closed:
            self._closed = True
            runtime.run(self._conversation.repl.close())

    async def aclose(self) -> None:
        """Awaitable ``close``."""
        if not self._closed:
            self._closed = True
            if runtime.on_runtime_thread():
                await self._conversation.repl.close()
            else:
                await asyncio.wrap_future(runtime.submit(self._conversation.repl.close()))

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> Session:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        s = self._engine.settings
        return f"Session(model={s.model!r}, questions={len(self.results)}, closed={self._closed})"

