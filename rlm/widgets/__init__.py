"""Notebook views of runs. Importing this package imports no widget library.

``watch`` is what ``RLM.completion`` uses: in a Jupyter kernel it shows a live view
of the run and leaves the finished view behind as static HTML; elsewhere it does
nothing.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING

from ..errors import ConfigError
from ..trace.events import Subscriber

if TYPE_CHECKING:
    from ..control import RunControl

log = logging.getLogger("rlm")

__all__ = ["in_notebook", "watch"]


def in_notebook() -> bool:
    """True inside a Jupyter kernel (IPython with a kernel attached), False in scripts and terminals."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    shell = ipython.get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


@contextlib.contextmanager
def watch(view: bool | None, control: RunControl | None = None) -> Iterator[list[Subscriber]]:
    """Subscribers that show one run live; the view becomes a static record on exit.

    ``view``: None shows it in a notebook kernel only, False never, True always (and
    raises ``ConfigError`` where it cannot).
    """
    wanted = in_notebook() if view is None else view
    if not wanted:
        yield []
        return
    if importlib.util.find_spec("anywidget") is None:
        message = "the live view needs anywidget, which rlm depends on: pip install anywidget"
        if view:
            raise ConfigError(message)
        log.warning("rlm: %s", message)
        yield []
        return
    if view and not in_notebook():
        raise ConfigError("view=True needs a Jupyter kernel; outside one, pass view=None or False")
    from .live import LiveSession

    session = LiveSession(control)
    session.show()
    try:
        yield [session]
    finally:
        session.finish()
