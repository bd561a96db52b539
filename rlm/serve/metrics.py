"""Counters a gateway's operator scrapes (``GET /metrics``, Prometheus text format)."""

from __future__ import annotations

import collections
from typing import TYPE_CHECKING

from ..core.result import RLMResult
from ..errors import RLMError

if TYPE_CHECKING:
    from .limits import Admission


class Metrics:
    """Requests by path and status, runs by outcome, and what the runs spent."""

    def __init__(self) -> None:
        self.requests: collections.Counter[tuple[str, int]] = collections.Counter()
        self.runs: collections.Counter[str] = collections.Counter()
        self.calls = 0
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.cost_usd = 0.0

    def request(self, path: str, status: int) -> None:
        known = path if path in ("/v1/chat/completions", "/v1/models", "/health", "/metrics") else "other"
        self.requests[known, status] += 1

    def finished(self, result: RLMResult) -> None:
        self.runs[result.stopped] += 1
        self._spent(result)

    def failed(self, exc: BaseException) -> None:
        self.runs[type(exc).__name__ if isinstance(exc, RLMError) else "cancelled"] += 1
        partial = getattr(exc, "partial", None)
        if isinstance(partial, RLMResult):
            self._spent(partial)

    def _spent(self, result: RLMResult) -> None:
        self.calls += result.usage.calls
        self.prompt_tokens += result.usage.prompt_tokens
        self.completion_tokens += result.usage.completion_tokens
        self.cost_usd += result.usage.cost_usd or 0.0

    def render(self, admission: Admission) -> str:
        lines = ["# TYPE rlm_serve_requests_total counter"]
        lines += [f'rlm_serve_requests_total{{path="{p}",status="{s}"}} {n}'
                  for (p, s), n in sorted(self.requests.items())]
        lines.append("# TYPE rlm_serve_runs_total counter")
        lines += [f'rlm_serve_runs_total{{outcome="{o}"}} {n}' for o, n in sorted(self.runs.items())]
        gauges: dict[str, float] = {"rlm_serve_runs_running": admission.running,
                                    "rlm_serve_runs_waiting": admission.waiting}
        counters: dict[str, float] = {"rlm_serve_rejected_total": admission.rejected,
                                      "rlm_serve_model_calls_total": self.calls,
                                      "rlm_serve_prompt_tokens_total": self.prompt_tokens,
                                      "rlm_serve_completion_tokens_total": self.completion_tokens,
                                      "rlm_serve_cost_usd_total": round(self.cost_usd, 6)}
        for name, value in gauges.items():
            lines += [f"# TYPE {name} gauge", f"{name} {value}"]
        for name, value in counters.items():
            lines += [f"# TYPE {name} counter", f"{name} {value}"]
        return "\n".join(lines) + "\n"
