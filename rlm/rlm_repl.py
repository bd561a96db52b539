"""Seed-compatible ``RLM_REPL`` (the rlm-minimal API), a thin wrapper over ``rlm.RLM``."""

from __future__ import annotations

import logging
import sys
from typing import Any

from .api import RLM
from .core.result import RLMResult
from .trace.events import Event, Subscriber

log = logging.getLogger("rlm")

#: The query of a completion given none, as in the seed: the context says what is asked.
DEFAULT_QUERY = "Answer the question, or carry out the instructions, that the context contains."


def _log_event(event: Event) -> None:
    """``enable_logging=True``: one readable line per iteration, code step and batch."""
    data = event.data
    if event.kind == "iteration.start":
        log.info("iteration %s", data.get("n"))
    elif event.kind == "exec.start":
        log.info("code:\n%s", data.get("code"))
    elif event.kind == "exec.end":
        log.info("output:\n%s", (data.get("stdout") or "") + (data.get("error") or ""))
    elif event.kind == "batch.end":
        log.info("llm_batch done (%s failed)", data.get("failed"))
    elif event.kind == "run.end" and event.parent is None:
        log.info("final answer: %s", data.get("answer"))


class RLM_REPL:  # noqa: N801 - the seed's name
    """``RLM_REPL(model, recursive_model, enable_logging).completion(context, query) -> str``.

    ``depth`` is accepted for compatibility and ignored: recursion depth is ``max_depth``.
    """

    def __init__(
        self,
        api_key: str | None = None,
        model: str = "gpt-5",
        recursive_model: str = "gpt-5-mini",
        max_iterations: int = 20,
        depth: int = 0,
        enable_logging: bool = False,
        **kwargs: Any,
    ) -> None:
        subscribers: list[Subscriber] = [_log_event] if enable_logging else []
        if enable_logging and not log.handlers:
            handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(logging.Formatter("[rlm] %(message)s"))
            log.addHandler(handler)
            log.setLevel(logging.INFO)
        self.rlm = RLM(model, recursive_model, api_key=api_key, max_iterations=max_iterations, **kwargs)
        self.rlm.subscribers.extend(subscribers)
        self.last_result: RLMResult | None = None

    def completion(self, context: Any, query: str | None = None) -> str:
        """The answer; without a query, the seed's: answer what the context asks."""
        result = self.last_result = self.rlm.completion(context, query or DEFAULT_QUERY)
        return result.text

    def reset(self) -> None:
        """Forget the last completion (each completion already starts with a fresh REPL)."""
        self.last_result = None

    def cost_summary(self) -> dict[str, Any]:
        """Calls, tokens and dollars of the last completion, in all and per model."""
        usage = self.last_result.usage if self.last_result is not None else None
        if usage is None:
            return {"calls": 0, "prompt_tokens": 0, "completion_tokens": 0, "cost_usd": None, "by_model": {}}
        return {
            "calls": usage.calls, "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens, "cost_usd": usage.cost_usd,
            "by_model": {m: {"calls": u.calls, "prompt_tokens": u.prompt_tokens,
                             "completion_tokens": u.completion_tokens, "cost_usd": u.cost_usd}
                         for m, u in usage.by_model.items()},
        }
