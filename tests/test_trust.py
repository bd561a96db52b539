"""How a run ends never lies, and what real models write is understood (the project's own cases)."""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

import pytest
from scripting import code

from rlm import RLM, Endpoint, LMConnectionError, LMResponseError, RetryPolicy
from rlm.core.parsing import find_code_blocks, find_final
from rlm.errors import LMConnectionError as ConnectionErrorType
from rlm.testing import Fault, ScriptedLM


def feedback(lm: ScriptedLM, n: int) -> str:
    """What the root read before its ``n``-th reply (1-based)."""
    return str(lm.root_requests[n - 1].messages[-1]["content"])


# -- 1. a FINAL beside code counts only once the root has seen that code's output ----------


def test_a_final_after_code_that_failed_is_not_taken_and_the_root_sees_the_error(make) -> None:
    lying = code("total = undefined_name + 1") + "\nThe total is 42.\nFINAL(42)"
    with ScriptedLM(root=[lying, code("total = 41 + 1"), "FINAL_VAR(total)"]) as lm:
        result = make(lm).completion("ctx", "q")
        seen = feedback(lm, 2)
    assert "NameError" in seen and "FINAL was not taken" in seen
    assert result.answer == "42" and result.iterations == 3 and result.ok


def test_a_final_var_of_what_the_same_reply_computed_counts_at_once(make) -> None:
    with ScriptedLM(root=[code("answer_text = 'computed'") + "\nFINAL_VAR(answer_text)"]) as lm:
        result = make(lm).completion("ctx", "q")
    assert result.answer == "computed" and result.iterations == 1


def test_a_final_in_code_after_a_failed_block_of_the_same_reply_is_not_run(make) -> None:
    reply = code("1 / 0") + "\n" + code("FINAL('made up')")
    with ScriptedLM(root=[reply, "FINAL(real)"]) as lm:
        result = make(lm).completion("ctx", "q")
        assert "Block 2 was not run, because block 1 failed" in feedback(lm, 2)
    assert result.answer == "real"


# -- 2. a reply cut at its output cap is never the answer ---------------------------------


def test_a_cut_reply_is_not_an_answer_and_its_cut_block_is_not_run(make) -> None:
    cut_code = "```repl\nstarted = True\nprint('x' * 10)\n" + "# filler " * 200 + "\nhalf = "
    replies = ["FINAL(" + "long answer " * 100 + ")", cut_code, "FINAL(short)"]
    with ScriptedLM(root=replies) as lm:
        rlm = make(lm, endpoint=Endpoint(retries=0, call_options={"max_tokens": 60}))
        result = rlm.completion("ctx", "q")
        assert "cut off at its output limit" in feedback(lm, 2)
        assert "last unfinished code block was not run" in feedback(lm, 3)
    assert result.answer == "short" and result.steps[1].outputs == ()


def test_a_forced_answer_cut_at_its_cap_says_so(make) -> None:
    with ScriptedLM(root=[code("x = 1"), "FINAL(" + "word " * 300 + ")"]) as lm:
        rlm = make(lm, max_iterations=1, endpoint=Endpoint(retries=0, call_options={"max_tokens": 40}))
        result = rlm.completion("ctx", "q")
    assert result.stopped == "cut_off" and result.fallback and not result.ok


# -- 3. a failed sub-call is not a successful answer -------------------------------------


def test_an_answer_that_is_a_failed_sub_call_says_it_failed(make) -> None:
    with ScriptedLM(root=[code("x = llm_query('who?')"), "FINAL_VAR(x)"]) as lm:
        lm.fail(Fault.http(401, "invalid api key"), when=lambda r: r.role == "sub")
        result = make(lm).completion("ctx", "q")
    assert result.stopped == "failed_call" and not result.ok
    assert result.error is not None and "401" in result.error and "invalid api key" in result.error
    assert "answer is an error" in result.trace.to_html()  # the view does not show it as done


# -- 4. every way a run stops keeps what was done -----------------------------------------


def test_a_cancelled_acompletion_keeps_its_partial_result() -> None:
    async def main() -> Any:
        with ScriptedLM(root=[code("r = llm_query('slow')")], latency=lambda r: 30.0 if r.role == "sub" else 0) as lm:
            rlm = RLM("root", "sub", base_url=lm.base_url, api_key="k", sandbox="local")
            task = asyncio.ensure_future(rlm.acompletion("ctx", "q"))
            deadline = time.monotonic() + 20
            while lm.stats["sub"] == 0 and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            task.cancel()
            with pytest.raises(asyncio.CancelledError) as info:
                await task
            return info.value

    cancelled = asyncio.run(main())
    assert cancelled.partial is not None and cancelled.partial.stopped == "cancelled"
    assert cancelled.partial.usage.calls >= 1


# -- 5. the max_iterations fallback answers in text ---------------------------------------


def test_the_forced_answer_is_text_never_a_code_block(make) -> None:
    # Code beside the words: asked once more for the answer alone, as the code cannot run.
    with ScriptedLM(root=[code("x = 1"), "Here is the code:\n```python\nprint(x)\n```\nThe answer is 7.",
                          "FINAL(7)"]) as lm:
        result = make(lm, max_iterations=1).completion("ctx", "q")
        assert "Code does not run any more" in feedback(lm, 3)
    assert result.stopped == "max_iterations" and result.answer == "7"
    with ScriptedLM(root=[code("x = 1"), "The answer is 7."]) as lm:  # words alone are an answer
        assert make(lm, max_iterations=1).completion("ctx", "q").answer == "The answer is 7."


# -- 7. what real models write ------------------------------------------------------------


@pytest.mark.parametrize("reply, expected", [
    (code("summary = 'from a variable'"), "from a variable"),
])
def test_final_of_a_variable_name_answers_with_its_value(make, reply: str, expected: str) -> None:
    with ScriptedLM(root=[reply, "FINAL(summary)"]) as lm:
        assert make(lm).completion("ctx", "q").answer == expected


def test_final_var_called_with_the_value_and_final_with_an_f_string(make) -> None:
    replies = [code("label = 'False'", "FINAL_VAR(f'Label: {label}')")]
    with ScriptedLM(root=replies) as lm:
        assert make(lm).completion("ctx", "q").answer == "Label: False"
    with ScriptedLM(root=[code("n = 37"), 'FINAL(f"Answer: {n}")']) as lm:
        assert make(lm).completion("ctx", "q").answer == "Answer: 37"


@pytest.mark.parametrize("text, blocks", [
    ("```python3\nx = 1\n```", ["x = 1"]),
    ("```ipython\nx = 2\n```", ["x = 2"]),
    ("```{python}\nx = 3\n```", ["x = 3"]),
    ("```\n```python\nx = 4\n```\n```", ["x = 4"]),
    ("```text\nx = 5\n```", []),
])
def test_code_fences_real_models_write(text: str, blocks: list[str]) -> None:
    assert find_code_blocks(text) == blocks


@pytest.mark.parametrize("text, answer", [
    ("FINAL(yes :))", "yes :)"),
    ('FINAL("a ( b")', "a ( b"),
    ("FINAL(see 3) above)", "see 3) above"),
    ("```\n```python\nx = 4\n```\n```\nFINAL(after a decorated block)", "after a decorated block"),
])
def test_answers_with_smileys_and_stray_parentheses(text: str, answer: str) -> None:
    found = find_final(text)
    assert found is not None and found.value == answer


def test_the_parser_stays_linear_on_a_huge_unterminated_final() -> None:
    reply = "FINAL(" + "(x '" * 50_000 + "FINAL(" * 20_000
    started = time.process_time()
    find_final(reply)
    find_code_blocks(reply)
    assert time.process_time() - started < 5.0  # quadratic would be minutes


# -- 8. names other scaffolds taught their models -----------------------------------------


def test_other_scaffolds_names_work(make) -> None:
    program = code(
        "a = llm_query_batched(['p', 'q'])",
        "SHOW_VARS()",
        "print(query)",
    )
    with ScriptedLM(root=[program, code("SUBMIT(answer=a[0] + '|' + a[1])")], sub=lambda r: r.prompt.upper()) as lm:
        result = make(lm).completion("ctx", "the question")
    out = result.steps[0].outputs[0].stdout
    assert "a: list (len 2)" in out and out.rstrip().endswith("the question")
    assert result.answer == "P|Q"


def test_the_rlms_answer_dict_ends_the_run(make) -> None:
    with ScriptedLM(root=[code("answer['content'] = 'from the dict'", "answer['ready'] = True")]) as lm:
        assert make(lm).completion("ctx", "q").answer == "from the dict"


def test_rlm_query_batched_runs_children_in_order(make) -> None:
    def root(req: Any) -> str:
        if "child" in req.messages[1]["content"]:
            return code("FINAL(context.upper())")
        if sum(m["role"] == "assistant" for m in req.messages) == 0:
            return code("r = rlm_query_batched(['child a', 'child b'], ['abc', 'xyz'])")
        return "FINAL_VAR(r)"

    with ScriptedLM(root=root) as lm:
        assert make(lm, max_depth=2).completion("ctx", "q").answer == "['ABC', 'XYZ']"


# -- 9. overwritten helpers are put back --------------------------------------------------


def test_a_helper_root_code_overwrites_is_restored_and_the_root_is_told(make) -> None:
    replies = [code("def llm_query(p):\n    return 'fake'"), code("print(llm_query('x'))"), "FINAL(done)"]
    with ScriptedLM(root=replies) as lm:
        result = make(lm).completion("ctx", "q")
        assert "You reassigned llm_query" in feedback(lm, 2)
    assert result.steps[1].outputs[0].stdout == "ok\n"


# -- 10. tool calls, empty choices ---------------------------------------------------------


def test_a_tool_call_reply_gets_a_nudge_that_fits(make) -> None:
    with ScriptedLM(root=["FINAL(done)"]) as lm:
        lm.fail(Fault.tool_call("search"), when=lambda r: r.role == "root", times=1)
        result = make(lm).completion("ctx", "q")
        seen = feedback(lm, 2)
    assert "tool call" in seen and "empty" not in seen and result.answer == "done"


def test_a_reply_with_no_choices_is_retried(make) -> None:
    with ScriptedLM(root=["FINAL(done)"]) as lm:
        lm.fail(Fault.empty_choices(), when=lambda r: r.role == "root", times=1)
        rlm = make(lm, endpoint=Endpoint(retries=RetryPolicy(base_delay=0.01)))
        assert rlm.completion("ctx", "q").answer == "done"
        assert lm.stats["root"] == 2


# -- 11, 12. errors that say what to do ----------------------------------------------------


def test_a_refused_connection_fails_fast_and_names_the_url() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    url = f"http://127.0.0.1:{port}/v1"
    rlm = RLM("root", base_url=url, api_key="k", sandbox="local")
    started = time.monotonic()
    with pytest.raises(LMConnectionError) as info:
        rlm.completion("ctx", "q")
    assert url in str(info.value) and "refused" in str(info.value) and info.value.refused
    assert time.monotonic() - started < 10  # it retries once, briefly; it took 13-15 s before
    refused = ConnectionErrorType("x")
    refused.refused = True
    assert RetryPolicy().delay(refused, 1) == pytest.approx(0.3) and RetryPolicy().delay(refused, 2) is None


def test_a_404_at_a_base_url_without_v1_says_to_add_it() -> None:
    with ScriptedLM() as lm:
        url = lm.url
        rlm = RLM("root", base_url=url, api_key="k", sandbox="local", endpoint=Endpoint(retries=0))
        with pytest.raises(LMResponseError) as info:
            rlm.completion("ctx", "q")
    assert info.value.status == 404 and f"try base_url='{url}/v1'" in str(info.value)


def test_an_exhausted_script_fails_at_once_naming_it() -> None:
    with ScriptedLM(root=[code("x = 1")]) as lm:
        rlm = RLM("root", base_url=lm.base_url, api_key="k", sandbox="local")  # default retries
        with pytest.raises(LMResponseError, match="the root script ran out"):
            rlm.completion("ctx", "q")
        assert lm.stats["root"] == 2  # the failing request was not retried
