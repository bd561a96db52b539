"""Recursion trees: rlm_query_batched, and limits the host enforces whatever code in the REPL does."""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from typing import Any

import pytest
from scripting import code

from rlm import RLM, ConfigError, Endpoint, Limits
from rlm.testing import ScriptedLM
from rlm.testing.script import ScriptedRequest

LATENCY = 0.08



@pytest.fixture(params=["local", "kernel"])
def sandbox(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def query_of(request: ScriptedRequest) -> str:
    first = str(request.messages[1]["content"])
    return first.split("The query:\n", 1)[1].split("\n", 1)[0]


class Tree:
    """A scripted tree: the top asks 6 children, each child asks 6 leaves; arrivals kept per parent."""

    def __init__(self, fanout: int, *, max_concurrent: int | None = None) -> None:
        self.fanout = fanout
        self.extra = "" if max_concurrent is None else f", max_concurrent={max_concurrent}"
        self.lock = threading.Lock()
        self.arrivals: dict[str, list[float]] = defaultdict(list)

    def root(self, request: ScriptedRequest) -> str:
        query = query_of(request)
        parent = "top" if query.startswith("child-") else query.split("-")[1] if query.startswith("leaf-") else None
        if parent is not None:
            with self.lock:
                self.arrivals[parent].append(time.monotonic())
        if query == "top":
            asks = [f"child-{i}" for i in range(self.fanout)]
            return code(f"FINAL(' '.join(rlm_query_batched({asks!r}{self.extra})))")
        if query.startswith("child-"):
            i = query.split("-")[1]
            asks = [f"leaf-{i}-{j}" for j in range(self.fanout)]
            return code(f"FINAL('|'.join(rlm_query_batched({asks!r}{self.extra})))")
        return f"FINAL({query})"

    def peak(self) -> dict[str, int]:
        """Most children of each parent in flight at once at the server (each child is one call of LATENCY s)."""
        out = {}
        for parent, times in self.arrivals.items():
            times = sorted(times)
            out[parent] = max(sum(1 for u in times if t - LATENCY < u <= t) for t in times)
        return out


def test_a_depth_3_tree_of_6_children_per_node_keeps_max_children_and_adds_up_usage(sandbox: str) -> None:
    tree = Tree(6)
    with ScriptedLM(root=tree.root, latency=LATENCY) as lm:
        rlm = RLM("root", "sub", base_url=lm.base_url, api_key="k", sandbox=sandbox, max_depth=3,
                  endpoint=Endpoint(retries=0), limits=Limits(max_children=2))
        with rlm:
            result = rlm.completion("ctx", "top")
        served = lm.stats["requests"]
    expected = " ".join("|".join(f"leaf-{i}-{j}" for j in range(6)) for i in range(6))
    assert result.answer == expected and result.ok  # answers in order, at every level
    assert served == 1 + 6 + 36 and result.usage.calls == served
    assert result.usage.by_model["root"].calls == 1 and result.usage.by_model["sub"].calls == 42
    assert sum(u.prompt_tokens for u in result.usage.by_model.values()) == result.usage.prompt_tokens > 0
    peaks = tree.peak()
    assert len(peaks) == 7 and max(peaks.values()) <= 2, peaks
    assert max(peaks.values()) == 2  # the limit was reached, so it was what held them back
    runs = [e for e in result.trace if e.kind == "run.start"]
    assert len(runs) == 43 and {e.data["depth"] for e in runs} == {0, 1, 2}
    # Each child run hangs under the code step that started it.
    execs = {e.id for e in result.trace if e.kind == "exec.start"}
    assert all(e.parent in execs for e in runs if e.data["depth"] > 0)


def test_code_in_the_repl_cannot_raise_the_limits(sandbox: str) -> None:
    tree = Tree(6, max_concurrent=50)
    tamper = code("max_children = 100", "max_depth = 10", "import sys",
                  "print([m for m in sys.modules if 'limits' in m][:3])")
    script = tree.root
    calls = {"n": 0}

    def root(request: ScriptedRequest) -> str:
        if query_of(request) == "top" and calls["n"] == 0:
            calls["n"] += 1
            return tamper
        return script(request)

    with ScriptedLM(root=root, latency=LATENCY) as lm:
        rlm = RLM("root", "sub", base_url=lm.base_url, api_key="k", sandbox=sandbox, max_depth=2,
                  endpoint=Endpoint(retries=0), limits=Limits(max_children=3))
        with rlm:
            result = rlm.completion("ctx", "top")
    peaks = tree.peak()
    assert max(peaks.values()) == 3, peaks  # max_concurrent=50 and the variables changed nothing
    # max_depth=2: the children could not recurse; their rlm_query_batched became plain sub-calls.
    assert {e.data["depth"] for e in result.trace if e.kind == "run.start"} == {0, 1}
    assert result.ok


def test_max_descendants_caps_a_completion_and_the_rest_are_failed_calls(sandbox: str) -> None:
    reply = code("out = rlm_query_batched([f'leaf-0-{i}' for i in range(8)])",
                 "print(sum(isinstance(o, FailedCall) for o in out), out[-1])")
    with ScriptedLM(root=lambda r: reply if query_of(r) == "top" else f"FINAL({query_of(r)})") as lm:
        rlm = RLM("root", "sub", base_url=lm.base_url, api_key="k", sandbox=sandbox, max_depth=2, max_iterations=1,
                  endpoint=Endpoint(retries=0), limits=Limits(max_descendants=5))
        with rlm:
            result = rlm.completion("ctx", "top")
    printed = result.steps[0].outputs[0].stdout
    assert printed.startswith("3 [rlm error]") and "Limits.max_descendants" in printed
    assert sum(e.kind == "run.start" for e in result.trace) == 1 + 5


def test_rlm_query_batched_checks_its_arguments(sandbox: str) -> None:
    reply = code("try:\n    rlm_query_batched(['a'], max_concurrent=0)",
                 "except TypeError as e:\n    print('refused', e)")
    with ScriptedLM(root=[reply, "FINAL(x)"]) as lm, RLM(
            "root", "sub", base_url=lm.base_url, api_key="k", sandbox=sandbox, max_depth=2,
            endpoint=Endpoint(retries=0)) as rlm:
        result = rlm.completion("ctx", "q")
    assert "refused" in result.steps[0].outputs[0].stdout


@pytest.mark.parametrize("field", ["max_children", "max_descendants"])
def test_limits_are_checked(field: str) -> None:
    bad: dict[str, Any] = {field: 0}
    with pytest.raises(ConfigError, match=field):
        Limits(**bad)

