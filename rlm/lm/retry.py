"""One retry policy for every transport: what to retry, and how long to wait.

Only what can succeed later is retried: 408, 409, 429, 5xx, timeouts and dropped
connections. 400/401/403/404/422 would fail the same way again, so they surface at
once, whatever the server's ``x-should-retry`` says: a retried bad request or bad key
only burns quota. For every other status ``x-should-retry`` wins: ``false`` stops a
retry of a 5xx/429 (the server knows the call is doomed), ``true`` makes an unlisted
status (say a 425) retryable. The server's own hints win over our backoff:
``retry-after-ms``, ``Retry-After`` (seconds or an HTTP date) and, for an exhausted
quota, the ``x-ratelimit-reset-*`` headers. Without a hint we back off exponentially
with jitter, so a burst of failures does not come back as a burst. Transports are built
with their own retries off (the openai SDK gets ``max_retries=0``) so there is exactly
one policy.
"""

from __future__ import annotations

import asyncio
import email.utils
import math
import random
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from ..errors import (
    ConfigError,
    ImagesRefused,
    LMConnectionError,
    LMError,
    LMRateLimited,
    LMResponseError,
    LMTimeout,
    check_int,
)

T = TypeVar("T")

#: Statuses worth another try (the set the openai SDK retries, too).
RETRY_STATUSES = frozenset({408, 409, 429})
#: Statuses that fail the same way every time: never retried, not even on ``x-should-retry: true``.
#: The wait before the one retry of a refused connection.
REFUSED_RETRY_S = 0.3
NEVER_RETRY_STATUSES = frozenset({400, 401, 403, 404, 422})

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float | None:
    """Seconds in an ``x-ratelimit-reset-*`` value: ``"1s"``, ``"6m0s"``, ``"20ms"``, ``"0.5"``."""
    text = text.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    return sum(float(n) * _UNIT[u] for n, u in parts)


def _header(headers: Mapping[str, str] | None, name: str) -> str | None:
    return None if headers is None else headers.get(name)


def retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds the server asked us to wait: ``retry-after-ms``, then ``Retry-After`` (number or date)."""
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = _header(headers, name)
        if value is None:
            continue
        try:
            seconds = float(value) * scale
        except ValueError:
            continue
        if math.isfinite(seconds):
            return max(0.0, seconds)
    value = _header(headers, "retry-after")
    if value is None:
        return None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when.timestamp() - time.time())


def quota_reset(headers: Mapping[str, str] | None) -> float | None:
    """Seconds until an exhausted quota (``x-ratelimit-remaining-* == 0``) resets, if the server says.

    This is a wait for every call, not just the one that failed, so the limiter pauses on it.
    """
    waits = []
    for kind in ("requests", "tokens"):
        remaining = _header(headers, f"x-ratelimit-remaining-{kind}")
        reset = _header(headers, f"x-ratelimit-reset-{kind}")
        if remaining is None or reset is None:
            continue
        try:
            exhausted = float(remaining) <= 0
        except ValueError:
            continue
        seconds = parse_duration(reset)
        if exhausted and seconds is not None:
            waits.append(seconds)
    return max(waits) if waits else None


def server_delay(exc: LMError) -> float | None:
    """The wait the server asked for on this error, if any."""
    headers = getattr(exc, "headers", None)
    hint = retry_after(headers)
    if hint is None:
        hint = quota_reset(headers)
    if hint is None and isinstance(exc, LMRateLimited):
        hint = exc.retry_after
    return hint


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently a failed call is tried again.

    Example::

        RLM(..., endpoint=Endpoint(retries=RetryPolicy(max_attempts=8, max_delay=60)))

    ``max_attempts`` counts the first try (1 = never retry). 429s are counted apart,
    up to ``max_rate_limited`` per call: the adaptive limiter finds an endpoint's
    capacity by probing just past it, so a few 429s are the expected price of full
    throughput, not a failure. A server hint longer than ``max_server_delay`` is not
    waited out: the call fails at once with its error.
    """

    max_attempts: int = 6
    max_rate_limited: int = 20
    base_delay: float = 0.5
    max_delay: float = 30.0
    max_server_delay: float = 120.0
    jitter: float = 0.25

    def __post_init__(self) -> None:
        for name in ("max_attempts", "max_rate_limited"):
            check_int(f"RetryPolicy.{name}", getattr(self, name))
        for name in ("base_delay", "max_delay", "max_server_delay"):
            if not getattr(self, name) >= 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if not 0 <= self.jitter <= 1:
            raise ConfigError(f"jitter must be between 0 and 1, got {self.jitter!r}")

    @staticmethod
    def retryable(exc: BaseException) -> bool:
        """True for failures that can succeed later; never for 400/401/403/404/422, nor a model refusing images."""
        if isinstance(exc, ImagesRefused):
            return False
        if isinstance(exc, (LMTimeout, LMConnectionError)):
            return True
        if isinstance(exc, LMResponseError) and exc.transient:
            return True
        if not isinstance(exc, LMResponseError) or exc.status is None or exc.status in NEVER_RETRY_STATUSES:
            return False
        should = _header(exc.headers, "x-should-retry")
        if should in ("true", "false"):
            return should == "true"
        return exc.status in RETRY_STATUSES or exc.status >= 500

    @staticmethod
    def rate_limited(exc: BaseException) -> bool:
        return isinstance(exc, LMResponseError) and exc.status == 429

    def delay(self, exc: BaseException, attempt: int, rand: Callable[[], float] = random.random) -> float | None:
        """Seconds to wait after the ``attempt``-th failure of this kind (429 or other), or None to give up."""
        limit = self.max_rate_limited if self.rate_limited(exc) else self.max_attempts
        if isinstance(exc, LMConnectionError) and exc.refused:
            # Nothing listens: one quick second try (a server restarting), then fail fast.
            return None if attempt >= min(2, limit) else min(self.base_delay, REFUSED_RETRY_S)
        if attempt >= limit or not self.retryable(exc):
            return None
        hint = server_delay(exc) if isinstance(exc, LMError) else None
        if hint is not None:
            if hint > self.max_server_delay:
                return None
            # Never earlier than asked; spread the herd a little after it.
            return hint + rand() * self.jitter * min(hint, 4.0)
        backoff = min(self.max_delay, self.base_delay * 2.0 ** (attempt - 1))
        return backoff * (1.0 - self.jitter * rand())


async def call_with_retries(
    attempt: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    on_retry: Callable[[int, BaseException, float], None] | None = None,
) -> tuple[T, int]:
    """Run ``attempt()`` until it succeeds or ``policy`` gives up; returns (result, attempts).

    The last error is raised as it is: a typed ``LMError`` the caller turns into the
    item's ``FailedCall``. Nothing is held while waiting (the limiter slot belongs to
    one attempt), so backing-off calls leave the endpoint to the others.
    """
    n = 1
    failures = {True: 0, False: 0}  # keyed by "was it a 429"
    while True:
        try:
            return await attempt(), n
        except LMError as exc:
            kind = policy.rate_limited(exc)
            failures[kind] += 1
            wait = policy.delay(exc, failures[kind])
            if wait is None:
                raise
            if on_retry is not None:
                on_retry(n, exc, wait)
            await asyncio.sleep(wait)
            n += 1
