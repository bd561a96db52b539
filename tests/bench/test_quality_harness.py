"""The harness proves itself: through the real RLM loop, sandbox, clients and scorers, a scripted oracle
that writes the right program scores 1.0 on every task type and a deliberately wrong one scores near 0.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from rlm import runtime
from rlm.bench.quality.items import Item
from rlm.bench.quality.methods import Methods, Outcome, Target
from rlm.bench.quality.policies import HARNESS_ROOT, HARNESS_SUB, harness_lm
from rlm.bench.quality.scoring import score
from rlm.bench.quality.tasks import codeqa, oolong, pairs, sniah
from rlm.testing import ScriptedLM

_TREE = codeqa.CodeTree(codeqa.default_source())

#: Every question kind of every task, at 8k tokens.
ITEMS: dict[str, list[Item]] = {
    "sniah": [sniah.make_item(8192, 0, 0), sniah.make_item(8192, 0, 1, needles=3)],
    "oolong": [oolong.make_item(8192, 0, i) for i in range(4)],
    "pairs": [pairs.make_item(8192, 0, i) for i in range(3)],
    "codeqa": [_TREE.make_item(8192, 0, i) for i in range(4)],
}


def _run(task: str, items: list[Item], method: str, *, wrong: bool = False, sandbox: str = "local",
         window: int | None = None) -> list[tuple[Item, Outcome, float]]:
    lm = harness_lm(task, wrong=wrong)
    methods = Methods(Target(HARNESS_ROOT, HARNESS_SUB, lm.base_url, "harness", window=window, sandbox=sandbox))
    try:
        outcomes = [runtime.run(methods.run(method, item)) for item in items]
    finally:
        runtime.run(methods.aclose())
        lm.stop()
    return [(item, out, score(item.metric, item.answer_type, item.expected, out.answer))
            for item, out in zip(items, outcomes, strict=True)]


@pytest.mark.parametrize("task", sorted(ITEMS))
def test_the_oracle_scores_one_and_the_wrong_policy_near_zero_through_the_rlm(task: str) -> None:
    right = _run(task, ITEMS[task], "rlm-batch")
    for item, outcome, points in right:
        assert outcome.error is None and outcome.stopped == "final", outcome
        assert points == 1.0, (item.kind, item.expected, outcome.answer[:300])
        assert outcome.sub_calls >= 1 and outcome.calls == outcome.sub_calls + 1
    assert {item.kind for item, _, _ in right} == {item.kind for item in ITEMS[task]}
    for item, outcome, points in _run(task, ITEMS[task], "rlm-batch", wrong=True):
        assert outcome.error is None, outcome
        assert points < 0.01, (item.kind, item.expected, outcome.answer[:300])


@pytest.mark.parametrize("method", ["base", "summary", "program", "rlm-query"])
def test_every_method_reaches_the_right_answer_with_the_oracle(method: str) -> None:
    items = ITEMS["oolong"][:2] + ITEMS["sniah"][:1]
    for item, outcome, points in _run("oolong", items[:2], method) + _run("sniah", items[2:], method):
        assert points == 1.0 and outcome.error is None, (method, item.kind, outcome)
        assert outcome.calls >= 1 and outcome.prompt_tokens > 0
        if method == "rlm-query":
            assert outcome.sub_calls >= 1 and outcome.calls == outcome.sub_calls + 1
        else:
            assert outcome.sub_calls == outcome.failed_sub_calls == 0
    for item, outcome, points in _run("oolong", items[:2], method, wrong=True):
        assert points < 0.01, (method, item.kind, outcome.answer)


def test_the_base_model_reads_only_its_window_and_the_summary_agent_reads_all() -> None:
    deep = next(item for item in (sniah.make_item(32768, 0, i) for i in range(20))
                if item.context.index(f"is: {item.expected[0]}.") > len(item.context) // 2)
    [(_, base, points)] = _run("sniah", [deep], "base", window=4096)
    assert base.note.startswith("context cut to") and int(base.note.split()[3].replace(",", "")) < 4096 - 1024
    assert points == 0.0 and base.answer.endswith("not found"), "the needle lies beyond the window"
    [(_, summary, points)] = _run("sniah", [deep], "summary", window=4096)
    assert points == 1.0 and summary.calls > 10 and summary.note.endswith("parts")


@pytest.mark.parametrize("task", sorted(ITEMS))
def test_the_oracle_scores_one_and_the_wrong_policy_near_zero_in_the_kernel_sandbox(task: str) -> None:
    for item, outcome, points in _run(task, ITEMS[task][-1:], "rlm-batch", sandbox="kernel"):
        assert points == 1.0 and outcome.error is None and outcome.sub_calls >= 1, (item.kind, outcome)
    for item, outcome, points in _run(task, ITEMS[task][-1:], "program", wrong=True, sandbox="kernel"):
        assert points < 0.01 and outcome.error is None, (item.kind, outcome)


SUB_CALLING_ROOT = "```repl\nreply = llm_query('hello')\nFINAL(f'got: {reply}')\n```"


@pytest.fixture
def server() -> Iterator[ScriptedLM]:
    with ScriptedLM(root=lambda request: SUB_CALLING_ROOT, sub=lambda request: "a sub-call answered") as lm:
        yield lm


def test_the_program_only_baseline_refuses_sub_calls_before_they_reach_the_model(server: ScriptedLM) -> None:
    methods = Methods(Target("root-model", "sub-model", server.base_url, "x", sandbox="local"))
    try:
        outcome = runtime.run(methods.run("program", ITEMS["sniah"][0]))
    finally:
        runtime.run(methods.aclose())
    assert outcome.answer.startswith("got: [rlm error]") and "disabled" in outcome.answer
    assert outcome.sub_calls == 0 and outcome.failed_sub_calls == 1 and outcome.calls == 1
    assert server.stats["sub"] == 0 and server.stats["root"] == 1


def test_rlm_query_runs_even_a_batch_one_call_at_a_time(server: ScriptedLM) -> None:
    server.root = lambda request: "```repl\nr = llm_batch(['a'] * 6, max_concurrent=6)\nFINAL(str(len(r)))\n```"
    server.latency = 0.05
    methods = Methods(Target("root-model", "sub-model", server.base_url, "x", sandbox="local"))
    try:
        query_only = runtime.run(methods.run("rlm-query", ITEMS["sniah"][0]))
        peak_query = server.stats["max_in_flight"]
        server.reset()
        batched = runtime.run(methods.run("rlm-batch", ITEMS["sniah"][0]))
    finally:
        runtime.run(methods.aclose())
    assert query_only.answer == batched.answer == "6" and query_only.sub_calls == batched.sub_calls == 6
    assert peak_query == 1 and server.stats["max_in_flight"] > 1
