"""Show a finished run again, from its trace or its log, with every call clickable."""

from __future__ import annotations

from typing import Any

from ..errors import ConfigError
from ..trace.trace import Trace


def as_trace(source: Any) -> Trace:
    """A ``Trace`` from a trace, a result (its ``.trace``) or the path of a JSONL log."""
    try:
        return Trace.of(source)
    except TypeError:
        raise ConfigError(f"show() takes a Trace, an RLMResult or a log path, not {type(source).__name__}") from None


def show(source: Any) -> None:
    """Display a finished run's live view in the notebook, the calls' detail on click.

    Unlike the static record (``Trace._repr_html_``, which lists at most 200 calls),
    the widget asks the kernel for any call's prompt and reply when it is clicked.
    Where the frontend draws no widgets, the static record is shown instead.
    """
    from IPython.display import display

    from . import current_request, in_notebook, wants_widget
    from .live import LiveSession

    trace = as_trace(source)
    session = LiveSession(widget=in_notebook() and wants_widget(current_request()))
    for event in trace:
        session.state(event)
    if session.widget is None:
        display(session.record(), raw=True)
        return
    session.show()
