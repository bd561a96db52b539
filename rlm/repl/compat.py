"""Seed-compatible ``REPLEnv`` and ``Sub_RLM`` (the rlm-minimal API), over the new core."""

from __future__ import annotations

import json
import types
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .. import runtime
from ..lm.budget import BudgetReport
from ..lm.client import OpenAIClient
from ..lm.dispatcher import Dispatcher
from ..lm.images import ImageError
from ..lm.limiter import AdaptiveLimiter
from ..lm.vision import Image, checked
from ..trace.events import Tracer
from .checks import check_batch, check_query
from .local import LocalREPL
from .steps import SCAFFOLD_DATA, FailedCall


@dataclass
class REPLResult:
    """What ``REPLEnv.code_execution`` returns, as in the seed."""

    stdout: str
    stderr: str
    locals: dict[str, Any] = field(default_factory=dict)
    execution_time: float = 0.0
    #: The answer a FINAL/FINAL_VAR in the code gave, if any.
    final: str | None = None


def _shown(value: str | Exception) -> str:
    return FailedCall(value) if isinstance(value, Exception) else value


def _entry(images: list[bytes] | Exception) -> list[Image] | Exception:
    """One batch item's images, checked; an item refused in the REPL, or here, is its error."""
    if isinstance(images, Exception):
        return images
    try:
        return checked(images)
    except ImageError as exc:
        return exc


class Sub_RLM:  # noqa: N801 - the seed's name
    """A plain sub-model: ``completion(prompt)`` and ``batch_completion(prompts)``."""

    def __init__(self, model: str = "gpt-5-mini", *, api_key: str | None = None, base_url: str | None = None) -> None:
        self.model = model
        self._dispatcher = Dispatcher(
            OpenAIClient(api_key=api_key, base_url=base_url),
            limiter=AdaptiveLimiter(64),
            tracer=Tracer(keep=False),
        )

    async def _query(self, prompt: str, model: str | None = None, images: list[bytes] | None = None,
                     detail: str | None = None) -> str:
        return _shown(await self._dispatcher.query(prompt, model=model or self.model, parent=None,
                                                   images=checked(images), detail=detail))

    async def _batch(self, prompts: list[str], max_concurrent: int = 10, model: str | None = None,
                     images: Sequence[list[bytes] | Exception] | None = None, detail: str | None = None) -> list[str]:
        entries = None if images is None else [_entry(e) for e in images]
        results = await self._dispatcher.batch(prompts, model=model or self.model, max_concurrent=max_concurrent,
                                               parent=None, images=entries, detail=detail)
        return [_shown(r) for r in results]

    def completion(self, prompt: str) -> str:
        check_query(prompt, None)
        return runtime.run(self._query(prompt))

    def batch_completion(self, prompts: list[str], max_concurrent: int = 10) -> list[str]:
        return runtime.run(self._batch(check_batch(prompts, max_concurrent, None), max_concurrent))


class _SubHost:
    """Host for a standalone REPLEnv: sub-calls only, no recursion."""

    def __init__(self, sub: Sub_RLM) -> None:
        self._sub = sub

    async def llm_query(self, prompt: str, model: str | None = None, images: list[bytes] | None = None,
                        detail: str | None = None) -> str:
        return await self._sub._query(prompt, model, images, detail)

    async def llm_batch(
        self, prompts: list[str], max_concurrent: int = 10, model: str | None = None,
        images: Sequence[list[bytes] | Exception] | None = None, detail: str | None = None,
    ) -> list[str]:
        return await self._sub._batch(prompts, max_concurrent, model, images, detail)

    async def rlm_query(self, query: str, context: Any = None) -> str:
        prompt = query if context is None else f"{query}\n\n{context}"
        return await self._sub._query(prompt)

    async def rlm_batch(self, queries: list[str], contexts: list[Any], max_concurrent: int | None = None) -> list[str]:
        return [await self.rlm_query(q, c) for q, c in zip(queries, contexts, strict=True)]

    async def budget(self) -> BudgetReport:
        return self._sub._dispatcher.budget.report()


class REPLEnv:
    """The seed's REPL: ``REPLEnv(recursive_model, context_str=...).code_execution(code)``.

    Runs in-process (``LocalREPL``): not a security sandbox.
    """

    def __init__(
        self,
        recursive_model: str = "gpt-5-mini",
        context_json: Any = None,
        context_str: str | None = None,
        setup_code: str | None = None,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
    ) -> None:
        context: Any = context_str if context_str is not None else (context_json if context_json is not None else "")
        if isinstance(context, str) and context_json is not None and context_str is None:
            context = json.loads(context)
        self.sub_rlm = Sub_RLM(recursive_model, api_key=api_key, base_url=base_url)
        self._repl = LocalREPL()
        runtime.run(self._repl.start(context, _SubHost(self.sub_rlm)))
        # Other scaffolds' names (rlms' answer dict, minrlm's task_0, ...) are there for root code,
        # not made by it: .locals leaves them out until code assigns them.
        self._scaffold = {name: self._repl.namespace.get(name) for name in SCAFFOLD_DATA}
        if setup_code:
            self.code_execution(setup_code)

    @property
    def globals(self) -> dict[str, Any]:
        return self._repl.namespace

    @property
    def locals(self) -> dict[str, Any]:
        """The variables code has made (and ``context``), as the seed's ``REPLEnv.locals``."""
        return {k: v for k, v in self._repl.namespace.items()
                if not k.startswith("__") and not callable(v) and not isinstance(v, types.ModuleType)
                and not (k in self._scaffold and v is self._scaffold[k])}

    def code_execution(self, code: str) -> REPLResult:
        """Run ``code``; a ``FINAL``/``FINAL_VAR`` in it shows its value, as the seed's returned it."""
        result = runtime.run(self._repl.execute(code))
        stdout = result.stdout if result.final is None else f"{result.stdout}{result.final}\n"
        stderr = result.stderr + (result.error or "")
        return REPLResult(stdout, stderr, self.locals, result.seconds, result.final)
