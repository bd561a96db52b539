"""A streamed request refused before it began gets a real status; a failure after, a clean error event."""

from __future__ import annotations

import json
import logging
from typing import Any

import httpx
import openai
import pytest

import rlm.serve.runs
import rlm.serve.streaming
from rlm.testing import ScriptedLM

QUESTION = [{"role": "user", "content": "q"}]


def events_of(response: httpx.Response) -> list[Any]:
    """The stream's events as sent; reading it raises if the HTTP framing is broken."""
    found: list[Any] = []
    for line in response.iter_lines():
        if line.startswith("data: "):
            data = line[len("data: "):]
            found.append(data if data == "[DONE]" else json.loads(data))
    return found


def test_a_model_the_server_cannot_make_is_a_400_before_the_stream(start, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rlm.serve.runs, "MAX_MODELS", 1)  # the configured model fills the server
    with ScriptedLM() as upstream:
        running = start(upstream, any_root=True, sub_model="sub")
        sdk = openai.OpenAI(base_url=running.base_url, api_key="unused", max_retries=0)
        with pytest.raises(openai.BadRequestError) as caught:
            for _ in sdk.chat.completions.create(model="rlm/another", messages=QUESTION, stream=True):
                pass
        assert caught.value.code == "too_many_models"
        assert upstream.stats["requests"] == 0


def test_an_unexpected_failure_of_the_run_is_an_error_event_then_done(start, monkeypatch: pytest.MonkeyPatch,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    real_run = rlm.serve.runs.Service.run

    async def run_then_fail(self: Any, *args: Any, **kwargs: Any) -> Any:
        await real_run(self, *args, **kwargs)
        raise RuntimeError("a bug in the server")

    monkeypatch.setattr(rlm.serve.runs.Service, "run", run_then_fail)
    with ScriptedLM(root=lambda r: "FINAL(x)") as upstream:
        running = start(upstream)
        body = {"model": "rlm/root", "messages": QUESTION, "stream": True}
        with httpx.stream("POST", f"{running.base_url}/chat/completions", json=body, timeout=30) as response:
            assert response.status_code == 200
            events = events_of(response)
        assert events[-1] == "[DONE]"
        error = events[-2]["error"]
        assert error["type"] == "server_error" and "internal server error" in error["message"]
        sdk = openai.OpenAI(base_url=running.base_url, api_key="unused", max_retries=0)
        with pytest.raises(openai.APIError) as caught:
            for _ in sdk.chat.completions.create(model="rlm/root", messages=QUESTION, stream=True):
                pass
        assert not isinstance(caught.value, openai.APIConnectionError)
        assert "internal server error" in str(caught.value)
    assert "a bug in the server" in caplog.text


def test_a_failure_while_answering_ends_the_stream_without_a_second_response(
        start, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    async def broken(*args: Any) -> None:
        raise RuntimeError("cannot write the answer")

    monkeypatch.setattr(rlm.serve.streaming, "_answer", broken)
    caplog.set_level(logging.ERROR)
    with ScriptedLM(root=lambda r: "FINAL(x)") as upstream:
        running = start(upstream)
        body = {"model": "rlm/root", "messages": QUESTION, "stream": True}
        with httpx.stream("POST", f"{running.base_url}/chat/completions", json=body, timeout=30) as response:
            events = events_of(response)  # the HTTP stream stays well formed: no JSON body written into it
        assert events[0]["choices"][0]["delta"]["role"] == "assistant" and "[DONE]" not in events
        assert httpx.get(f"{running.base_url}/models").status_code == 200  # the server goes on
    assert "error after the stream began" in caplog.text and "cannot write the answer" in caplog.text
