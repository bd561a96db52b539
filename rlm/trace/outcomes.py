"""What a comparison of runs shows of each: its outcome and costs, and where its code first differs.

Plain data, apart from any view: ``rlm.trace.compare`` makes them, ``compare_html`` and
``runs`` draw them.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass


@dataclass(frozen=True)
class RunSummary:
    """One run's outcome and costs: a row of the comparison's table."""

    label: str
    stopped: str
    answer: str | None
    #: Root turns (None: a run with no trace, such as a benchmark's text method).
    iterations: int | None
    root_calls: int
    sub_calls: int
    failed_calls: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float | None
    seconds: float
    #: "run-12 at step 2" for a fork, else None.
    forked: str | None = None
    log: str | None = None


@dataclass(frozen=True)
class Divergence:
    """Where a run's code first differs from the first run's (``iteration`` None: it never does).

    Code steps are compared in order, whatever turn they came in; ``iteration`` and
    ``block`` (1-based) place the first different step in this run, ``base_iteration`` and
    ``base_block`` in the first run. ``base_code`` or ``code`` is None where one run has no such step.
    """

    label: str
    base: str
    iteration: int | None = None
    block: int | None = None
    base_iteration: int | None = None
    base_block: int | None = None
    base_code: str | None = None
    code: str | None = None

    @property
    def diverged(self) -> bool:
        return self.iteration is not None or self.base_iteration is not None

    def diff(self) -> str:
        """The two steps' code as a unified diff (empty when the code never differs)."""
        if not self.diverged:
            return ""
        lines = difflib.unified_diff((self.base_code or "").splitlines(), (self.code or "").splitlines(),
                                     self.base, self.label, lineterm="")
        return "\n".join(lines)

    def __str__(self) -> str:
        if not self.diverged:
            return f"{self.label}: the same code as {self.base} at every step"
        if self.code is None:
            return f"{self.label}: stops writing code where {self.base} goes on (its iteration {self.base_iteration})"
        where = f"iteration {self.iteration}, block {self.block}"
        if self.base_code is None:
            return f"{self.label}: goes on writing code after {self.base} stopped, at {where}"
        other = "" if self.base_iteration == self.iteration else f" ({self.base}'s iteration {self.base_iteration})"
        return f"{self.label}: first differs from {self.base} at {where}{other}"
