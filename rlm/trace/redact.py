"""Secrets out of what leaves rlm: served responses, saved traces, exported examples, log lines.

One ``Redactor`` replaces with ``[redacted]``:

- the exact secrets its caller knows (an upstream key, a bearer token, a URL's
  ``user:password``; ``url_secrets`` finds the last);
- the values of the environment's ``*_KEY``/``*_TOKEN``/``*_SECRET``/``*_PASSWORD``
  variables (8 characters or more: shorter ones would mask ordinary words);
- what any secret looks like: ``sk-...`` keys, ``Bearer <token>``, and the
  ``user:password@`` of a URL.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from .events import Event, Subscriber

REDACTED = "[redacted]"
#: Given secrets shorter than this are not searched for; environment values need twice as many.
MIN_SECRET = 4
_SECRET_VARS = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD)$", re.I)
_SECRET_PATTERNS = (
    (re.compile(r"\bsk-[A-Za-z0-9_\-]{16,}"), REDACTED),
    (re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._~+/\-]{16,}=*"), f"Bearer {REDACTED}"),
    (re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)[^/\s:@]+:[^/\s@]+@"), rf"\g<1>{REDACTED}@"),
)


class Redactor:
    """Replaces secrets in text and in JSON-like values; ``extra``: the exact secrets the caller knows.

    ``environ``: where key-like variables are read (default ``os.environ``, at construction).
    """

    def __init__(self, extra: Iterable[str] = (), *, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        found = {v for k, v in env.items() if _SECRET_VARS.search(k) and len(v) >= 2 * MIN_SECRET}
        self.secrets = sorted(found | {s for s in extra if s and len(s) >= MIN_SECRET}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        for pattern, replacement in _SECRET_PATTERNS:
            text = pattern.sub(replacement, text)
        return text

    def value(self, value: Any) -> Any:
        """A copy of JSON-like ``value`` with every string redacted, keys too (the original is left as it is)."""
        if isinstance(value, str):
            return self(value)
        if isinstance(value, (list, tuple)):
            return [self.value(v) for v in value]
        if isinstance(value, dict):
            return {self.value(k): self.value(v) for k, v in value.items()}
        return value

    def event(self, event: Event) -> Event:
        return Event(event.kind, event.id, event.parent, event.ts, self.value(event.data))

    def subscriber(self, inner: Subscriber) -> Subscriber:
        """``inner`` fed redacted copies of each event (a trace file written from these holds no secret)."""

        def redacted(event: Event) -> None:
            inner(self.event(event))

        return redacted


def url_secrets(url: str | None) -> tuple[str, ...]:
    """A URL's ``user:password`` (and the password alone, when long enough not to be a common word)."""
    if not url:
        return ()
    try:
        parts = urlsplit(url)
    except ValueError:
        return ()
    found: list[str] = []
    if parts.password:
        found.append(f"{parts.username or ''}:{parts.password}")
        if len(parts.password) >= 2 * MIN_SECRET:
            found.append(parts.password)
    return tuple(found)
