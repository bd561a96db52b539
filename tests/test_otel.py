"""The OpenTelemetry exporter: a run's spans nest as its trace does, with the GenAI attributes."""

from __future__ import annotations

import pytest

from rlm import RLM, Endpoint
from rlm.testing import ScriptedLM

pytest.importorskip("opentelemetry.sdk", reason="the otel extra (opentelemetry-sdk) is not installed")

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from rlm.otel import OpenTelemetrySubscriber


def test_a_run_with_a_batch_and_a_child_run_exports_nested_genai_spans() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    program = "```repl\nparts = llm_batch(['a', 'b', 'c'])\nprint(rlm_query('inner', 'ctx'))\n```"
    with ScriptedLM(root=lambda r: program if "The query:\nouter" in r.messages[1]["content"] and len(
            r.messages) == 2 else "FINAL(done)") as lm:
        rlm = RLM("root", "sub", base_url=lm.base_url, api_key="k", sandbox="local", max_depth=2,
                  endpoint=Endpoint(retries=0))
        rlm.subscribers.append(OpenTelemetrySubscriber(provider))
        result = rlm.completion("ctx", "outer")
    spans = exporter.get_finished_spans()
    by_id = {s.context.span_id: s for s in spans}
    runs = [s for s in spans if s.name == "invoke_agent rlm"]
    calls = [s for s in spans if s.name.startswith("chat ")]
    assert len(runs) == 2 and len(calls) == result.usage.calls == 6  # 2 outer turns, 3 items, 1 inner turn
    top = next(s for s in runs if s.parent is None)
    inner = next(s for s in runs if s.parent is not None)
    assert all(s.context.trace_id == top.context.trace_id for s in spans)  # one trace for the whole tree

    def ancestors(span):
        while span.parent is not None:
            span = by_id[span.parent.span_id]
            yield span

    assert top in ancestors(inner) and any(a.name == "rlm.exec" for a in ancestors(inner))
    sub = next(s for s in calls if s.attributes["gen_ai.request.model"] == "sub")
    assert sub.attributes["gen_ai.operation.name"] == "chat" and sub.attributes["gen_ai.usage.input_tokens"] > 0
    assert any(a.name == "rlm.batch" for a in ancestors(sub))
    assert sum(s.attributes["gen_ai.usage.output_tokens"] for s in calls) == result.usage.completion_tokens
