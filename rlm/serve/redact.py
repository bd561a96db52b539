"""Log records scrubbed of the server's secrets as they are made (``rlm.trace.redact`` does the scrubbing).

The key never reaches the sandbox, but text that comes back from the upstream can carry
it (a proxy that echoes a header into an error body), so every response, streamed
delta, saved trace and log line passes through the service's one ``Redactor`` on its
way out; this module covers the log lines.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

from ..trace.redact import Redactor


class _Scrubbed:
    """A log message rendered and scrubbed when a handler formats it, not when the record is made.

    So logging stays as cheap and as forgiving as usual: a record no handler formats is
    never rendered, and a message whose arguments do not fit fails in the handler (which
    reports it), not in the code that logged it.
    """

    __slots__ = ("args", "msg", "redact")

    def __init__(self, msg: object, args: Any, redact: Redactor) -> None:
        self.msg, self.args, self.redact = msg, args, redact

    def __str__(self) -> str:
        text = str(self.msg)
        if self.args:
            text = text % self.args
        return self.redact(text)


@contextlib.contextmanager
def scrubbed_logs(redactor: Redactor) -> Iterator[None]:
    """While serving, every log record (any logger, any handler) carries its message scrubbed of the secrets.

    Why at record creation, not as a handler's filter: a filter guards only the handlers it
    is put on, and an embedding application (or a test) brings its own. A traceback is
    rendered at once, scrubbed, and kept as text.
    """
    make = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make(*args, **kwargs)
        record.msg, record.args = _Scrubbed(record.msg, record.args, redactor), None
        if record.exc_info:
            record.exc_text = redactor(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return record

    logging.setLogRecordFactory(factory)
    try:
        yield
    finally:
        if logging.getLogRecordFactory() is factory:
            logging.setLogRecordFactory(make)
