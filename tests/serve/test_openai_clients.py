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


async def test_async_client_runs_requests_at_once(start) -> None:
    with ScriptedLM(root=lambda r: "FINAL(done)") as upstream:
        running = start(upstream)
        import asyncio

        async with openai.AsyncOpenAI(base_url=running.base_url, api_key="unused", max_retries=0) as aclient:
            replies = await asyncio.gather(*[
                aclient.chat.completions.create(model="rlm/root", messages=[{"role": "user", "content": f"q{i}"}])
                for i in range(4)])
        assert [r.choices[0].message.content for r in replies] == ["done"] * 4
        assert len({r.id for r in replies}) == 4


def test_streaming_sends_progress_as_reasoning_then_the_answer_and_usage(start) -> None:
    root = [code("parts = llm_batch(['a', 'b', 'c'])", "print(parts)"), "FINAL(streamed answer)"]
    with ScriptedLM(root=root, sub=lambda r: "x") as upstream:
        running = start(upstream)
        stream = client(running).chat.completions.create(
            model="rlm/root", messages=[{"role": "user", "content": "go"}], stream=True,
            stream_options={"include_usage": True})
        chunks = list(stream)
    reasoning = "".join((c.choices[0].delta.model_extra or {}).get("reasoning_content") or ""
                        for c in chunks if c.choices)
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert content == "streamed answer"
    assert "Step 1" in reasoning and "llm_batch: 3 sub-calls" in reasoning and "Step 2" in reasoning
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.total_tokens > 0
    # Progress came before the answer.
    first_content = next(i for i, c in enumerate(chunks) if c.choices and c.choices[0].delta.content)
    last_reasoning = max(i for i, c in enumerate(chunks)
                         if c.choices and (c.choices[0].delta.model_extra or {}).get("reasoning_content"))
    assert last_reasoning < first_content


def test_structured_output_with_the_sdks_parse(start) -> None:
    from pydantic import BaseModel

    class City(BaseModel):
        name: str
        population: int

    root = [code("city = {'name': 'Paris', 'population': 2100000}"), "FINAL_VAR(city)"]
    with ScriptedLM(root=root) as upstream:
        running = start(upstream)
        reply = client(running).chat.completions.parse(
            model="rlm/root", messages=[{"role": "user", "content": "Which city?"}], response_format=City)
        assert reply.choices[0].message.parsed == City(name="Paris", population=2100000)
        # The root was shown the client's schema.
        assert '"population"' in upstream.root_requests[0].messages[-1]["content"]


def test_structured_output_that_never_fits_is_a_502_naming_the_schema(start) -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"],
              "additionalProperties": False}
    with ScriptedLM(root=lambda r: "FINAL(not a number)") as upstream:
        running = start(upstream)
        with pytest.raises(openai.APIStatusError) as caught:
            client(running).chat.completions.create(
                model="rlm/root", messages=[{"role": "user", "content": "n?"}],
                response_format={"type": "json_schema", "json_schema": {"name": "count", "schema": schema}})
        assert caught.value.status_code == 502
        assert caught.value.body["code"] == "invalid_structured_answer"


def test_a_bearer_token_is_required_when_set_and_the_key_is_never_echoed(start) -> None:
    with ScriptedLM(root=lambda r: "FINAL(ok)") as upstream:
        running = start(upstream, token=TOKEN)
        with pytest.raises(openai.AuthenticationError):
            client(running, api_key="wrong-token-0123456789").chat.completions.create(
                model="rlm/root", messages=[{"role": "user", "content": "q"}])
        reply = client(running, api_key=TOKEN).chat.completions.create(
            model="rlm/root", messages=[{"role": "user", "content": "q"}])
        assert reply.choices[0].message.content == "ok"
        # The upstream got the server's key, never the client's token.
        auth = {r.headers.get("authorization") for r in upstream.requests}
        assert auth == {f"Bearer {UPSTREAM_KEY}"}


def test_models_lists_the_served_names(start) -> None:
    with ScriptedLM() as upstream:
        running = start(upstream)
        models = client(running).models.list()
        assert [m.id for m in models.data] == ["rlm/root"]
        assert client(running).models.retrieve("rlm/root").id == "rlm/root"
        with pytest.raises(openai.NotFoundError):
            client(running).models.retrieve("rlm/nope")
        assert json.loads(models.model_dump_json())["data"][0]["rlm"] == {"root": "root", "sub": "sub"}


def test_json_object_answers_are_json(start) -> None:
    root = [code("found = {'rose': 'revenue', 'by': 12}"), "FINAL_VAR(found)"]
    with ScriptedLM(root=root) as upstream:
        running = start(upstream)
        reply = client(running).chat.completions.create(
            model="rlm/root", messages=[{"role": "user", "content": "What rose, by how much?"}],
            response_format={"type": "json_object"})
        assert json.loads(reply.choices[0].message.content) == {"rose": "revenue", "by": 12}
