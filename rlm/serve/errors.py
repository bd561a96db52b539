"""How a request fails: an HTTP status and an OpenAI-style error body, from one exception type.

Every refusal a protocol sends back is a ``RequestError``; ``from_run_error`` maps what
a run raised (rlm's own exception tree) onto one, so both servers say the same thing
with the same status. Messages are scrubbed of the server's secrets before they leave.
"""

from __future__ import annotations

from typing import Any

from ..errors import (
    AnswerError,
    BudgetExceeded,
    ConfigError,
    ContextWindowExceeded,
    LMError,
    LMRateLimited,
    LMTimeout,
    RLMError,
    SandboxError,
)

#: OpenAI's error ``type`` for each status this server sends.
TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
         404: "not_found_error", 405: "invalid_request_error", 413: "invalid_request_error",
         415: "invalid_request_error", 421: "invalid_request_error", 422: "invalid_request_error",
         429: "rate_limit_error", 500: "server_error", 502: "upstream_error",
         503: "server_error", 504: "timeout_error"}


class RequestError(Exception):
    """A request this server will not or could not answer: ``status``, a message, OpenAI's ``param``/``code``.

    ``retry_after``: seconds a client should wait (429, 503); ``retry=False`` tells clients that
    honour ``x-should-retry`` (the openai SDK does) not to send the same request again.
    """

    def __init__(self, status: int, message: str, *, param: str | None = None, code: str | None = None,
                 retry_after: float | None = None, retry: bool | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.retry_after = retry_after
        self.retry = retry

    def body(self) -> dict[str, Any]:
        """``{"error": {"message", "type", "param", "code"}}`` as OpenAI sends it."""
        return {"error": {"message": self.message, "type": TYPES.get(self.status, "server_error"),
                          "param": self.param, "code": self.code}}

    def headers(self) -> dict[str, str]:
        found: dict[str, str] = {}
        if self.retry_after is not None:
            found["Retry-After"] = str(max(1, round(self.retry_after)))
        if self.retry is not None:
            found["x-should-retry"] = "true" if self.retry else "false"
        return found


def from_run_error(exc: RLMError) -> RequestError:
    """The status a run's failure is sent back with (docs/serve.md has the table)."""
    text = " ".join(str(exc).split())[:1000]
    if isinstance(exc, BudgetExceeded):
        if exc.budget == "max_time_s":
            return RequestError(504, f"the run took longer than this server's limit of {exc.limit:g} s: {text}",
                                code="run_timeout", retry=False)
        return RequestError(400, f"the run reached this server's per-request limit {exc.budget}={exc.limit:g}: "
                                 f"{text}", code="budget_exceeded", retry=False)
    if isinstance(exc, ContextWindowExceeded):
        return RequestError(400, text, code="context_length_exceeded", retry=False)
    if isinstance(exc, AnswerError):
        return RequestError(502, f"the model's answer did not match the requested schema: {text}",
                            code="invalid_structured_answer", retry=False)
    if isinstance(exc, LMRateLimited):
        return RequestError(429, f"the upstream model endpoint is rate limiting: {text}", code="upstream_rate_limited",
                            retry_after=exc.retry_after or 5.0)
    if isinstance(exc, LMTimeout):
        return RequestError(504, f"the upstream model endpoint timed out: {text}", code="upstream_timeout")
    if isinstance(exc, LMError):
        return RequestError(502, f"the upstream model endpoint failed: {text}", code="upstream_error")
    if isinstance(exc, SandboxError):
        return RequestError(503, f"the sandbox could not run the root's code: {text}", code="sandbox_error",
                            retry_after=5.0)
    if isinstance(exc, ConfigError):
        return RequestError(400, text, code="invalid_request")
    return RequestError(500, f"{type(exc).__name__}: {text}", code="run_failed", retry=False)


def from_result(stopped: str, error: str | None) -> RequestError | None:
    """A finished run that still has no answer to send.

    ``failed_call``: its answer would be a failed sub-call's error text; ``fallback``: the
    root gave none even when told to answer at once (the text lists its variables, which
    is for a person debugging the run, not an answer a client should take as one).
    """
    if stopped == "fallback":
        return RequestError(502, "the root model gave no answer, even when asked to answer at once; the trace "
                                 "shows what it did", code="no_answer")
    if stopped == "failed_call":
        return RequestError(502, f"the run's answer is a failed model call: {' '.join((error or '').split())[:600]}",
                            code="upstream_error")
    return None
