"""Bad requests of every kind get OpenAI-style errors with the right status, before any run starts."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from rlm import Budget
from rlm.testing import Fault, ScriptedLM
from tests.scripting import code

from .conftest import UPSTREAM_KEY, Gate

QUESTION = [{"role": "user", "content": "q"}]


def post(running: Any, body: Any, **kwargs: Any) -> httpx.Response:
    return httpx.post(f"{running.base_url}/chat/completions", json=body, timeout=30, **kwargs)


def error_of(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    return dict(body["error"])


@pytest.mark.parametrize(("body", "status", "param"), [
    ([1, 2], 400, None),
    ({"model": "rlm/root"}, 400, "messages"),
    ({"model": "rlm/root", "messages": []}, 400, "messages"),
    ({"model": "rlm/root", "messages": [{"role": "wizard", "content": "x"}]}, 400, "messages[0]"),
    ({"model": "rlm/root", "messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]},
     400, "messages[1]"),
    ({"model": "rlm/root", "messages": [{"role": "user", "content": ""}]}, 400, "messages[0].content"),
    ({"model": "rlm/root", "messages": [{"role": "user", "content": 5}]}, 400, "messages[0].content"),
    ({"model": "rlm/root", "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA=="}}, {"type": "text", "text": "q"}]}]},
     400, "messages[0].content[0]"),
    ({"model": "rlm/root", "messages": [{"role": "user", "content": [
        {"type": "file", "file": {"file_id": "file-1"}}, {"type": "text", "text": "q"}]}]},
     400, "messages[0].content[0].file.file_id"),
    ({"model": "rlm/root", "messages": [{"role": "user", "content": [
        {"type": "file", "file": {"file_data": "not base64!"}}, {"type": "text", "text": "q"}]}]},
     400, "messages[0].content[0].file.file_data"),
    ({"model": "rlm/root", "messages": QUESTION, "n": 2}, 400, "n"),
    ({"model": "rlm/root", "messages": QUESTION, "tools": [{"type": "function", "function": {"name": "f"}}]},
     400, "tools"),
    ({"model": "rlm/root", "messages": QUESTION, "stream": "yes"}, 400, "stream"),
    ({"model": "rlm/root", "messages": QUESTION, "response_format": {"type": "xml"}}, 400, "response_format.type"),
    ({"model": "rlm/root", "messages": QUESTION, "response_format": {
        "type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "wrong"}}}},
     400, "response_format.json_schema.schema"),
    ({"model": "rlm/root", "messages": QUESTION, "rlm": {"budget": 100}}, 400, "rlm"),
    ({"model": "rlm/root", "messages": QUESTION, "rlm": {"path": "a.txt"}}, 400, "path"),
    ({"model": "rlm/nope", "messages": QUESTION}, 404, "model"),
    ({"messages": QUESTION}, 404, "model"),
])
def test_bad_bodies_are_refused_with_the_param_they_are_about(start, body: Any, status: int,
                                                               param: str | None) -> None:
    with ScriptedLM() as upstream:
        running = start(upstream)
        response = post(running, body)
        assert response.status_code == status, response.text
        error = error_of(response)
        assert error["param"] == param
        assert error["type"] == ("not_found_error" if status == 404 else "invalid_request_error")
        assert upstream.stats["requests"] == 0  # refused before any run


def test_transport_level_refusals_are_openai_errors_too(start) -> None:
    with ScriptedLM() as upstream:
        running = start(upstream, max_body_mb=0.01, max_context_chars=1000)
        json_type = {"Content-Type": "application/json"}
        assert post(running, None, content=b"{not json", headers=json_type).status_code == 400
        form = httpx.post(f"{running.base_url}/chat/completions", content=b'{"model": "rlm/root"}',
                          headers={"Content-Type": "application/x-www-form-urlencoded"})  # what curl -d sends
        assert form.status_code == 415 and error_of(form)["code"] == "unsupported_media_type"
        big = post(running, {"model": "rlm/root", "messages": [{"role": "user", "content": "x" * 20_000}]})
        assert big.status_code == 413 and error_of(big)
        long_context = post(running, {"model": "rlm/root", "messages": [
            {"role": "user", "content": "y" * 2000}, {"role": "user", "content": "q"}]})
        assert long_context.status_code == 413 and error_of(long_context)["code"] == "context_too_large"
        assert httpx.get(f"{running.base_url}/chat/completions").status_code == 405
        missing = httpx.get(f"{running.url}/v2/nothing")
        assert missing.status_code == 404 and error_of(missing)
        assert upstream.stats["requests"] == 0


def test_a_full_server_answers_429_with_retry_after(start, tmp_path: Path) -> None:
    gate = Gate(tmp_path)  # the first run stays in flight until the test has its 429
    with ScriptedLM(root=[gate.step, "FINAL(slow)"]) as upstream:
        running = start(upstream, max_runs=1, max_queue=0)
        first: list[httpx.Response] = []
        worker = threading.Thread(target=lambda: first.append(post(running, {"model": "rlm/root",
                                                                             "messages": QUESTION})))
        worker.start()
        try:
            gate.wait_entered()
            busy = post(running, {"model": "rlm/root", "messages": QUESTION})
        finally:
            gate.release()
            worker.join(30)
        assert busy.status_code == 429 and error_of(busy)["code"] == "server_busy"
        assert int(busy.headers["Retry-After"]) >= 1
        assert first[0].status_code == 200


def test_the_openai_sdk_sees_429_as_rate_limited(start, tmp_path: Path) -> None:
    gate = Gate(tmp_path)
    with ScriptedLM(root=[gate.step, "FINAL(slow)"]) as upstream:
        running = start(upstream, max_runs=1, max_queue=0)
        sdk = openai.OpenAI(base_url=running.base_url, api_key="unused", max_retries=0)
        worker = threading.Thread(target=lambda: sdk.chat.completions.create(model="rlm/root", messages=QUESTION))
        worker.start()
        try:
            gate.wait_entered()
            with pytest.raises(openai.RateLimitError):
                sdk.chat.completions.create(model="rlm/root", messages=QUESTION)
        finally:
            gate.release()
            worker.join(30)


def test_a_run_past_its_time_budget_is_a_504_not_retried(start) -> None:
    root = [code("x = llm_query('slow')"), "FINAL(never)"]
    with ScriptedLM(root=root, sub=lambda r: "late", latency=lambda r: 5.0 if r.role == "sub" else 0.0) as upstream:
        running = start(upstream, budget=Budget(max_time_s=0.5))
        began = time.monotonic()
        response = post(running, {"model": "rlm/root", "messages": QUESTION})
        assert time.monotonic() - began < 4.5
        assert response.status_code == 504
        assert error_of(response)["code"] == "run_timeout"
        assert response.headers["x-should-retry"] == "false"


def test_an_upstream_failure_is_a_502_without_the_upstream_key(start, caplog: pytest.LogCaptureFixture) -> None:
    with ScriptedLM() as upstream:
        upstream.fail(Fault.http(401, f"Incorrect API key provided: {UPSTREAM_KEY}"))
        running = start(upstream)
        response = post(running, {"model": "rlm/root", "messages": QUESTION})
        assert response.status_code == 502
        error = error_of(response)
        assert error["code"] == "upstream_error" and "[redacted]" in error["message"]
        assert UPSTREAM_KEY not in response.text


def test_a_failure_after_the_stream_began_is_an_error_event_the_sdk_raises(start) -> None:
    root = [code("x = llm_query('slow')"), "FINAL(never)"]
    with ScriptedLM(root=root, sub=lambda r: "late", latency=lambda r: 5.0 if r.role == "sub" else 0.0) as upstream:
        running = start(upstream, budget=Budget(max_time_s=0.5))
        sdk = openai.OpenAI(base_url=running.base_url, api_key="unused", max_retries=0)
        seen: list[str] = []
        with pytest.raises(openai.APIError) as caught:
            for chunk in sdk.chat.completions.create(model="rlm/root", messages=QUESTION, stream=True):
                seen.extend((c.delta.model_extra or {}).get("reasoning_content") or "" for c in chunk.choices)
        assert "longer than this server's limit" in str(caught.value)
        assert "Step 1" in "".join(seen)  # progress came first


def test_a_run_whose_root_never_answers_is_a_502_not_an_answer(start) -> None:
    with ScriptedLM(root=lambda r: code("x = 1")) as upstream:  # code every turn, even when told to answer
        running = start(upstream, max_iterations=1)
        response = post(running, {"model": "rlm/root", "messages": QUESTION})
        assert response.status_code == 502, response.text
        assert error_of(response)["code"] == "no_answer" and "/v1/traces/" in error_of(response)["message"]
        sdk = openai.OpenAI(base_url=running.base_url, api_key="unused", max_retries=0)
        with pytest.raises(openai.APIError) as caught:
            for _ in sdk.chat.completions.create(model="rlm/root", messages=QUESTION, stream=True):
                pass
        assert "gave no answer" in str(caught.value)
