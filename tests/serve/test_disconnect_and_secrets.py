"""A client that leaves stops its run (trace kept); the upstream key never leaves the server."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import os
import re
import stat
import time
from pathlib import Path

import httpx
import openai
import pytest

from rlm.serve.redact import scrubbed_logs
from rlm.testing import Fault, ScriptedLM
from rlm.trace.redact import Redactor
from tests.scripting import code

from .conftest import TOKEN, UPSTREAM_KEY

QUESTION = [{"role": "user", "content": "q"}]


def events(trace_dir: Path) -> list[dict[str, object]]:
    files = sorted(trace_dir.glob("*/*.jsonl"))  # each server writes in a directory of its own
    assert len(files) == 1, files
    return [json.loads(line) for line in files[0].read_text().splitlines()]


def wait_for(check, seconds: float = 15.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


@pytest.mark.parametrize("stream", [False, True])
def test_a_client_that_disconnects_stops_its_run_and_the_trace_is_kept(start, tmp_path: Path, stream: bool) -> None:
    root = [code("parts = llm_batch(['a', 'b', 'c', 'd'])"), "FINAL(never)"]
    with ScriptedLM(root=root, sub=lambda r: "x", latency=lambda r: 30.0 if r.role == "sub" else 0.0) as upstream:
        running = start(upstream)
        with pytest.raises(httpx.ReadTimeout), httpx.Client(timeout=httpx.Timeout(30, read=1.0)) as raw:
            response = raw.post(f"{running.base_url}/chat/completions",
                                json={"model": "rlm/root", "messages": QUESTION, "stream": stream})
            for _ in response.iter_lines():
                pass
        wait_for(lambda: upstream.stats["sub"] == 4)
        # The run was stopped: its sub-calls hung up on the upstream, well before their 30 s.
        wait_for(lambda: upstream.stats["in_flight"] == 0)
        wait_for(lambda: any(e["kind"] == "run.end" for e in events(tmp_path / "traces")))
        ends = [e for e in events(tmp_path / "traces") if e["kind"] == "run.end"]
        assert ends[0]["data"]["status"] == "cancelled"
        assert any(e["kind"] == "batch.start" for e in events(tmp_path / "traces"))


def test_the_upstream_key_is_in_no_response_stream_trace_or_log(start, tmp_path: Path,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    echo = f"upstream says: your key {UPSTREAM_KEY} and token {TOKEN} look wrong"
    root = [code("x = llm_query('leak?')", "print(x)"), "FINAL(done)"]
    with ScriptedLM(root=root, sub=lambda r: echo) as upstream:
        running = start(upstream, token=TOKEN)
        sdk = openai.OpenAI(base_url=running.base_url, api_key=TOKEN, max_retries=0)
        whole = sdk.chat.completions.with_raw_response.create(model="rlm/root", messages=QUESTION)
        upstream.root = [code("x = llm_query('leak?')", "print(x)"), "FINAL(done)"]
        streamed = [c.model_dump_json() for c in sdk.chat.completions.create(
            model="rlm/root", messages=QUESTION, stream=True)]
        upstream.root = lambda r: f"FINAL({echo})"
        answer = sdk.chat.completions.create(model="rlm/root", messages=QUESTION).choices[0].message.content
        upstream.fail(Fault.http(400, echo))
        failed = httpx.post(f"{running.base_url}/chat/completions", json={"model": "rlm/root", "messages": QUESTION},
                            headers={"Authorization": f"Bearer {TOKEN}"})
        traces = [httpx.get(f"{running.base_url}/traces/{p.name}", headers={"Authorization": f"Bearer {TOKEN}"}).text
                  for p in (tmp_path / "traces").glob("*/*.jsonl")]
    assert "[redacted]" in answer and failed.status_code == 502
    on_disk = "".join(p.read_text() for p in (tmp_path / "traces").glob("*/*.jsonl"))
    assert "[redacted]" in on_disk  # the sub-call's reply was recorded, scrubbed
    everything = [whole.text, *streamed, answer, failed.text, *traces, on_disk, caplog.text]
    for text in everything:
        assert UPSTREAM_KEY not in text and TOKEN not in text


def open_under(directory: Path) -> list[str]:
    """This process's descriptors that name something under ``directory``."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/self/fd/{fd}")
            if target.startswith(str(directory)):
                found.append(target)
    return found


async def test_clients_that_leave_at_any_moment_leave_no_document_or_trace_open(start, tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    (docs / "folder").mkdir(parents=True)
    (docs / "a.txt").write_text("some text")
    (docs / "folder" / "b.txt").write_text("more text")

    def root(request) -> str:  # type: ignore[no-untyped-def]
        return code("parts = llm_batch(['a', 'b'])") if len(request.messages) <= 2 else "FINAL(done)"

    with ScriptedLM(root=root, sub=lambda r: "x", latency=lambda r: 2.0 if r.role == "sub" else 0.0) as upstream:
        running = start(upstream, roots=(str(docs),), max_runs=4, max_queue=40)

        async def leave(i: int) -> None:
            body = {"model": "rlm/root", "stream": i % 2 == 0, "messages": QUESTION,
                    "rlm": {"path": "folder" if i % 3 else "a.txt"}}
            with contextlib.suppress(httpx.ReadTimeout):
                async with httpx.AsyncClient(timeout=httpx.Timeout(30, read=0.05 + 0.1 * (i % 5))) as raw:
                    await raw.post(f"{running.base_url}/chat/completions", json=body)

        await asyncio.gather(*[leave(i) for i in range(24)])
        deadline = time.monotonic() + 30
        # The upstream's handlers sleep out their 2 s latency after the runs let go of them.
        while (open_under(docs) or open_under(tmp_path / "traces") or upstream.stats["in_flight"]) \
                and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert open_under(docs) == [] and open_under(tmp_path / "traces") == []
        assert upstream.stats["in_flight"] == 0


def test_the_password_in_the_upstream_url_is_redacted_too(start, tmp_path: Path,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    password = "pw-0123456789abcdef"
    with ScriptedLM() as upstream:
        url = upstream.base_url.replace("http://", f"http://alice:{password}@")
        echo = f"could not reach {url} (alice:{password})"
        upstream.root = lambda r: f"FINAL({echo})"
        running = start(upstream, base_url=url)
        body = {"model": "rlm/root", "messages": QUESTION}
        answer = httpx.post(f"{running.base_url}/chat/completions", json=body, timeout=30)
        streamed = httpx.post(f"{running.base_url}/chat/completions", json={**body, "stream": True}, timeout=30)
        upstream.fail(Fault.http(400, echo))
        failed = httpx.post(f"{running.base_url}/chat/completions", json=body, timeout=30)
    assert answer.status_code == 200 and "[redacted]" in answer.json()["choices"][0]["message"]["content"]
    assert failed.status_code == 502
    on_disk = "".join(p.read_text() for p in (tmp_path / "traces").glob("*/*.jsonl"))
    for text in (answer.text, streamed.text, failed.text, on_disk, caplog.text):
        assert password not in text


def test_log_records_are_scrubbed_when_formatted_and_a_bad_call_does_not_raise() -> None:
    logger = logging.getLogger("rlm.serve.test-scrubbed")
    out = io.StringIO()
    handler = logging.StreamHandler(out)  # a plain handler: it reports a bad record on stderr and goes on
    logger.addHandler(handler)
    logger.propagate = False
    try:
        with scrubbed_logs(Redactor(["secret-value-123"], environ={})):
            logger.warning("the key is %s", "secret-value-123")
            logger.warning("two %s %s", "but one argument")  # fails in the handler, not here
            logger.warning("after it")
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
    assert out.getvalue().splitlines() == ["the key is [redacted]", "after it"]


def test_served_traces_have_unguessable_names_and_are_the_server_users_only(start, tmp_path: Path) -> None:
    with ScriptedLM(root=lambda r: "FINAL(x)") as upstream:
        running = start(upstream)
        body = {"model": "rlm/root", "messages": QUESTION}
        names = [httpx.post(f"{running.base_url}/chat/completions", json=body, timeout=30).json()["rlm"]["trace"]
                 for _ in range(2)]
    files = [running.service.trace_dir / name.rsplit("/", 1)[1] for name in names]
    for file in files:
        assert re.fullmatch(r"[A-Za-z0-9_-]{22}\.jsonl", file.name), file.name  # 128 random bits, no time or count
        assert stat.S_IMODE(file.stat().st_mode) == 0o600
    assert stat.S_IMODE(files[0].parent.stat().st_mode) == 0o700
    assert files[0].name != files[1].name
