"""Sessions: several questions over one REPL and one conversation, in both sandboxes."""

from __future__ import annotations

import asyncio

import pytest
from scripting import code

from rlm import Budget, BudgetExceeded, ConfigError, Endpoint, ModelInfo
from rlm.testing import ScriptedLM


def test_three_questions_reuse_a_variable_and_see_earlier_answers(make) -> None:
    script = [
        code("words = context.split()", "print(len(words))"), "FINAL_VAR(words)",
        code("print(len(words), answers)"), "FINAL(again)",
        code("print(len(words) * 2)"),
        "FINAL(doubled)",
    ]
    with ScriptedLM(root=script) as lm:
        rlm = make(lm)
        with rlm.session("a b c") as s:
            first = s.ask("How many words?")
            second = s.ask("Again?")
            third = s.ask("Doubled?")
        requests = lm.root_requests
    assert [first.answer, second.answer, third.answer] == ["['a', 'b', 'c']", "again", "doubled"]
    assert first.ok and second.ok and third.ok and s.answers == ["['a', 'b', 'c']", "again", "doubled"]
    # The second question's first step used `words` from the first question, and saw `answers`.
    assert "3 [\"['a', 'b', 'c']\"]" in requests[3].messages[-1]["content"]
    assert "6" in requests[5].messages[-1]["content"]
    # One conversation: the third question's root call carries every earlier turn.
    history = [m["content"] for m in requests[4].messages]
    assert "How many words?" in history[1] and any("Again?" in h for h in history)
    assert any("Doubled?" in h and "2 earlier answer(s)" in h for h in history)
    # Each question is its own run with its own trace.
    assert len([e for e in third.trace if e.kind == "run.start"]) == 1


def test_a_question_may_bring_more_context_under_a_name_the_root_is_told(make) -> None:
    script = ["FINAL(one)", code("print(context, context_2)"), "FINAL(two)"]
    with ScriptedLM(root=script) as lm:
        with make(lm).session("first doc") as s:
            s.ask("q1")
            s.ask("q2", context={"k": "second doc"})
        told = lm.root_requests[1].messages[-1]["content"]
        printed = lm.root_requests[2].messages[-1]["content"]
    assert "`context_2`" in told and "dict" in told
    assert "first doc {'k': 'second doc'}" in printed


def test_the_session_keeps_working_when_its_history_is_compacted(make) -> None:
    big = "x" * 3_000
    script = [code(f"print('{big}')") for _ in range(4)] + ["FINAL(one)"]
    script += [code("print('still here', len(context))"), "FINAL(two)"]
    windows = {"root": ModelInfo(context_window=4_000)}
    with ScriptedLM(root=script) as lm:
        rlm = make(lm, endpoint=Endpoint(retries=0, pricing=windows))
        with rlm.session("abc") as s:
            s.ask("q1")
            second = s.ask("q2")
    assert second.answer == "two" and second.ok
    compactions = [e for r in s.results for e in r.trace if e.kind == "history.compact"]
    assert compactions


def test_an_async_session_and_its_errors(make) -> None:
    async def main(lm: ScriptedLM) -> list[str]:
        async with make(lm).session("ctx") as s:
            a = await s.aask("q1")
            b = await s.aask("q2")
        with pytest.raises(ConfigError, match="closed"):
            await s.aask("q3")
        return [a.answer, b.answer]

    with ScriptedLM(root=["FINAL(a)", "FINAL(b)"]) as lm:
        assert asyncio.run(main(lm)) == ["a", "b"]


def test_a_question_that_fails_leaves_the_session_usable(make) -> None:
    script = [code("kept = 7"), code("FINAL(kept + 1)"), code("FINAL(kept * len(answers))")]
    with ScriptedLM(root=script) as lm:
        rlm = make(lm, budget=Budget(max_calls=1))
        with rlm.session("ctx") as s:
            with pytest.raises(BudgetExceeded) as stopped:
                s.ask("q1")  # makes `kept`, then has no call left for its answer
            first = s.ask("q2")  # each question has its own budget
            second = s.ask("q3")
    assert stopped.value.partial.iterations == 1
    assert first.answer == "8" and second.answer == "7"
    assert s.answers == ["8", "7"] and len(s.results) == 2
    with ScriptedLM() as lm, make(lm).session("a") as s, pytest.raises(ConfigError, match="first question"):
        s.ask("q", context="b")
