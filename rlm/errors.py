"""Every exception rlm raises, in one tree.

    RLMError
    ├── ConfigError            bad arguments or missing settings (says what to set)
    │   └── ForkError          a run cannot be forked as asked (no such step, a call the record lacks)
    ├── LMError                a model call failed
    │   ├── LMTimeout
    │   ├── LMRateLimited      HTTP 429; .retry_after seconds if the server said
    │   ├── LMConnectionError
    │   └── LMResponseError    non-2xx status or an unusable body; .status, .body
    │       └── ImagesRefused  the model takes no image input (a sub-call with images=); .model
    ├── SandboxError           the REPL could not run a step
    │   └── SandboxTimeout     the kernel did not start or answer in time
    ├── LimitExceeded          a run stopped at a limit; .partial holds what was done
    │   ├── BudgetExceeded     a Budget ran out; .budget names it, .spent and .limit say how far
    │   └── ContextWindowExceeded  a prompt too big for the model; .tokens and .limit
    ├── AnswerError            a typed answer (schema=) stayed invalid after one correction; .text, .problem
    ├── Cancelled              the run was cancelled (interrupt or Stop button)
    ├── WorkerError            a worker (a Ray task) could not run a map item; .cause
    └── TraceFormatError       a trace log line is not an event; .path, .line (also a ValueError)

Exceptions carry data and have no side effects: they never log or print.
"""

from __future__ import annotations

from typing import Any


class RLMError(Exception):
    """Base for everything rlm raises.

    ``partial`` holds the ``RLMResult`` of the work done before the error, when a run
    had started: steps, usage and trace are never lost to a failure.
    """

    partial: Any = None


class ConfigError(RLMError, ValueError):
    """A setting is missing or invalid; the message says what to change."""


class ForkError(ConfigError):
    """A run cannot be forked as asked: no such step, or the record lacks a call a replayed step asked for."""


class LMError(RLMError):
    """A model call failed."""

    def __init__(self, message: str, *, model: str | None = None) -> None:
        super().__init__(message)
        self.model = model


class LMTimeout(LMError):
    """The endpoint did not answer within the client timeout."""


class LMConnectionError(LMError):
    """The endpoint could not be reached. ``refused``: nothing listens there (retried once, briefly)."""

    refused: bool = False


class LMResponseError(LMError):
    """The endpoint answered with an error status or a body we cannot use.

    ``headers`` (lower-case names) keep the retry hints: Retry-After, x-ratelimit-*.
    ``transient``: a body that may well be fine next time (a reply with no choices).
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        body: Any = None,
        model: str | None = None,
        headers: dict[str, str] | None = None,
        transient: bool = False,
    ) -> None:
        super().__init__(message, model=model)
        self.status = status
        self.body = body
        self.headers = headers
        self.transient = transient


class LMRateLimited(LMResponseError):
    """HTTP 429. ``retry_after`` is the server's hint in seconds, if it gave one."""

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        body: Any = None,
        model: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message, status=429, body=body, model=model, headers=headers)
        self.retry_after = retry_after


class ImagesRefused(LMResponseError):
    """The endpoint said the model takes no images: send them to a vision model instead.

    Never retried: the same model refuses the same way every time. ``model`` names it.
    """


class WorkerError(RLMError):
    """A map item's worker failed (a Ray task died or could not start); ``cause`` is what it raised."""

    def __init__(self, message: str, *, cause: BaseException | None = None) -> None:
        super().__init__(message)
        self.cause = cause


class SandboxError(RLMError):
    """The REPL could not run a step (not an error in the root's code)."""


class SandboxTimeout(SandboxError):
    """The sandbox kernel did not start, or did not answer, within its deadline.

    A step that runs past its timeout is not this: it is interrupted and the root reads
    why, so the run goes on.
    """


class LimitExceeded(RLMError):
    """A run stopped at a limit. ``partial`` is the result so far, if any."""

    def __init__(self, message: str, *, partial: Any = None) -> None:
        super().__init__(message)
        self.partial = partial


class BudgetExceeded(LimitExceeded):
    """A ``Budget`` limit was reached, so the call was not sent (or was cut at the time limit).

    ``budget`` is the field that ran out (``"max_calls"``, ``"max_tokens"``,
    ``"max_cost_usd"`` or ``"max_time_s"``); ``spent`` and ``limit`` are in its unit.
    """

    def __init__(self, message: str, *, budget: str, spent: float, limit: float, partial: Any = None) -> None:
        super().__init__(message, partial=partial)
        self.budget = budget
        self.spent = spent
        self.limit = limit


class ContextWindowExceeded(LimitExceeded):
    """A prompt has more tokens than the model accepts, so it was not sent.

    ``tokens`` is the prompt's count and ``limit`` the model's window: split the text
    (``chunk(text, max_tokens=...)`` in the REPL) and send the pieces.
    """

    def __init__(self, message: str, *, model: str, tokens: int, limit: int, partial: Any = None) -> None:
        super().__init__(message, partial=partial)
        self.model = model
        self.tokens = tokens
        self.limit = limit


class AnswerError(RLMError):
    """The root's answer did not fit the requested ``schema`` even after one corrective round.

    ``text`` is the root's last answer as written and ``problem`` the validation error;
    ``partial`` is the result so far, with that text as its answer.
    """

    def __init__(self, message: str, *, text: str, problem: str, partial: Any = None) -> None:
        super().__init__(message)
        self.text = text
        self.problem = problem
        self.partial = partial


class Cancelled(RLMError):
    """The run was cancelled before it finished."""

    def __init__(self, message: str = "run cancelled", *, partial: Any = None) -> None:
        super().__init__(message)
        self.partial = partial


class TraceFormatError(RLMError, ValueError):
    """A trace log (JSONL) holds a line that is not an event."""

    def __init__(self, message: str, *, path: str, line: int) -> None:
        super().__init__(message)
        self.path = path
        self.line = line


def check_int(name: str, value: object, minimum: int = 1, maximum: int | None = None) -> int:
    """``value`` if it is an int from ``minimum`` (to ``maximum``), else a ``ConfigError`` naming the setting.

    The one check of every count rlm takes: ``True`` is an int to Python but never a count.
    """
    too_big = maximum is not None and isinstance(value, int) and value > maximum
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum or too_big:
        bound = f">= {minimum}" if maximum is None else f"from {minimum} to {maximum}"
        raise ConfigError(f"{name} must be an int {bound}, got {value!r}")
    return value


def check_positive(name: str, value: object, unit: str = "") -> float:
    """``value`` if it is a number > 0 (``unit``: what it counts), else a ``ConfigError`` naming the setting.

    The one check of every amount rlm takes: not a bool, not NaN.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ConfigError(f"{name} must be a positive number{f' of {unit}' if unit else ''}, got {value!r}")
    return float(value)


def check_seconds(name: str, value: object) -> float:
    """``value`` if it is a positive number of seconds, else a ``ConfigError`` naming the setting."""
    return check_positive(name, value, "seconds")
