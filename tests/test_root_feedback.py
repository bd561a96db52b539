"""What the loop tells the root after each reply, end to end: budget, turns, forced answer, first-turn FINAL.

The real openai client against the scripted server, in both sandboxes. Where a failure
mode was seen in a real run, the run's own replies (../shared/trajectories) drive the test.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from rlm import RLM, Limits
from rlm.core.finals import MID_LINE_BESIDE_CODE
from rlm.core.history import OlderOutputs, compact
from rlm.core.prompts import ANSWER_RETRY, FIRST_TURN_CHECK
from rlm.testing import ScriptedLM
from rlm.testing.trajectories import load_runs, shared_dir

RUNS = {run.name: run for run in load_runs()}
needs_recordings = pytest.mark.skipif(shared_dir() is None,
                                      reason="../shared/trajectories/ is not beside this checkout")


def _block(code: str) -> str:
    return f"```repl\n{code}\n```"


def _feedback(lm: ScriptedLM, n: int) -> str:
    """What the root read after its reply n (1-based): the last message of root request n + 1."""
    return str(lm.root_requests[n].messages[-1]["content"])


def test_blocks_share_one_budget_and_stop_at_the_first_failure(make: Callable[..., RLM]) -> None:
    blocks = [_block("ran = [1]\nprint('a' * 20_000)"), _block("ran.append(2)\nprint('b' * 20_000)"),
              _block("ran.append(3)\n1 / 0"), *[_block(f"ran.append({k})\nprint('z' * 20_000)") for k in range(4, 8)]]
    with ScriptedLM(root=["\n\n".join(blocks), "FINAL_VAR(ran)"]) as lm:
        result = make(lm, limits=Limits(max_output_chars=4_000)).completion("ctx", "q")
        message = _feedback(lm, 1)
    assert result.answer == "[1, 2, 3]"  # blocks 4-7 never ran: they would have built on the failure
    assert "Block 3 (failed):" in message and "ZeroDivisionError" in message
    assert "Blocks 4-7 were not run, because block 3 failed" in message
    assert len(message) < 4_000 + 1_000  # one budget for the turn, not one per block
    assert message.startswith("Turn 1 of 20. Output of 3 blocks:")


def test_an_older_output_shrinks_once_when_a_newer_one_arrives(make: Callable[..., RLM]) -> None:
    replies = [_block(f"print('{c}' * 5_000)") for c in "abc"] + ["FINAL(done)"]
    with ScriptedLM(root=replies) as lm:
        make(lm).completion("ctx", "q")
        histories = [[str(m["content"]) for m in r.messages] for r in lm.root_requests]
    assert "a" * 5_000 in histories[1][-1]  # the latest output is whole
    turn_one_later = [h[3] for h in histories[2:]]  # [system, query, reply 1, output 1, ...]
    assert all("Shortened now that newer output came" in t and "a" * 5_000 not in t for t in turn_one_later)
    assert turn_one_later[0] == turn_one_later[1]  # it changed once: the prefix stays cacheable
    assert "b" * 5_000 in histories[2][-1]


def test_every_message_says_the_turn_and_the_last_ones_warn(make: Callable[..., RLM]) -> None:
    def root(request: Any) -> str:
        turn = sum(m["role"] == "assistant" for m in request.messages) + 1
        return "FINAL(done)" if turn > 5 else _block(f"x{turn} = {turn}")

    with ScriptedLM(root=root) as lm:
        make(lm, max_iterations=5).completion("ctx", "q")
        messages = [_feedback(lm, n) for n in range(1, 5)]
    assert [m.split(".", 1)[0] for m in messages] == [f"Turn {n} of 5" for n in range(1, 5)]
    assert "(nothing was printed: print() what you want to see)" in messages[0]
    warned = ["left: put your answer in a variable" in m for m in messages]
    assert warned == [False, True, True, True]


def test_out_of_turns_the_root_is_offered_its_variables_and_code_is_never_the_answer(
        make: Callable[..., RLM]) -> None:
    def root(request: Any) -> str:
        last = str(request.messages[-1]["content"])
        if ANSWER_RETRY in last:
            return "FINAL_VAR(total)"
        return _block("total = sum(range(10))\nprint(total)")  # code, even when told code no longer runs

    with ScriptedLM(root=root) as lm:
        result = make(lm, max_iterations=2).completion("ctx", "q")
        forced = _feedback(lm, 2)
    assert "used all your turns" in forced and "FINAL_VAR(name)" in forced
    assert forced.split("Your variables:\n")[1] == "- total: int"  # the root's only: not IPython's In, Out, ...
    assert result.answer == "45" and result.stopped == "max_iterations" and result.fallback
    assert len(lm.root_requests) == 4  # two turns, the forced answer, one retry


def test_a_root_that_never_answers_ends_with_what_its_variables_held(make: Callable[..., RLM]) -> None:
    with ScriptedLM(root=lambda request: _block("found = 'the Q3 total is 4,210'\nprint(found)")) as lm:
        result = make(lm, max_iterations=2).completion("ctx", "q")
    assert result.stopped == "fallback" and not result.ok and result.fallback
    assert "```" not in result.answer and "print(found)" not in result.answer
    assert "- found = 'the Q3 total is 4,210'" in result.answer
    assert len(lm.root_requests) == 4


def test_the_forced_answer_is_asked_again_after_a_real_code_reply() -> None:
    """A code reply at the forced answer used to become the answer (a replay returned 'print(res)')."""
    with ScriptedLM(root=[_block("res = 6 * 7"), _block("print(res)"), "FINAL_VAR(res)"]) as lm:
        result = RLM("root", "sub", base_url=lm.base_url, api_key="k", sandbox="local",
                     max_iterations=1).completion("ctx", "q")
    assert result.answer == "42" and result.stopped == "max_iterations"


def test_a_final_before_any_code_over_a_context_not_seen_whole_is_checked_once(make: Callable[..., RLM]) -> None:
    big = "Meeting notes. " * 2_000 + "The vote was 7 to 2."
    with ScriptedLM(root=lambda request: "FINAL(7 to 2)") as lm:
        result = make(lm).completion(big, "What was the vote?")
        checked = _feedback(lm, 1)
    assert result.answer == "7 to 2" and len(lm.root_requests) == 2
    assert FIRST_TURN_CHECK in checked and checked.startswith("Turn 1 of 20.")
    with ScriptedLM(root=lambda request: "FINAL(7 to 2)") as lm:
        assert make(lm).completion("The vote was 7 to 2.", "What was the vote?").answer == "7 to 2"
        assert len(lm.root_requests) == 1  # it saw all of it: taken at once
    with ScriptedLM(root=lambda request: "FINAL(7 to 2)") as lm:
        result = make(lm, max_iterations=1).completion(big, "What was the vote?")
        assert result.stopped == "final" and len(lm.root_requests) == 1  # no turn left to check it in


@needs_recordings
def test_gpt4os_first_turn_answer_is_taken_over_the_context_it_saw_and_checked_over_a_bigger_one() -> None:
    run = RUNS["rlms-4"]  # gpt-4o answered on its first turn, without code, from the preview
    for context, calls in ((run.context, 1), (run.context + "\n" + "earlier chat turns. " * 500, 2)):
        with ScriptedLM(root=lambda request: run.replies[0]) as lm:
            result = RLM("root", "sub", base_url=lm.base_url, api_key="k", sandbox="local").completion(
                context, run.query)
        assert result.answer == "I pick the color blue." and len(lm.root_requests) == calls


@needs_recordings
def test_qwen3_coders_seven_blocks_then_the_forced_answer_offers_its_final_result() -> None:
    """Paper B.2: the answer was in `final_result`; out of turns, the model answered from memory, wrongly."""
    run = RUNS["paper-B2-qwen3-coder"]
    with ScriptedLM(root=list(run.replies), sub=run.sub) as lm:
        result = RLM("root", "sub", base_url=lm.base_url, api_key="k", sandbox="local",
                     max_iterations=1).completion(run.context, run.query)
        forced = _feedback(lm, 1)
    assert forced.startswith("Turn 1 of 1. Output of 7 blocks:") and "- final_result: str" in forced
    assert run.meant(result.answer) and result.stopped == "max_iterations"


@pytest.mark.parametrize("reply", ["Final answer: FINAL(42)", "So the answer is FINAL(42)."])
def test_a_final_ending_the_last_line_of_a_reply_without_code_is_taken(make: Callable[..., RLM], reply: str) -> None:
    with ScriptedLM(root=[_block("x = 42\nprint(x)"), reply]) as lm:
        assert make(lm).completion("ctx", "q").answer == "42"


def test_a_final_inside_a_line_beside_code_is_not_taken_and_the_root_is_told_why(make: Callable[..., RLM]) -> None:
    with ScriptedLM(root=[_block("x = 42\nprint(x)") + "\nSo the answer is FINAL(42).", "FINAL(42)"]) as lm:
        assert make(lm).completion("ctx", "q").answer == "42"
        told = _feedback(lm, 1)
    assert MID_LINE_BESIDE_CODE in told and "no FINAL" not in told


def test_the_compaction_note_keeps_what_the_root_wrote_and_points_to_show_vars() -> None:
    messages: list[dict[str, Any]] = [{"role": "system", "content": "s"}, {"role": "user", "content": "q"}]
    for n in range(6):
        messages += [{"role": "assistant", "content": f"Chunk {n} holds the dates.\n```repl\nd{n} = 1\n```"},
                     {"role": "user", "content": f"Turn {n + 1} of 20. Output:\n```text\n{'o' * 2_000}\n```"}]
    found = compact(messages, 3_000, lambda ms: sum(len(str(m["content"])) for m in ms) // 2)
    assert found is not None
    note = str(found[0][2]["content"])
    assert "SHOW_VARS()" in note and "wrote: Chunk 0 holds the dates." in note and "ran: d0 = 1" in note
    assert "Turn 1 of 20" not in note  # the output's framing is not repeated


def test_older_outputs_change_once() -> None:
    older = OlderOutputs()
    first, second = {"role": "user", "content": "long 1"}, {"role": "user", "content": "long 2"}
    older.add(first, "short 1")
    assert first["content"] == "long 1"
    older.add(second, "short 2")
    assert (first["content"], second["content"]) == ("short 1", "long 2")
