"""Notebook views of runs. Importing this package imports no widget library.

``watch`` is what ``RLM.completion`` uses: in a Jupyter kernel it shows a live view
of the run and leaves the finished view behind as static HTML; elsewhere it does
nothing.

The view is a widget only where a notebook UI is drawing the cell. Headless
executors (nbclient, nbconvert, papermill) keep every widget's state in the saved
file, closed or not, so there the view is HTML redrawn in place and the file keeps
the record alone. ``RLM_LIVE_VIEW=widget`` or ``static`` overrides the choice.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING

from ..errors import ConfigError
from ..trace.events import Subscriber

if TYPE_CHECKING:
    from ..runtime import RunControl

log = logging.getLogger("rlm")

__all__ = ["in_notebook", "watch"]


def in_notebook() -> bool:
    """True inside a Jupyter kernel (IPython with a kernel attached), False in scripts and terminals."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    shell = ipython.get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def wants_widget(request: dict[str, object] | None) -> bool:
    """Whether the cell's ``execute_request`` came from a UI that draws widgets.

    Notebook UIs (JupyterLab, Notebook 7, VS Code) send request metadata such as the
    cell's id; jupyter_client-based executors and consoles send none.
    """
    choice = os.environ.get("RLM_LIVE_VIEW", "auto").strip().lower()
    if choice in ("widget", "static"):
        return choice == "widget"
    if choice != "auto":
        raise ConfigError(f"RLM_LIVE_VIEW={choice!r}: use widget, static or auto")
    metadata = request.get("metadata") if isinstance(request, dict) else None
    return isinstance(metadata, dict) and bool(metadata)


def current_request() -> dict[str, object] | None:
    ipython = sys.modules["IPython"].get_ipython()
    kernel = getattr(ipython, "kernel", None)
    get_parent = getattr(kernel, "get_parent", None)
    request = get_parent("shell") if callable(get_parent) else None
    return request if isinstance(request, dict) else None


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

    session = LiveSession(control, widget=wants_widget(current_request()))
    session.show()
    try:
        yield [session]
    finally:
        session.finish()
