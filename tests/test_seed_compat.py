"""The seed API (rlm-minimal): RLM_REPL, REPLEnv, Sub_RLM keep working over the new core."""

from __future__ import annotations

import logging

from rlm.repl import REPLEnv, REPLResult, Sub_RLM
from rlm.rlm_repl import RLM_REPL
from rlm.testing import ScriptedLM


def echo(req) -> str:
    return "echo " + req.prompt


def test_rlm_repl_completion_returns_the_answer_string(monkeypatch, caplog):
    with ScriptedLM(root=["```repl\nx = llm_batch(['a', 'b'])\n```", "FINAL_VAR(x)"], sub=echo) as lm:
        monkeypatch.setenv("OPENAI_BASE_URL", lm.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "k")
        caplog.set_level(logging.INFO, logger="rlm")
        rlm = RLM_REPL(model="root-model", recursive_model="sub-model", enable_logging=True)
        answer = rlm.completion(context="some context", query="what?")
    assert answer == "['echo a', 'echo b']"
    assert {r.model for r in lm.sub_requests} == {"sub-model"}
    assert {r.model for r in lm.root_requests} == {"root-model"}
    assert "final answer" in caplog.text and "iteration 1" in caplog.text


def test_repl_env_code_execution_with_llm_batch(monkeypatch):
    with ScriptedLM(sub=echo, latency=0.05) as lm:
        monkeypatch.setenv("OPENAI_BASE_URL", lm.base_url)
        repl = REPLEnv(recursive_model="gpt-5-nano", context_str="Your context here")
        result = repl.code_execution(
            "chunks = [context[i:i+4] for i in range(0, len(context), 4)]\n"
            "results = llm_batch([f'kw: {c}' for c in chunks])\n"
            "print(len(results), results[0])"
        )
        assert isinstance(result, REPLResult)
        assert result.stdout == "5 echo kw: Your\n"
        assert result.locals["results"][-1] == "echo kw: e"
        assert result.execution_time > 0
        failed = repl.code_execution("undefined_name")
        assert "NameError" in failed.stderr
        assert lm.stats["max_in_flight"] >= 5


def test_sub_rlm_batch_completion_keeps_order(monkeypatch):
    with ScriptedLM(sub=echo, latency=(0.0, 0.1)) as lm:
        monkeypatch.setenv("OPENAI_BASE_URL", lm.base_url)
        sub = Sub_RLM("gpt-5-nano")
        assert sub.batch_completion([str(i) for i in range(20)]) == [f"echo {i}" for i in range(20)]
        assert sub.completion("x") == "echo x"


def test_the_seeds_other_entry_points(monkeypatch):
    with ScriptedLM(root=["FINAL(answered)"], sub=echo) as lm:
        monkeypatch.setenv("OPENAI_BASE_URL", lm.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "k")
        rlm = RLM_REPL(model="root-model", recursive_model="sub-model")
        assert rlm.cost_summary()["calls"] == 0
        assert rlm.completion("Summarise this.") == "answered"  # no query: the context says what is asked
        summary = rlm.cost_summary()
        assert summary["calls"] == 1 and summary["by_model"]["root-model"]["calls"] == 1
        assert "the context contains" in lm.root_requests[0].messages[1]["content"]
        rlm.reset()
        assert rlm.last_result is None and rlm.cost_summary()["calls"] == 0
        repl = REPLEnv(recursive_model="gpt-5-nano", context_str="ctx")
        result = repl.code_execution("x = 41 + 1\nFINAL_VAR('x')")
        assert result.final == "42" and result.stdout.endswith("42\n")
        assert repl.locals == {"context": "ctx", "x": 42}  # what code made; not other scaffolds' names
        assert repl.code_execution("query = 'mine'").locals["query"] == "mine"  # unless code assigns one
