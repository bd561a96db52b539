"""Every way a model call fails, as rlm's error tree: HTTP statuses, connections, the SDK's exceptions.

Both clients map their failures through these functions, so a 429, a refused
connection or an unusable body is the same ``LMError`` whichever transport met it,
and the dispatcher's retry policy sees one kind of error for one kind of failure.
"""

from __future__ import annotations

from typing import Any

from ..errors import LMConnectionError, LMError, LMRateLimited, LMResponseError, LMTimeout
from .retry import retry_after
from .stream import error_in_stream


def status_error(
    status: int, message: str, body: Any, headers: Any, model: str, base_url: str | None = None,
) -> LMResponseError:
    """The typed error for an HTTP error status; every transport maps statuses through here.

    ``message`` is the server's text as the openai SDK words it ("Error code: 429 - ...").
    A 404 at a ``base_url`` without ``/v1`` says to add it: the commonest slip with local servers.
    """
    if status == 404 and base_url and not base_url.rstrip("/").endswith("/v1") and "/v1/" not in base_url:
        message += f". OpenAI-compatible servers serve under /v1: try base_url={base_url.rstrip('/') + '/v1'!r}"
    kept = {k.lower(): v for k, v in headers.items()} if headers is not None else None
    if status == 429:
        return LMRateLimited(
            f"rate limited by the endpoint for {model}: {message}",
            retry_after=retry_after(kept),
            body=body,
            model=model,
            headers=kept,
        )
    return LMResponseError(
        f"HTTP {status} from the endpoint for {model}: {message}", status=status, body=body, model=model, headers=kept
    )


def connection_error(exc: BaseException, model: str, url: str | None) -> LMConnectionError:
    """``LMConnectionError`` naming the URL, and saying so when nothing listens there."""
    refused = _refused(exc)
    where = f" at {url}" if url else ""
    why = "connection refused: is the server running there?" if refused else f"{type(exc).__name__}: {exc}"
    error = LMConnectionError(f"cannot reach the endpoint for {model}{where}: {why}", model=model)
    error.refused = refused
    return error


def _refused(exc: BaseException | None) -> bool:
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, ConnectionRefusedError) or "Connection refused" in str(exc):
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


def translate_error(exc: Exception, model: str, base_url: str | None = None) -> LMError:
    """Map an ``openai`` exception onto rlm's tree, keeping status and body."""
    import openai

    if isinstance(exc, LMError):
        return exc
    if isinstance(exc, openai.APITimeoutError):
        return LMTimeout(f"request to {model} timed out", model=model)
    if isinstance(exc, openai.APIConnectionError):
        return connection_error(exc, model, base_url or "https://api.openai.com/v1")
    if isinstance(exc, openai.APIStatusError):
        return status_error(exc.status_code, exc.message, exc.body, exc.response.headers, model, base_url)
    if isinstance(exc, openai.APIError) and not isinstance(exc, openai.APIResponseValidationError) \
            and exc.body is not None:  # an error event in a stream: the SDK raises a bare APIError
        return error_in_stream(exc.body, model)
    if isinstance(exc, openai.APIResponseValidationError):
        return LMResponseError(
            f"unusable response for {model}: {exc.message}",
            status=exc.status_code,
            body=exc.body,
            model=model,
        )
    return LMResponseError(f"unusable response for {model}: {type(exc).__name__}: {exc}", model=model)
