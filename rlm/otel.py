"""``rlm.otel``: the documented home of the OpenTelemetry exporter; it lives by the trace (``rlm.trace.otel``)."""

from .trace.otel import OpenTelemetrySubscriber

__all__ = ["OpenTelemetrySubscriber"]
