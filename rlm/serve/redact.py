"""Keeping the server's secrets (the upstream key, the bearer token) out of what leaves it.

The key never reaches the sandbox, but text that comes back from the upstream can carry
it (a proxy that echoes a header into an error body), so every response, streamed
delta, saved trace and log line passes through one ``Redactor`` on its way out.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

from ..trace.events import Event, Subscriber

MASK = "[redacted]"
#: Secrets shorter than this are not searched for: they would mask ordinary words.
MIN_SECRET = 8


class Redactor:
    """Replaces each secret (at least 8 characters) with ``[redacted]`` in text and nested data."""

    def __init__(self, secrets: tuple[str, ...]) -> None:
        self.secrets = tuple(sorted({s for s in secrets if len(s) >= MIN_SECRET}, key=len, reverse=True))

    def text(self, value: str) -> str:
        for secret in self.secrets:
            if secret in value:
                value = value.replace(secret, MASK)
        return value

    def data(self, value: Any) -> Any:
        """A copy of JSON-like ``value`` with every string scrubbed (the original is left as it is)."""
        if not self.secrets:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.data(k): self.data(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.data(v) for v in value]
        return value

    def event(self, event: Event) -> Event:
        return Event(event.kind, event.id, event.parent, event.ts, self.data(event.data))

    def subscriber(self, inner: Subscriber) -> Subscriber:
        """``inner`` fed scrubbed copies of each event (a trace file written from these holds no secret)."""

        def scrubbed(event: Event) -> None:
            inner(self.event(event))

        return scrubbed


@contextlib.contextmanager
def scrubbed_logs(redactor: Redactor) -> Iterator[None]:
    """While serving, every log record (any logger, any handler) is created with the secrets scrubbed.

    Why at record creation, not as a handler's filter: a filter guards only the handlers it
    is put on, and an embedding application (or a test) brings its own. The message and a
    traceback are rendered once, scrubbed, and kept as text.
    """
    if not redactor.secrets:
        yield
        return
    make = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make(*args, **kwargs)
        record.msg = redactor.text(record.getMessage())
        record.args = None
        if record.exc_info:
            record.exc_text = redactor.text(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return record

    logging.setLogRecordFactory(factory)
    try:
        yield
    finally:
        if logging.getLogRecordFactory() is factory:
            logging.setLogRecordFactory(make)
