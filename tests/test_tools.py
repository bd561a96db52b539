"""Host tools: the user's functions, called from root code in both sandboxes, run in the host."""

from __future__ import annotations

import asyncio
import os
import threading
from typing import Any

import pytest
from scripting import code

from rlm import RLM, Budget, BudgetExceeded, ConfigError
from rlm.testing import ScriptedLM


def search(query: str, k: int = 2) -> list[dict[str, Any]]:
    """Find documents about a topic in the user's own index."""
    return [{"title": f"{query} {i}", "pid": os.getpid()} for i in range(k)]


async def fetch(url: str) -> str:
    """Fetch a page (async: awaited on rlm's loop)."""
    await asyncio.sleep(0)
    return f"<page {url}>"


def test_tools_run_in_the_host_and_the_prompt_lists_them(make) -> None:
    reply = code("hits = search('merger', k=3)", "print(len(hits), hits[0]['title'], hits[0]['pid'])",
                 "print(fetch('a.html'))")
    with ScriptedLM(root=[reply, "FINAL(done)"]) as lm:
        with make(lm, tools=[search, fetch]) as rlm:
            result = rlm.completion("ctx", "q")
        system = lm.root_requests[0].messages[0]["content"]
    printed = result.steps[0].outputs[0].stdout
    assert printed == f"3 merger 0 {os.getpid()}\n<page a.html>\n"  # the host's pid: it ran here
    assert "search(query: str, k: int = 2) -> list[dict[str, Any]]" in system
    assert "Find documents about a topic in the user's own index." in system and "fetch(url: str)" in system
    tools = [e for e in result.trace if e.kind == "tool.start"]
    execs = {e.id for e in result.trace if e.kind == "exec.start"}
    assert [e.data["name"] for e in tools] == ["search", "fetch"] and all(e.parent in execs for e in tools)
    assert "'merger', k=3" in tools[0].data["args"]
    assert "tool · search(&#x27;merger&#x27;, k=3)" in result.trace._repr_html_()  # a line in the view


def test_stop_reaches_a_completion_a_threaded_tool_started(make) -> None:
    holder: dict[str, RLM] = {}
    seen: list[Any] = []

    def ask_again(text: str) -> str:
        """Asks the same RLM (a child of the running completion)."""
        return holder["rlm"].completion(text, "inner").answer

    def root(request: Any) -> str:
        if "The query:\ninner" in str(request.messages[1]["content"]):
            return "FINAL(never sent back)"
        return code("print(ask_again('x'))")

    def slow(request: Any) -> float:
        return 30.0 if "The query:\ninner" in str(request.messages[1]["content"]) else 0.0

    async def main(rlm: RLM, lm: ScriptedLM) -> float:
        task = asyncio.ensure_future(rlm.acompletion("ctx", "outer", subscribers=[seen.append]))
        deadline = asyncio.get_running_loop().time() + 30
        while lm.stats["in_flight"] == 0 or len(lm.root_requests) < 2:  # the inner root call is at the server
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.02)
        started = asyncio.get_running_loop().time()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        inner = next(e.id for e in seen if e.kind == "run.start" and e.data["query"] == "inner")
        while not any(e.kind == "run.end" and e.id == inner and e.data.get("status") == "cancelled" for e in seen):
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.02)
        return asyncio.get_running_loop().time() - started

    with ScriptedLM(root=root, latency=slow) as lm, make(lm, tools=[ask_again]) as rlm:
        holder["rlm"] = rlm
        assert asyncio.run(main(rlm, lm)) < 10  # not the 30 s the inner call would have taken


def test_a_tool_called_100_times_from_threads_in_the_repl(make) -> None:
    calls: list[int] = []
    lock = threading.Lock()

    def lookup(n: int) -> int:
        with lock:
            calls.append(n)
        return n * n

    reply = code("from concurrent.futures import ThreadPoolExecutor",
                 "with ThreadPoolExecutor(8) as pool:",
                 "    squares = list(pool.map(lookup, range(100)))",
                 "print(sum(squares), squares[:4])")
    with ScriptedLM(root=[reply, "FINAL(ok)"]) as lm, make(lm, tools={"lookup": lookup}) as rlm:
        result = rlm.completion("ctx", "q")
    assert result.steps[0].outputs[0].stdout == f"{sum(n * n for n in range(100))} [0, 1, 4, 9]\n"
    assert sorted(calls) == list(range(100))
    assert sum(e.kind == "tool.end" for e in result.trace) == 100


def test_a_tools_error_is_raised_in_root_code_and_data_is_checked_both_ways(make) -> None:
    def strict(x: int) -> int:
        """Refuses negatives."""
        if x < 0:
            raise ValueError(f"{x} is negative")
        return x

    def leaky() -> Any:
        return threading.Lock()  # a host object must never reach root code

    reply = code(
        "try:\n    strict(-1)\nexcept ValueError as e:\n    print('ValueError', e)",
        "try:\n    leaky()\nexcept TypeError as e:\n    print('TypeError', e)",
        "try:\n    strict(lambda: 1)\nexcept TypeError as e:\n    print('TypeError', e)",
        "print(strict(x=5))",
    )
    with ScriptedLM(root=[reply, "FINAL(ok)"]) as lm, make(lm, tools=[strict, leaky]) as rlm:
        result = rlm.completion("ctx", "q")
    lines = result.steps[0].outputs[0].stdout.splitlines()
    assert lines[0] == "ValueError -1 is negative"
    assert lines[1].startswith("TypeError the result of tool leaky() must be plain data")
    assert lines[2].startswith("TypeError strict() arguments must be plain data")
    assert lines[3] == "5"
    ends = [e for e in result.trace if e.kind == "tool.end"]
    assert ends[0].data["error"] == "ValueError: -1 is negative"


def test_a_tool_that_calls_the_same_rlm_shares_its_budget_and_trace(make) -> None:
    holder: dict[str, RLM] = {}

    def summarise(text: str) -> str:
        """Summarise with a nested completion of the same RLM."""
        return holder["rlm"].completion(text, "summarise").answer

    def child_or_root(request: Any) -> str:
        first = str(request.messages[1]["content"])
        if "The query:\nsummarise" in first:
            return "FINAL(short)"
        return code("print(summarise('long text'))") if len(request.messages) == 2 else "FINAL(done)"

    with ScriptedLM(root=child_or_root) as lm, make(lm, tools=[summarise], budget=Budget(max_calls=2)) as rlm:
        holder["rlm"] = rlm
        with pytest.raises(BudgetExceeded) as stopped:
            rlm.completion("ctx", "q")  # root call, the tool's child call, then no call is left
    partial = stopped.value.partial
    assert partial.usage.calls == 2 and partial.steps[0].outputs[0].stdout == "short\n"
    runs = [e for e in partial.trace if e.kind == "run.start"]
    tool = next(e for e in partial.trace if e.kind == "tool.start")
    assert len(runs) == 2 and runs[1].parent == tool.id  # the nested completion hangs under the tool call


@pytest.mark.parametrize(("tools", "message"), [
    ({"llm_query": len}, "taken by an rlm helper"),
    ({"context_2": len}, "taken by an rlm helper"),
    ({"not a name": len}, "not a Python name"),
    ({"f": 3}, "not callable"),
    ([lambda x: x], "not a Python name"),
    ("search", "dict of name to function"),
])
def test_bad_tools_are_config_errors(tools: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        RLM("m", base_url="http://127.0.0.1:9/v1", sandbox="local", tools=tools)
