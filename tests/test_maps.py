"""Resumable maps: every finished item committed as it completes; a rerun sends only what is missing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from pydantic import BaseModel

from rlm import RLM, Budget, BudgetExceeded, ConfigError, Endpoint, FailedCall
from rlm.checkpoint import Checkpoint
from rlm.testing import Fault, ScriptedLM


def make(lm: ScriptedLM, **kwargs: object) -> RLM:
    kwargs.setdefault("endpoint", Endpoint(retries=0))
    return RLM("root", "sub", base_url=lm.base_url, api_key="k", sandbox="local", **kwargs)  # type: ignore[arg-type]


def test_a_map_answers_in_order_isolates_failures_and_a_rerun_retries_only_those(tmp_path: Path) -> None:
    prompts = [f"item {i}" for i in range(40)]
    store = tmp_path / "runs" / "m.sqlite"
    with ScriptedLM(sub=lambda r: r.prompt.upper(), latency=(0.0, 0.02)) as lm:
        lm.fail(Fault.http(500, "boom"), when=lambda r: r.prompt in ("item 3", "item 17"), times=2)
        first = make(lm).map(prompts, checkpoint=store, max_concurrent=8)
        assert [str(a) for i, a in enumerate(first) if i not in (3, 17)] == [
            p.upper() for i, p in enumerate(prompts) if i not in (3, 17)]
        assert isinstance(first[3], FailedCall) and "500" in first[3] and first.resumed == 0
        assert first.usage.calls == 38 and lm.stats["requests"] == 40  # usage counts answered calls
        second = make(lm).map(prompts, checkpoint=store)
        assert lm.stats["requests"] == 42  # only the two failures were sent again
    assert second == [p.upper() for p in prompts] and second.resumed == 38 and second.usage.calls == 2
    with Checkpoint(store) as cp:
        assert cp.status() == {"path": str(store), "items": 40, "answered": 40, "failed": 0,
                               "prompt_tokens": cp.status()["prompt_tokens"], "completion_tokens":
                               cp.status()["completion_tokens"]}
        out = cp.to_jsonl(tmp_path / "out.jsonl")
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert [x["answer"] for x in lines] == second and [x["index"] for x in lines] == list(range(40))


def test_a_changed_prompt_or_model_is_refused_not_mixed(tmp_path: Path) -> None:
    store = tmp_path / "m.sqlite"
    with ScriptedLM() as lm:
        make(lm).map(["a", "b"], checkpoint=store)
        with pytest.raises(ConfigError, match="item 1's input changed"):
            make(lm).map(["a", "B"], checkpoint=store)
        with pytest.raises(ConfigError, match="model differ"):
            RLM("root", "other", base_url=lm.base_url, api_key="k", sandbox="local").map(["a", "b"], checkpoint=store)
        grown = make(lm).map(["a", "b", "c"], checkpoint=store)  # more items: the new one is sent
        assert grown.resumed == 2 and lm.stats["requests"] == 3


def test_the_whole_maps_budget_stops_it_and_keeps_what_was_done(tmp_path: Path) -> None:
    store = tmp_path / "m.sqlite"
    with ScriptedLM() as lm:
        with pytest.raises(BudgetExceeded) as stopped:
            make(lm, budget=Budget(max_calls=5)).map([f"p{i}" for i in range(20)], checkpoint=store, max_concurrent=1)
        partial = stopped.value.partial
        assert sum(1 for a in partial if a is not None) == 5
        rest = make(lm).map([f"p{i}" for i in range(20)], checkpoint=store)
    assert rest.resumed == 5 and None not in rest


class Label(BaseModel):
    label: str


def test_map_rlm_runs_one_completion_per_context_and_resumes(tmp_path: Path) -> None:
    store = tmp_path / "r.sqlite"
    reply = "```repl\nSUBMIT(label=context.split()[0])\n```"
    with ScriptedLM(root=lambda r: reply) as lm:
        results = make(lm).map_rlm(["alpha x", "beta y", "gamma z"], "label it", checkpoint=store, schema=Label)
        assert [r.answer for r in results] == [Label(label="alpha"), Label(label="beta"), Label(label="gamma")]
        assert all(r.usage.calls == 1 for r in results) and results.usage.calls == 3
        again = make(lm).map_rlm(["alpha x", "beta y", "gamma z"], "label it", checkpoint=store, schema=Label)
        assert lm.stats["requests"] == 3 and again.resumed == 3
    assert [r.answer for r in again] == [Label(label="alpha"), Label(label="beta"), Label(label="gamma")]
    runs = [e for e in results.trace if e.kind == "run.start"]
    assert len(runs) == 4 and all(e.parent is not None for e in runs[1:])  # completions under the map's run


SCRIPT = """
import sys
from rlm import RLM, Endpoint
rlm = RLM("root", "sub", base_url=sys.argv[1], api_key="k", sandbox="local", endpoint=Endpoint(retries=0))
answers = rlm.map([f"item {i}" for i in range(400)], checkpoint=sys.argv[2], max_concurrent=8)
print(len(answers), answers.resumed, flush=True)
"""


def test_a_map_killed_midway_resumes_and_pays_no_finished_call_twice(tmp_path: Path) -> None:
    store = tmp_path / "killed.sqlite"
    script = tmp_path / "map.py"
    script.write_text(textwrap.dedent(SCRIPT))
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    with ScriptedLM(sub=lambda r: "answer " + r.prompt, latency=0.01) as lm:
        child = subprocess.Popen([sys.executable, str(script), lm.base_url, str(store)], env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while lm.stats["requests"] < 120:
            assert time.monotonic() < deadline and child.poll() is None, "the map ended before it could be killed"
            time.sleep(0.01)
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=10)
        sent_first = lm.stats["requests"]
        with Checkpoint(store) as cp:
            committed = cp.status()["answered"]
        assert 0 < committed < 400
        rerun = subprocess.run([sys.executable, str(script), lm.base_url, str(store)], env=env,
                               capture_output=True, text=True, timeout=120, check=True)
        sent_second = lm.stats["requests"] - sent_first
    assert rerun.stdout.split() == ["400", str(committed)]
    assert sent_second == 400 - committed  # exactly the items not committed: none paid for twice
    with Checkpoint(store) as cp:
        rows = list(cp.rows())
    assert [r.index for r in rows] == list(range(400)) and all(r.answer == f"answer item {r.index}" for r in rows)
