"""``RLM``: the public entry point. One async core, a thin blocking facade."""

from __future__ import annotations

import asyncio
from typing import Any

from .. import runtime
from ..errors import ConfigError
from ..lm.batch import Dispatcher
from ..lm.client import LMClient, OpenAIClient
from ..lm.limiter import AdaptiveLimiter
from ..lm.retry import RetryPolicy
from ..lm.transport import FastClient
from ..repl.base import REPL
from ..repl.local import LocalREPL
from ..trace.events import Subscriber, Tracer
from .loop import LoopSettings, RootLoop
from .result import RLMResult

SANDBOXES = ("local",)
TRANSPORTS = ("auto", "openai", "fast")


class RLM:
    """A Recursive Language Model over an OpenAI-compatible endpoint.

    Example::

        from rlm import RLM
        rlm = RLM(model="gpt-5", sub_model="gpt-5-mini")
        result = rlm.completion(context=big_text, query="Which sections mention the merger?")
        print(result.answer, result.usage)

    ``completion`` blocks and works in scripts, notebook cells and inside a running
    event loop; ``await rlm.acompletion(...)`` is the same run without blocking.
    One ``RLM`` may serve many completions, one after another or at once.

    ``transport``: ``"openai"`` sends every call through the openai SDK, ``"fast"``
    through rlm's lean aiohttp client (same wire format, same errors), and ``"auto"``
    (default) uses the SDK for root calls and the lean client for sub-calls, the hot
    path. ``client=`` replaces both. ``max_concurrent`` caps calls in flight across
    everything this RLM runs; it shrinks on 429s and grows back. ``rpm``/``tpm`` cap
    requests and tokens per minute. Failed calls are retried ``max_retries`` times
    (429, 5xx, timeouts, dropped connections; ``retry=RetryPolicy(...)`` for more).
    """

    def __init__(
        self,
        model: str = "gpt-5",
        sub_model: str | None = None,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        client: LMClient | None = None,
        sandbox: str = "local",
        max_concurrent: int = 32,
        max_iterations: int = 20,
        max_depth: int = 1,
        max_output_chars: int = 20_000,
        step_timeout: float | None = None,
        timeout: float = 120.0,
        max_retries: int = 5,
        retry: RetryPolicy | None = None,
        transport: str = "auto",
        rpm: float | None = None,
        tpm: float | None = None,
        call_options: dict[str, Any] | None = None,
        subscribers: list[Subscriber] | None = None,
    ) -> None:
        if sandbox not in SANDBOXES:
            raise ConfigError(f"sandbox={sandbox!r} is not available; choose one of {SANDBOXES}")
        for name, value in (("max_concurrent", max_concurrent), ("max_iterations", max_iterations), ("max_depth", max_depth)):
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be an int >= 1, got {value!r}")
        self.settings = LoopSettings(
            model=model,
            sub_model=sub_model or model,
            max_iterations=max_iterations,
            max_depth=max_depth,
            max_output_chars=max_output_chars,
        )
        if transport not in TRANSPORTS:
            raise ConfigError(f"transport={transport!r} is not available; choose one of {TRANSPORTS}")
        if not isinstance(max_retries, int) or max_retries < 0:
            raise ConfigError(f"max_retries must be an int >= 0, got {max_retries!r}")
        self.retry = retry if retry is not None else RetryPolicy(max_attempts=max_retries + 1)
        # The SDK's own retries stay off (max_retries=0): the dispatcher retries every call once, one policy.
        self.sub_client: LMClient | None = None
        if client is not None:
            self.client: LMClient = client
        elif transport == "fast":
            self.client = FastClient(api_key=api_key, base_url=base_url, timeout=timeout)
        else:
            self.client = OpenAIClient(api_key=api_key, base_url=base_url, timeout=timeout, max_retries=0)
            if transport == "auto":
                self.sub_client = FastClient(api_key=api_key, base_url=base_url, timeout=timeout)
        self.sandbox = sandbox
        self.step_timeout = step_timeout
        self.max_concurrent = max_concurrent
        self.call_options = dict(call_options or {})
        self.subscribers: list[Subscriber] = list(subscribers or [])
        # One limiter for every call this RLM makes, across batches, children and completions.
        self.limiter = AdaptiveLimiter(max_concurrent, rpm=rpm, tpm=tpm)

    def _make_repl(self) -> REPL:
        return LocalREPL(step_timeout=self.step_timeout)

    async def _run(self, context: Any, query: str, subscribers: list[Subscriber]) -> RLMResult:
        tracer = Tracer([*self.subscribers, *subscribers])
        dispatcher = Dispatcher(
            self.client, limiter=self.limiter, tracer=tracer, call_options=self.call_options,
            retry=self.retry, sub_client=self.sub_client,
        )
        loop = RootLoop(settings=self.settings, dispatcher=dispatcher, repl_factory=self._make_repl)
        return await loop.run(context, query)

    async def acompletion(
        self, context: Any, query: str, *, subscribers: list[Subscriber] | None = None
    ) -> RLMResult:
        """Awaitable ``completion``. The work runs on rlm's own loop, so the caller's stays free."""
        coro = self._run(context, query, list(subscribers or []))
        if runtime.on_runtime_thread():
            return await coro
        return await asyncio.wrap_future(runtime.submit(coro))

    def completion(
        self, context: Any, query: str, *, subscribers: list[Subscriber] | None = None
    ) -> RLMResult:
        """Answer ``query`` over ``context`` (str, list, dict or pathlib.Path); blocks until done.

        Interrupting (Ctrl-C, or the notebook's stop button) cancels every in-flight
        sub-call within a second and leaves this object ready for the next call.
        """
        return runtime.run(self._run(context, query, list(subscribers or [])))

    def __repr__(self) -> str:
        s = self.settings
        return f"RLM(model={s.model!r}, sub_model={s.sub_model!r}, sandbox={self.sandbox!r})"

