"""Trace events as OpenTelemetry spans, so Jaeger, Phoenix or Langfuse show a run's recursion.

Example::

    from rlm.otel import OpenTelemetrySubscriber
    rlm.subscribers.append(OpenTelemetrySubscriber())   # the global tracer provider, or pass one

Spans nest as the trace does (run > iteration > exec > batch > call, tools and child runs
where they start) with the event's own timestamps. Model calls follow the GenAI semantic
conventions: span ``chat {model}`` of kind CLIENT with ``gen_ai.operation.name``,
``gen_ai.request.model``, ``gen_ai.usage.input_tokens``/``output_tokens`` and
``gen_ai.response.finish_reasons``; a run is ``invoke_agent rlm``, a tool
``execute_tool {name}``. Prompts and replies are not exported (they may hold private
text, and the trace events carry only their sizes). Needs ``pip install "rlm[otel]"``.
"""

from __future__ import annotations

import threading
from typing import Any

from ..errors import ConfigError
from .events import Event

_OK = ("ok", None, "")


class OpenTelemetrySubscriber:
    """A trace subscriber that opens a span at each ``*.start`` and ends it at the matching ``*.end``."""

    def __init__(self, tracer_provider: Any = None, *, name: str = "rlm") -> None:
        try:
            from opentelemetry import trace
        except ImportError:
            raise ConfigError('the OpenTelemetry exporter needs opentelemetry-sdk: pip install "rlm[otel]"') from None
        self._trace = trace
        provider = tracer_provider if tracer_provider is not None else trace.get_tracer_provider()
        self._tracer = provider.get_tracer(name)
        self._spans: dict[str, Any] = {}
        self._lock = threading.Lock()

    def __call__(self, event: Event) -> None:
        if event.phase == "start":
            self._start(event)
        elif event.phase == "end":
            self._end(event)
        else:
            with self._lock:
                span = self._spans.get(event.id)
            if span is not None:
                span.add_event(event.kind, attributes=_plain(event.data), timestamp=_ns(event.ts))

    def _start(self, event: Event) -> None:
        from opentelemetry.trace import SpanKind

        data = event.data
        name, kind, attributes = f"rlm.{event.span}", SpanKind.INTERNAL, _plain(data)
        if event.span == "call":
            model = str(data.get("model", ""))
            name, kind = f"chat {model}", SpanKind.CLIENT
            attributes.update({"gen_ai.operation.name": "chat", "gen_ai.request.model": model})
        elif event.span == "run":
            name = "invoke_agent rlm"
            attributes.update({"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "rlm",
                               "gen_ai.request.model": str(data.get("model", ""))})
        elif event.span == "tool":
            name = f"execute_tool {data.get('name', '')}"
            attributes.update({"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": str(data.get("name"))})
        with self._lock:
            parent = self._spans.get(event.parent or "")
        context = self._trace.set_span_in_context(parent) if parent is not None else None
        span = self._tracer.start_span(name, context=context, kind=kind, attributes=attributes,
                                       start_time=_ns(event.ts))
        with self._lock:
            self._spans[event.id] = span

    def _end(self, event: Event) -> None:
        from opentelemetry.trace import Status, StatusCode

        with self._lock:
            span = self._spans.pop(event.id, None)
        if span is None:
            return
        data = event.data
        span.set_attributes(_plain(data))
        if event.span == "call":
            span.set_attributes({"gen_ai.usage.input_tokens": int(data.get("prompt_tokens") or 0),
                                 "gen_ai.usage.output_tokens": int(data.get("completion_tokens") or 0)})
            if data.get("finish_reason"):
                span.set_attribute("gen_ai.response.finish_reasons", [str(data["finish_reason"])])
        status, error = data.get("status"), data.get("error")
        if error or status not in _OK:
            span.set_status(Status(StatusCode.ERROR, str(error or status)[:500]))
        span.end(end_time=_ns(event.ts))


def _ns(ts: float) -> int:
    return int(ts * 1_000_000_000)


def _plain(data: dict[str, Any]) -> dict[str, Any]:
    """Event data as span attributes: scalars as they are, anything else as short text, under ``rlm.``."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if value is None:
            continue
        if isinstance(value, (bool, int, float)):
            out[f"rlm.{key}"] = value
        else:
            out[f"rlm.{key}"] = str(value)[:1000]
    return out
