"""Trace events for runs: one stream that logs, widgets and progress subscribe to."""

from .events import Event, Tracer

__all__ = ["Event", "Tracer"]
