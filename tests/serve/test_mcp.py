"""The ``mcp`` SDK's own client against ``rlm mcp``, over stdio (a subprocess) and streamable HTTP."""

from __future__ import annotations

import asyncio
import json
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client

from rlm.serve.mcp_server import run_mcp
from rlm.testing import ScriptedLM
from tests.scripting import code

from .conftest import TOKEN, UPSTREAM_KEY, settings

ROOT = [code("parts = llm_batch([context[:20], context[20:]])", "print(parts)"), "FINAL(the answer)"]


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    root = tmp_path / "docs"
    (root / "folder").mkdir(parents=True)
    (root / "report.txt").write_text("The merger closed in March. Revenue rose 12 percent.")
    for i in range(3):
        (root / "folder" / f"doc{i}.txt").write_text(f"document number {i}")
    (root / "rows.jsonl").write_text("\n".join(json.dumps({"prompt": f"row {i}"}) for i in range(5)) + "\n")
    (tmp_path / "secret.txt").write_text("TOP SECRET")
    return root


def text_of(result: Any) -> str:
    return "".join(getattr(block, "text", "") for block in result.content)


@asynccontextmanager
async def stdio_session(upstream: ScriptedLM, docs: Path, tmp_path: Path) -> AsyncIterator[ClientSession]:
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "rlm.cli", "mcp", "--model", "rlm/root=root:sub", "--base-url", upstream.base_url,
              "--sandbox", "local", "--allow-local-sandbox", "--root", str(docs), "--no-cache",
              "--trace-dir", str(tmp_path / "traces"), "--max-time-s", "60"],
        env={"OPENAI_API_KEY": UPSTREAM_KEY, "XDG_STATE_HOME": str(tmp_path / "state")})
    with open(tmp_path / "server-stderr.txt", "w") as errlog:
        async with stdio_client(params, errlog=errlog) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            yield session


async def test_stdio_tools_say_what_they_cost_and_ask_answers_with_progress(docs: Path, tmp_path: Path) -> None:
    with ScriptedLM(root=ROOT, sub=lambda r: "piece") as upstream:
        async with stdio_session(upstream, docs, tmp_path) as session:
            tools = {t.name: t for t in (await session.list_tools()).tools}
            assert set(tools) == {"ask", "estimate", "map"}
            assert "COSTS" in tools["ask"].description and "max_time_s=60" in tools["ask"].description
            assert "FREE" in tools["estimate"].description
            assert "resumes" in tools["map"].description
            progress: list[tuple[float, float | None, str | None]] = []

            async def on_progress(done: float, total: float | None, message: str | None) -> None:
                progress.append((done, total, message))

            result = await session.call_tool("ask", {"question": "When did the merger close?",
                                                     "path": "report.txt"}, progress_callback=on_progress)
            assert not result.is_error, text_of(result)
            answer = result.structured_content
            assert answer["answer"] == "the answer" and answer["calls"] == 4
            assert answer["trace"].startswith("file://") and Path(answer["trace"][7:]).is_file()
            assert answer["trace_html"].endswith(".html")
            read = await session.read_resource(answer["trace_resource"])
            assert '"run.end"' in read.contents[0].text
            assert answer["trace_resource"].startswith("rlm://traces/")
            messages = [m for _, _, m in progress]
            assert any(m and "Step 1" in m for m in messages)
            assert [p for p, _, _ in progress] == sorted({p for p, _, _ in progress})  # strictly increasing
            assert "Revenue rose" in upstream.root_requests[0].messages[-1]["content"]

            estimate = await session.call_tool("estimate", {"question": "q", "path": "report.txt"})
            assert estimate.structured_content["context_tokens"] > 0
            before = upstream.stats["requests"]
            assert before == 4  # the estimate called no model

            escaped = await session.call_tool("ask", {"question": "q", "path": "../secret.txt"})
            assert escaped.is_error and "'..'" in text_of(escaped)
            both = await session.call_tool("ask", {"question": "q", "path": "report.txt", "text": "x"})
            assert both.is_error and "exactly one" in text_of(both)
            assert upstream.stats["requests"] == before
    assert UPSTREAM_KEY not in (tmp_path / "server-stderr.txt").read_text()


async def test_stdio_map_over_a_folder_and_a_jsonl_file_resumes(docs: Path, tmp_path: Path) -> None:
    with ScriptedLM(root=lambda r: "FINAL(summary)", sub=lambda r: f"label for {r.prompt}") as upstream:
        async with stdio_session(upstream, docs, tmp_path) as session:
            folder = await session.call_tool("map", {"path": "folder", "question": "Summarize."})
            assert not folder.is_error, text_of(folder)
            found = folder.structured_content
            assert (found["total"], found["failed"], found["resumed"]) == (3, 0, 0)
            assert [a["item"] for a in found["first_answers"]] == ["doc0.txt", "doc1.txt", "doc2.txt"]
            rows = Path(found["results"]).read_text().splitlines()
            assert [json.loads(r)["answer"] for r in rows] == ["summary"] * 3
            again = (await session.call_tool("map", {"path": "folder", "question": "Summarize."})).structured_content
            assert again["resumed"] == 3 and again["calls"] == 0
            assert upstream.stats["root"] == 6  # a first-turn FINAL over a file is checked once: two calls a file
            before = (docs / "folder").stat().st_mtime_ns
            (docs / "folder" / "doc1.txt").write_text("document number 1, edited in place")
            assert (docs / "folder").stat().st_mtime_ns == before  # the folder itself did not change
            edited = await session.call_tool("map", {"path": "folder", "question": "Summarize."})
            assert not edited.is_error, text_of(edited)  # before: "item 1's input changed since it was answered"
            assert edited.structured_content["resumed"] == 0 and upstream.stats["root"] == 12  # starts afresh

            labels = await session.call_tool("map", {"path": "rows.jsonl", "prompt_template": "Label: {prompt}"})
            found = labels.structured_content
            assert found["total"] == 5 and found["first_answers"][4]["answer"] == "label for Label: row 4"
            assert upstream.stats["sub"] == 5
            assert (await session.call_tool("map", {"path": "rows.jsonl", "prompt_template": "Label: {prompt}"})
                    ).structured_content["resumed"] == 5
            assert upstream.stats["sub"] == 5
            bad = await session.call_tool("map", {"path": "rows.jsonl", "prompt_template": "{missing}"})
            assert bad.is_error and "missing" in text_of(bad)


@pytest.fixture
def http_server(tmp_path: Path, docs: Path) -> Iterator[Any]:
    """``rlm mcp --http`` in this process (its own thread and loop), with a bearer token."""
    found: dict[str, Any] = {}
    ready = threading.Event()

    def start(upstream: ScriptedLM, **changes: Any) -> str:
        config = settings(upstream, tmp_path, roots=(str(docs),), token=TOKEN, **changes)

        async def main() -> None:
            found["loop"], found["stop"] = asyncio.get_running_loop(), asyncio.Event()
            await run_mcp(config, found["stop"], http=True, ready=lambda url: (found.update(url=url), ready.set()))

        thread = threading.Thread(target=lambda: asyncio.run(main()), name="rlm-mcp-test", daemon=True)
        thread.start()
        found["thread"] = thread
        assert ready.wait(30), "rlm mcp --http did not start"
        return str(found["url"])

    yield start
    if "loop" in found:
        found["loop"].call_soon_threadsafe(found["stop"].set)
        found["thread"].join(30)


async def test_streamable_http_needs_the_token_and_cancellation_stops_the_run(http_server: Any,
                                                                             tmp_path: Path) -> None:
    import httpx2

    hanging = [code("parts = llm_batch(['a', 'b'])"), "FINAL(never)"]
    with ScriptedLM(root=hanging, sub=lambda r: "x", latency=lambda r: 30.0 if r.role == "sub" else 0.0) as upstream:
        url = http_server(upstream)
        async with httpx2.AsyncClient() as anonymous:
            assert (await anonymous.post(url, json={})).status_code == 401
            auth = {"Authorization": f"Bearer {TOKEN}"}
            port = url.rsplit(":", 1)[1].split("/")[0]
            rebound = await anonymous.post(url, json={}, headers={**auth, "Host": f"evil.example:{port}"})
            assert rebound.status_code == 421 and rebound.json()["error"]["code"] == "host_not_allowed"
            foreign = await anonymous.post(url, json={}, headers={**auth, "Origin": "http://evil.example"})
            assert foreign.status_code == 403 and foreign.json()["error"]["code"] == "origin_not_allowed"
        async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60) as authorized, \
                streamable_http_client(url, http_client=authorized) as (read, write), \
                ClientSession(read, write) as session:
            await session.initialize()
            started = anyio.Event()

            async def on_progress(done: float, total: float | None, message: str | None) -> None:
                if message and "llm_batch" in message:
                    started.set()

            async with anyio.create_task_group() as group:
                async def call() -> None:
                    await session.call_tool("ask", {"question": "q", "text": "some text"},
                                            progress_callback=on_progress)

                group.start_soon(call)
                with anyio.fail_after(20):
                    await started.wait()
                group.cancel_scope.cancel()
            # The run stopped: its two hung sub-calls hung up on the upstream, long before their 30 s.
            with anyio.fail_after(15):
                while upstream.stats["in_flight"]:
                    await anyio.sleep(0.05)
            traces = list((tmp_path / "traces").glob("*/*.jsonl"))
            assert len(traces) == 1
            with anyio.fail_after(15):
                while '"run.end"' not in traces[0].read_text():
                    await anyio.sleep(0.05)
            ends = [json.loads(line) for line in traces[0].read_text().splitlines() if '"run.end"' in line]
            assert ends[0]["data"]["status"] == "cancelled"
            # The session still works after a cancelled call.
            upstream.root = lambda r: "FINAL(fine)"
            upstream.latency = 0.0
            after = await session.call_tool("ask", {"question": "q", "text": "t"})
            assert after.structured_content["answer"] == "fine"
            # Over HTTP the client is elsewhere: no file:// path of the server's, the trace as a resource.
            assert "trace" not in after.structured_content and "trace_html" not in after.structured_content
            read = await session.read_resource(after.structured_content["trace_resource"])
            assert '"run.end"' in read.contents[0].text


@asynccontextmanager
async def http_session(url: str) -> AsyncIterator[ClientSession]:
    import httpx2

    async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60) as authorized, \
            streamable_http_client(url, http_client=authorized) as (read, write), \
            ClientSession(read, write) as session:
        await session.initialize()
        yield session


async def wait_until(check: Any, seconds: float = 30.0) -> None:
    with anyio.fail_after(seconds):
        while not check():
            await anyio.sleep(0.01)


async def test_a_map_takes_a_run_slot_per_item_and_reports_its_progress(http_server: Any, tmp_path: Path,
                                                                        docs: Path) -> None:
    """max_runs=2: a map's completions and an ask never run more than two at once; the map says how far it got."""
    entered, release = tmp_path / "entered", tmp_path / "release"
    entered.mkdir()
    hold = code("import os, time, uuid", f"open(os.path.join({str(entered)!r}, uuid.uuid4().hex), 'w').close()",
                f"while not os.path.exists({str(release)!r}): time.sleep(0.01)")
    for i in range(3, 5):
        (docs / "folder" / f"doc{i}.txt").write_text(f"document number {i}")
    with ScriptedLM(root=lambda r: hold if len(r.messages) <= 2 else "FINAL(summary)") as upstream:
        url = http_server(upstream, max_runs=2, max_queue=0)
        async with http_session(url) as session:
            progress: list[tuple[float, float | None, str | None]] = []
            found: dict[str, Any] = {}

            async def on_progress(done: float, total: float | None, message: str | None) -> None:
                progress.append((done, total, message))

            async def mapped() -> None:
                found["map"] = await session.call_tool("map", {"path": "folder", "question": "Summarize."},
                                                       progress_callback=on_progress)

            async with anyio.create_task_group() as group:
                group.start_soon(mapped)
                try:
                    await wait_until(lambda: len(list(entered.iterdir())) == 2)
                    with anyio.fail_after(30):  # before: the ask got a third slot and ran (held here)
                        busy = await session.call_tool("ask", {"question": "q", "text": "t"})
                    assert busy.is_error and "retry later" in text_of(busy)  # the map's two items hold both slots
                    assert len(list(entered.iterdir())) == 2
                finally:
                    release.touch()
            result = found["map"]
            assert not result.is_error, text_of(result)
            assert (result.structured_content["total"], result.structured_content["failed"]) == (5, 0)
            assert "results" not in result.structured_content  # no server path over HTTP: a resource
            rows = await session.read_resource(result.structured_content["results_resource"])
            assert [json.loads(line)["item"] for line in rows.contents[0].text.splitlines()] == \
                [f"doc{i}.txt" for i in range(5)]
        assert len(list(entered.iterdir())) == 5
    done = [p for p, _, _ in progress]
    assert done == sorted(set(done)) and done[-1] == 5.0 and {t for _, t, _ in progress} == {5.0}
    messages = [m or "" for _, _, m in progress]
    assert any(m.startswith("Item done") for m in messages)
    assert not any("rlm_query" in m for m in messages)  # an item is not a recursive run


async def test_files_are_opened_read_and_written_off_the_servers_loop(http_server: Any, monkeypatch: pytest.MonkeyPatch
                                                                      ) -> None:
    import rlm.serve.mcp_server as mcp_server

    threads: dict[str, set[str]] = {}
    for name in ("confine", "map_input", "summary"):
        real = getattr(mcp_server, name)

        def spy(*args: Any, _real: Any = real, _name: str = name, **kwargs: Any) -> Any:
            threads.setdefault(_name, set()).add(threading.current_thread().name)
            return _real(*args, **kwargs)

        monkeypatch.setattr(mcp_server, name, spy)
    with ScriptedLM(root=lambda r: "FINAL(x)", sub=lambda r: "label") as upstream:
        url = http_server(upstream)
        async with http_session(url) as session:
            assert not (await session.call_tool("ask", {"question": "q", "path": "report.txt"})).is_error
            assert not (await session.call_tool("map", {"path": "rows.jsonl"})).is_error
    assert set(threads) == {"confine", "map_input", "summary"}
    assert "rlm-mcp-test" not in set().union(*threads.values()), threads
