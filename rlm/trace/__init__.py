"""Trace events for runs: one stream that logs, widgets and progress subscribe to."""

from .events import SPAN_KINDS, Event, Tracer
from .jsonl import JsonlWriter, iter_events
from .state import RunState
from .trace import Trace
from .tree import Span, build_tree

__all__ = ["SPAN_KINDS", "Event", "JsonlWriter", "RunState", "Span", "Trace", "Tracer", "build_tree", "iter_events"]
