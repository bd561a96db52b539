"""The live notebook view of a run: an anywidget fed by trace events, throttled.

Events arrive on rlm's loop thread while the cell is busy; widget trait updates made
there reach the browser at once (measured, see docs/widgets.md). Each flush re-renders
only the sections whose parts changed, at most every ``MIN_INTERVAL`` seconds, and the
interval stretches when rendering gets expensive, so 2,000 sub-calls cost the kernel a
few percent of one core. When the run ends the widget is replaced by the same view as
static HTML, which is what the saved notebook keeps. Without a widget (headless
executors), the static view itself is redrawn in place, at most every
``STATIC_INTERVAL`` seconds.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from pathlib import Path
from typing import Any

import anywidget
import traitlets

from .. import runtime
from ..runtime import RunControl
from ..trace import fanout, html
from ..trace.events import Event
from ..trace.progress import Progress
from ..trace.state import RunState

log = logging.getLogger("rlm")

#: Fastest redraw: 10 per second.
MIN_INTERVAL = 0.1
#: A flush may use at most 1/ADAPT of the time between flushes.
ADAPT = 20.0
#: Redraw at least this often while running, so the clock and running bars move.
HEARTBEAT = 1.0
#: Fastest redraw of the static view, which resends the whole view each time.
STATIC_INTERVAL = 2.0


class LiveView(anywidget.AnyWidget):
    """The browser side: five HTML sections, the calls they paint, a Stop button (``live.js``)."""

    _esm = Path(__file__).with_name("live.js")
    _css = html.css()
    header = traitlets.Unicode("").tag(sync=True)
    iterations = traitlets.Unicode("").tag(sync=True)
    stream = traitlets.Unicode("").tag(sync=True)
    tree = traitlets.Unicode("").tag(sync=True)
    timeline = traitlets.Unicode("").tag(sync=True)
    calls = traitlets.Dict().tag(sync=True)
    palette = traitlets.Dict(
        {"status": fanout.COLOURS, "root": fanout.ROOT_COLOURS, "names": fanout.STATUS_NAMES, "lane_px": fanout.LANE_PX,
         "no_math": html.NO_MATH}
    ).tag(sync=True)


def _route_to_sender(widget: anywidget.AnyWidget) -> None:
    """Let the frontend's messages reach us while the cell is busy.

    JupyterLab (4.4+) sends comm messages on a kernel subshell, which ipykernel 7 runs
    on its own thread, so a click is handled while the main thread waits on the run.
    But ipykernel routes a comm's incoming messages back to the shell that last
    *published* on it, and our updates are published from the busy cell, so it would
    queue the click behind the cell. Honour the subshell the frontend chose instead.

    There is no public way to say so: this overrides ipykernel's private
    ``Comm._reply_subshell_for(data, default)`` (ipykernel 7), and
    tests/notebooks/test_live_view.py fails when ipykernel renames it. Without it,
    Stop waits for the cell; Kernel > Interrupt still stops the run.
    """
    comm = getattr(widget, "comm", None)
    if comm is None:
        return
    if hasattr(comm, "_reply_subshell_for"):
        comm._reply_subshell_for = lambda data, default: default
    elif hasattr(comm, "_reply_subshell_ids"):  # subshells without the hook we know: say so
        log.warning("rlm: this ipykernel routes widget messages differently; Stop may wait for the cell "
                    "(Kernel > Interrupt works)")


class LiveSession:
    """One run's live view: a ``Tracer`` subscriber that drives a ``LiveView``, or
    redraws the static view where no widget is wanted (``widget=False``)."""

    def __init__(self, control: RunControl | None = None, *, widget: bool = True) -> None:
        self.control = control
        self.state = RunState()
        self.widget = LiveView() if widget else None
        if self.widget is not None:
            _route_to_sender(self.widget)
            self.widget.on_msg(self._on_msg)
        self.handle: Any = None
        self._flush_lock = threading.Lock()
        self._timer: asyncio.TimerHandle | None = None
        self._due = 0.0
        self._last = 0.0
        self._floor = MIN_INTERVAL if widget else STATIC_INTERVAL
        self._interval = self._floor
        self._finished = False
        self._closed = False

    def show(self) -> None:
        """Display the widget (or the static view) in the current cell's output."""
        from IPython.display import display

        if self.widget is None:
            self.handle = display(self._static(), raw=True, display_id=True)
            return
        self.flush()
        self.handle = display(self.widget, display_id=True)

    # -- events in, redraws out ----------------------------------------------------

    def __call__(self, event: Event) -> None:
        self.state(event)
        if event.kind == "run.end" and event.id == self.state.root:
            self._finished = True
            self.flush()
            return
        self._schedule()

    def _schedule(self, delay: float | None = None) -> None:
        """Arm the one redraw timer (on rlm's loop) for ``delay``, or as soon as the throttle allows."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # an event fed from another thread: hop onto the loop
            runtime.get_loop().call_soon_threadsafe(self._schedule, delay)
            return
        if self._closed:
            return
        now = time.monotonic()
        if delay is None:
            delay = max(0.0, self._last + self._interval - now)
        if self._timer is not None:
            if self._due <= now + delay:
                return
            self._timer.cancel()
        self._due = now + delay
        self._timer = loop.call_later(delay, self._tick)

    def _tick(self) -> None:
        self._timer = None
        self.flush()
        if not self._finished:
            self._schedule(HEARTBEAT)

    def flush(self) -> None:
        """Redraw the sections that changed since the last flush."""
        with self._flush_lock:
            if self._closed:
                return
            started = time.perf_counter()
            if self.widget is None:
                if self.handle is not None:
                    self.handle.update(self._static(), raw=True)
            else:
                parts = self.state.changed()
                sections = html.render_sections(parts, live=True)
                with self.widget.hold_sync():
                    for name, value in sections.items():
                        setattr(self.widget, name, value)
                    if "calls" in parts:
                        self.widget.calls = parts["calls"]
            cost = time.perf_counter() - started
            self._last = time.monotonic()
            self._interval = max(self._floor, ADAPT * cost)

    def _on_msg(self, widget: Any, content: Any, buffers: Any) -> None:
        """The Stop button, and a click on a call (run on a kernel subshell thread, beside the busy cell).

        A call's content is sent only when it is clicked, so 2,000 sub-calls cost the
        browser nothing until someone looks at one.
        """
        if not isinstance(content, dict) or self.widget is None:
            return
        if content.get("event") == "detail":
            index = content.get("i")
            found = self.state.detail(index) if isinstance(index, int) and not isinstance(index, bool) else None
            if found is not None:
                self.widget.send({"detail": index, "html": fanout.call_detail(found)})
            return
        if content.get("event") != "stop" or self.control is None:
            return
        log.info("rlm: Stop pressed; cancelling the run")
        self.state.mark_stopping()
        self.control.stop()
        self.flush()

    # -- the record ----------------------------------------------------------------

    def record(self) -> dict[str, str]:
        """The finished view as a display bundle: static HTML plus a one-line summary."""
        parts = self.state.parts(details=True)
        header = parts["header"]
        progress = Progress(**header["progress"])
        status = html.BADGES.get(header["status"], header["status"])
        summary = f"rlm run {header['query'][:60]!r}: {status} · {progress.line().removeprefix('rlm ')}"
        return {"text/html": html.render(parts), "text/plain": summary}

    def _static(self) -> dict[str, str]:
        """The record, or an empty output before the run has started."""
        return {"text/plain": ""} if self.state.t0 is None else self.record()

    def finish(self) -> None:
        """Replace the view with the static record and release the widget (main thread)."""
        with self._flush_lock:
            self._closed = True
        if self.handle is not None:
            self.handle.update(self._static(), raw=True)
        if self.widget is not None:
            self.widget.layout.close()
            self.widget.close()
