"""The real ``openai`` SDK (sync, async, streaming, structured output) against ``rlm serve``."""

from __future__ import annotations

import json

import openai
import pytest

from rlm.testing import ScriptedLM
from tests.scripting import code

from .conftest import TOKEN, UPSTREAM_KEY


def client(running, **kwargs):  # type: ignore[no-untyped-def]
    return openai.OpenAI(base_url=running.base_url, api_key=kwargs.pop("api_key", "unused"), max_retries=0, **kwargs)


def test_sync_completion_answers_over_the_conversation_with_usage_of_every_call(start) -> None:
    root = [code("n = len(llm_batch([context[:10], context[10:]]))", "print(n)"), "FINAL(two halves)"]
    with ScriptedLM(root=root, sub=lambda r: "half") as upstream:
        running = start(upstream)
        reply = client(running).chat.completions.create(
            model="rlm/root", messages=[{"role": "user", "content": "The report says: revenue rose 12%."},
                                        {"role": "assistant", "content": "Noted."},
                                        {"role": "user", "content": "What rose?"}])
        assert reply.choices[0].message.content == "two halves"
        assert reply.choices[0].finish_reason == "stop"
        assert reply.model == "rlm/root"
        calls = upstream.requests
        assert len(calls) == 4  # two root turns, two sub-calls
        extra = reply.model_extra["rlm"]
        by_model = extra["by_model"]
        assert by_model["root"]["calls"] == 2 and by_model["sub"]["calls"] == 2
        assert reply.usage.prompt_tokens == sum(m["prompt_tokens"] for m in by_model.values()) > 0
        assert reply.usage.completion_tokens == sum(m["completion_tokens"] for m in by_model.values()) > 0
        assert extra["calls"] == 4 and extra["iterations"] == 2 and extra["stopped"] == "final"
        assert extra["trace"].startswith("/v1/traces/")
        # The earlier turns are the context: the root's first prompt describes it, the query is the last turn.
        first = calls[0].messages[-1]["content"]
        assert "What rose?" in first and "revenue rose 12%" in first
