"""The opt-in completion cache and in-flight de-duplication, counted at the server."""

from __future__ import annotations

import asyncio
import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from rlm import RLM, Cache, ConfigError, Endpoint, LMResponseError
from rlm.lm.cache import cache_key
from rlm.lm.types import Completion, Usage
from rlm.testing import Fault, ScriptedLM

PROGRAM = (
    "```repl\nr = llm_batch(['item %d' % i for i in range(20)], max_concurrent=8)\n"
    "one = llm_query('item 3')\nprint(r[3], one)\n```"
)


def upper(request) -> str:
    return request.prompt.upper()


def make_rlm(lm: ScriptedLM, cache: object = None, **kwargs: object) -> RLM:
    kwargs["endpoint"] = dataclasses.replace(kwargs.get("endpoint", Endpoint(retries=0)), cache=cache)  # type: ignore[type-var]
    kwargs.setdefault("sandbox", "local")
    return RLM("root", "sub", base_url=lm.base_url, api_key="k", **kwargs)  # type: ignore[arg-type]


def test_rerunning_a_completion_costs_zero_model_calls(tmp_path: Path) -> None:
    with ScriptedLM(root=[PROGRAM, "FINAL_VAR(r)"], sub=upper, latency=0.01) as lm:
        first = make_rlm(lm, cache=tmp_path).completion("ctx", "q")
        sent = lm.stats["requests"]
        assert sent == 2 + 20  # 'item 3' is asked twice but sent once
        lm.root = [PROGRAM, "FINAL_VAR(r)"]  # rewind the script: a cache miss would show
        again = make_rlm(lm, cache=tmp_path).completion("ctx", "q")
        assert lm.stats["requests"] == sent
    assert again.answer == first.answer and "ITEM 19" in again.answer
    assert again.usage.calls == 0 and again.usage.total_tokens == 0
    assert again.usage.cached_calls == 2 + 21
    assert first.usage.cached_calls == 1 and first.usage.calls == 22


def test_the_cache_survives_the_process(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite3"
    script = (
        "import sys\nfrom rlm import RLM, Endpoint\n"
        "r = RLM('root', 'sub', base_url=sys.argv[1], api_key='k', sandbox='local',\n"
        "        endpoint=Endpoint(cache=sys.argv[2]))\n"
        "print(r.completion('ctx', 'q').answer)\n"
    )
    with ScriptedLM(root=lambda r: "FINAL(from the server)") as lm:
        for _ in range(2):
            out = subprocess.run(
                [sys.executable, "-c", script, lm.base_url, str(path)],
                capture_output=True, text=True, timeout=120, check=False,
            )
            assert out.returncode == 0, out.stderr
            assert out.stdout.strip() == "from the server"
        assert lm.stats["requests"] == 1
    assert len(Cache(path)) == 1


def test_identical_prompts_in_flight_are_sent_once(tmp_path: Path) -> None:
    program = "```repl\nr = llm_batch(['same question'] * 30, max_concurrent=30)\nprint(len(set(r)), r[0])\n```"
    with ScriptedLM(root=[program, "FINAL(ok)"], sub=upper, latency=0.2) as lm:
        result = make_rlm(lm, cache=tmp_path).completion("ctx", "q")
        assert lm.stats["sub"] == 1
    assert result.steps[0].outputs[0].stdout.strip() == "1 SAME QUESTION"
    assert result.usage.by_model["sub"].calls == 1 and result.usage.by_model["sub"].cached_calls == 29


def test_without_cache_every_call_is_sent() -> None:
    program = "```repl\nr = llm_batch(['same question'] * 5)\n```"
    with ScriptedLM(root=[program, "FINAL(ok)"], sub=upper) as lm:
        make_rlm(lm).completion("ctx", "q")
        assert lm.stats["sub"] == 5


def test_parameters_are_part_of_the_key_and_failures_are_not_cached(tmp_path: Path) -> None:
    program = "```repl\nprint(llm_query('item 1'))\n```"
    with ScriptedLM(root=lambda r: program if len(r.messages) == 2 else "FINAL(ok)", sub=upper) as lm:
        lm.fail(Fault.http(500), when=lambda r: r.role == "sub", times=1)
        failed = make_rlm(lm, cache=tmp_path).completion("ctx", "q")
        assert "[rlm error]" in failed.steps[0].outputs[0].stdout
        ok = make_rlm(lm, cache=tmp_path).completion("ctx", "q")
        assert ok.steps[0].outputs[0].stdout.strip() == "ITEM 1"
        subs = lm.stats["sub"]
        make_rlm(lm, cache=tmp_path).completion("ctx", "q")
        assert lm.stats["sub"] == subs  # now cached
        make_rlm(lm, cache=tmp_path, endpoint=Endpoint(call_options={"temperature": 0.5})).completion("ctx", "q")
        assert lm.stats["sub"] == subs + 1  # other parameters, other key
    messages = [{"role": "user", "content": "x"}]
    assert cache_key("m", messages, {"timeout": 5}) == cache_key("m", messages, {})
    assert cache_key("m", messages, {"temperature": 0}) != cache_key("m2", messages, {"temperature": 0})


def test_bad_cache_settings_say_what_to_pass(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(ConfigError, match="writable directory"):
        RLM("m", base_url="http://127.0.0.1:9/v1", endpoint=Endpoint(cache=blocker / "sub"))
    with pytest.raises(ConfigError, match="cache must be"):
        Endpoint(cache=42)  # type: ignore[arg-type]


def _completion(text: str) -> Completion:
    return Completion(text=text, model="m", usage=Usage(1, 2, 3), seconds=0.1)


async def test_followers_share_a_failure_and_redo_a_cancelled_call(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    calls = 0

    async def failing() -> Completion:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.05)
        raise LMResponseError("boom", status=500)

    results = await asyncio.gather(*(cache.once("k1", failing) for _ in range(3)), return_exceptions=True)
    assert calls == 1 and all(isinstance(r, LMResponseError) for r in results)

    started = asyncio.Event()

    async def slow() -> Completion:
        nonlocal calls
        calls += 1
        started.set()
        await asyncio.sleep(0.05)
        return _completion("answer")

    leader = asyncio.ensure_future(cache.once("k2", slow))
    await started.wait()
    follower = asyncio.ensure_future(cache.once("k2", slow))
    await asyncio.sleep(0)
    leader.cancel()
    completion, shared = await asyncio.wait_for(follower, 5)
    assert completion.text == "answer" and not shared and calls == 3
    assert cache.get("k2") == _completion("answer")


def test_a_reply_cut_by_a_budget_cap_is_not_served_to_a_run_without_it(tmp_path: Path) -> None:
    from rlm import Budget

    program = "```repl\nr = llm_query('tell me everything')\nprint(len(r))\n```"
    with ScriptedLM(root=[program, "FINAL_VAR(r)"], sub=lambda r: "word " * 2_000, latency=0.0) as lm:
        cut = make_rlm(lm, cache=tmp_path, budget=Budget(max_tokens=50_000, output_tokens_per_call=100))
        assert len(cut.completion("ctx", "q").answer) == 400  # 100 tokens of 4 characters
        sent = lm.stats["sub"]
        lm.root = [program, "FINAL_VAR(r)"]
        full = make_rlm(lm, cache=tmp_path).completion("ctx", "q")
        assert lm.stats["sub"] == sent + 1  # asked again, not served the cut reply
    assert len(full.answer) == 10_000
