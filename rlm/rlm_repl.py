"""Seed-compatible ``RLM_REPL`` (the rlm-minimal API), a thin wrapper over ``rlm.RLM``."""

from __future__ import annotations

import logging
import sys
from typing import Any

from .api import RLM
from .core.result import RLMResult
from .trace.events import Event, Subscriber

log = logging.getLogger("rlm")


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

    def completion(self, context: Any, query: str) -> str:
        result = self.last_result = self.rlm.completion(context, query)
        return result.answer
