"""RLM end to end through the real openai client against the scripted server."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from rlm import RLM, ConfigError, Endpoint, Limits, RLMResult
from rlm.testing import Fault, ScriptedLM

CHUNK_PROGRAM = """\
```repl
size = len(context) // 50
chunks = [context[i * size:(i + 1) * size] for i in range(50)]
answers = llm_batch([f"item {i}: " + c[:40] for i, c in enumerate(chunks)], max_concurrent=25)
failed = [i for i, a in enumerate(answers) if isinstance(a, FailedCall)]
print(len(chunks), "chunks,", len(failed), "failed:", failed)
```
"""


def item_reply(req) -> str:
    """Sub-model: answer with the item number, so order is checkable."""
    return "answer " + req.prompt.split(":", 1)[0].split()[1]


@pytest.fixture(autouse=True, params=["kernel", "local"])
def sandbox(request: pytest.FixtureRequest) -> str:
    """Every end-to-end behaviour must hold in the isolated kernel and in-process alike."""
    return str(request.param)


@pytest.fixture
def make_rlm(sandbox: str) -> Callable[..., RLM]:
    """An RLM on the scripted server, in this test's sandbox."""
    def make(lm: ScriptedLM, **kwargs: Any) -> RLM:
        kwargs.setdefault("endpoint", Endpoint(retries=0))
        kwargs.setdefault("sandbox", sandbox)
        return RLM("root", "sub", base_url=lm.base_url, api_key="test-key", **kwargs)

    return make


def test_fifty_chunk_batch_over_one_megabyte_keeps_order_and_runs_in_parallel(make_rlm):
    context = "".join(f"[{i:07d}]" for i in range(100_000))  # 1 MB, position-stamped
    with ScriptedLM(root=[CHUNK_PROGRAM, "FINAL_VAR(answers)"], sub=item_reply, latency=(0.05, 0.4)) as lm:
        result = make_rlm(lm).completion(context, "number the chunks")
        root_chars = max(sum(len(str(m["content"])) for m in r.messages) for r in lm.root_requests)
        assert root_chars < 50_000, "the root was shown the context, not a preview of it"
        stamps = {r.prompt.split(":")[0]: r.prompt.split(": ", 1)[1][:9] for r in lm.sub_requests}
        assert stamps == {f"item {i}": f"[{i * 2000:07d}]" for i in range(50)}  # each chunk where it belongs
        assert result.answer == str([f"answer {i}" for i in range(50)])
        assert result.iterations == 2 and result.stopped == "final" and not result.fallback
        assert lm.stats["sub"] == 50
        assert lm.stats["max_in_flight"] >= 10
        assert result.usage.by_model["sub"].calls == 50
        assert result.usage.by_model["root"].calls == 2
        assert result.usage.prompt_tokens > 0 and result.usage.completion_tokens > 0
        # the root never sees the whole context: every root prompt is far smaller than it
        assert all(len(str(r.messages)) < 20_000 for r in lm.root_requests)


def test_five_failed_items_become_typed_errors_in_place(make_rlm):
    failing = {3, 11, 20, 33, 49}
    with ScriptedLM(root=[CHUNK_PROGRAM, "FINAL_VAR(answers)"], sub=item_reply, latency=0.01) as lm:
        lm.fail(
            Fault.http(500, "boom"),
            when=lambda r: r.role == "sub" and int(r.prompt.split(":")[0].split()[1]) in failing,
        )
        rlm = make_rlm(lm)
        result = rlm.completion("x" * 5000, "number the chunks")
        out = result.steps[0].outputs[0].stdout
        assert f"50 chunks, 5 failed: {sorted(failing)}" in out
        assert result.stopped == "final"
        answers = eval(result.answer)  # a list repr of 50 strings
        assert len(answers) == 50
        for i, a in enumerate(answers):
            if i in failing:
                assert a.startswith("[rlm error]") and "500" in a
            else:
                assert a == f"answer {i}"


def test_failed_call_is_a_str_carrying_the_exception(make_rlm):
    with ScriptedLM(
        root=[
            "```repl\nr = llm_query('item 1: x')\n"
            "print(type(r).__name__, isinstance(r, str), type(r.error).__name__, r.error.status)\n```",
            "FINAL(ok)",
        ]
    ) as lm:
        lm.fail(Fault.http(500), when=lambda r: r.role == "sub")
        result = make_rlm(lm).completion("ctx", "q")
        assert result.steps[0].outputs[0].stdout.strip() == "FailedCall True LMResponseError 500"


def test_transient_500_is_retried_by_default():
    with ScriptedLM(root=["```repl\nprint(llm_query('item 7: x'))\n```", "FINAL(ok)"], sub=item_reply) as lm:
        lm.fail(Fault.http(500), when=lambda r: r.role == "sub", times=1)
        result = RLM("root", "sub", base_url=lm.base_url, api_key="k").completion("ctx", "q")
        assert result.steps[0].outputs[0].stdout.strip() == "answer 7"
        assert lm.stats["sub"] == 2


def test_root_code_errors_go_back_to_the_root_and_state_persists(make_rlm):
    replies = [
        "```repl\nx = 41\n1/0\n```",
        "```repl\nx += 1\nprint('x is', x)\n```",
        "FINAL_VAR(x)",
    ]
    with ScriptedLM(root=replies) as lm:
        result = make_rlm(lm).completion("ctx", "q")
    assert result.answer == "42"
    assert "ZeroDivisionError" in result.steps[0].outputs[0].error
    second_root_prompt = lm.root_requests[1].messages[-1]["content"]
    assert "ZeroDivisionError" in second_root_prompt
    assert result.steps[1].outputs[0].stdout == "x is 42\n"


def test_final_called_inside_code_ends_the_run_even_under_except_exception(make_rlm):
    code = "```repl\ntry:\n    FINAL('from (code) \"quoted\"')\nexcept Exception:\n    print('swallowed')\n```"
    with ScriptedLM(root=[code]) as lm:
        result = make_rlm(lm).completion("ctx", "q")
    assert result.answer == 'from (code) "quoted"'
    assert result.iterations == 1
    assert "swallowed" not in result.steps[0].outputs[0].stdout


def test_final_var_callable_in_code_and_missing_variable_is_reported(make_rlm):
    replies = [
        "FINAL_VAR(nope)",
        "```repl\nresult = {'a': 1}\nFINAL_VAR('result')\n```",
    ]
    with ScriptedLM(root=replies) as lm:
        result = make_rlm(lm).completion("ctx", "q")
    assert result.answer == "{'a': 1}"
    assert "no variable named 'nope'" in lm.root_requests[1].messages[-1]["content"]


def test_multiline_final_with_nested_parentheses_after_code(make_rlm):
    reply = "```repl\nn = len(context)\n```\nFINAL(The total (see f(x) = (a+b)) is:\nline two)"
    # Written beside its code, the FINAL waits until the root has seen the output; then it counts.
    with ScriptedLM(root=[reply, "FINAL(The total (see f(x) = (a+b)) is:\nline two)"]) as lm:
        result = make_rlm(lm).completion("ctx", "q")
        feedback = lm.root_requests[1].messages[-1]["content"]
    assert result.answer == "The total (see f(x) = (a+b)) is:\nline two"
    assert "before seeing that code's output" in feedback and result.iterations == 2


def test_empty_and_null_content_and_prose_replies_are_nudged(make_rlm):
    replies = ["", "I will look at the context and call FINAL(x) later.", "Let me think.", "FINAL(done)"]
    with ScriptedLM(root=replies) as lm:
        lm.fail(Fault.null_content(), when=lambda r: r.role == "root" and r.index == 2, times=1)
        result = make_rlm(lm).completion("ctx", "q")
    assert result.answer == "done"
    prompts = [r.messages[-1]["content"] for r in lm.root_requests]
    assert "empty" in prompts[1]
    # The reply did write FINAL(...), in a sentence: the root is told so, not that it wrote none.
    assert "FINAL(...) inside a line of text" in prompts[2] and "no FINAL" not in prompts[2]
    assert "empty" in prompts[3]
    assert "no code block and no FINAL" in prompts[4]
    assert all(p.startswith(f"Turn {n} of 20.") for n, p in enumerate(prompts[1:], 1))


def test_max_iterations_asks_for_an_answer_and_flags_the_fallback(make_rlm):
    def looping(req):
        return "FINAL(best guess)" if "used all your turns" in req.messages[-1]["content"] else "```repl\nprint(1)\n```"
    with ScriptedLM(root=looping) as lm:
        result = make_rlm(lm, max_iterations=3).completion("ctx", "q")
    assert result.fallback is True and result.stopped == "max_iterations"
    assert result.iterations == 3
    assert result.answer == "best guess"
    assert lm.stats["root"] == 4


def test_output_is_truncated_head_and_tail(make_rlm):
    with ScriptedLM(root=["```repl\nprint('HEAD' + 'x' * 50_000 + 'TAIL')\n```", "FINAL(ok)"]) as lm:
        make_rlm(lm, limits=Limits(max_output_chars=1000)).completion("ctx", "q")
    fed_back = lm.root_requests[1].messages[-1]["content"]
    assert "HEAD" in fed_back and "TAIL" in fed_back and "characters omitted" in fed_back
    assert len(fed_back) < 1500


def test_rlm_query_recurses_with_depth_two(make_rlm):
    def root(req):
        is_child = "inner question" in req.messages[1]["content"]
        turns = sum(m["role"] == "assistant" for m in req.messages)
        if is_child:
            return "```repl\nFINAL(context.upper())\n```"
        if turns == 0:
            return "```repl\ninner = rlm_query('inner question', 'abc')\n```"
        return "FINAL_VAR(inner)"

    with ScriptedLM(root=root) as lm:
        result = make_rlm(lm, max_depth=2).completion("outer", "q")
    assert result.answer == "ABC"
    runs = [e for e in result.trace if e.kind == "run.start"]
    assert len(runs) == 2 and runs[1].data["depth"] == 1 and runs[1].data["model"] == "sub"


def test_bad_input_errors_say_what_to_do(monkeypatch, make_rlm, sandbox):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    unconfigured = RLM("gpt-5", sandbox=sandbox)  # builds: estimate() needs no endpoint
    with pytest.raises(ConfigError, match="OPENAI_API_KEY"):
        unconfigured.completion("ctx", "q")  # a run says what to set, before a kernel starts
    assert unconfigured.kernels is None or unconfigured.kernels.started == 0
    with ScriptedLM() as lm:
        rlm = make_rlm(lm)
        with pytest.raises(TypeError, match="supported: str, bytes"):
            rlm.completion(object(), "q")
        if sandbox == "kernel":  # the local REPL takes the very objects, picklable or not
            with pytest.raises(TypeError, match="picklable"):
                rlm.completion({"a": threading.Lock()}, "q")
        with pytest.raises(ConfigError, match="query"):
            rlm.completion("ctx", "")
        assert lm.stats["requests"] == 0


def test_context_types_are_described_not_pasted(tmp_path, make_rlm):
    path = tmp_path / "doc.txt"
    path.write_text("SECRET-TAIL".rjust(10_000, "."))
    with ScriptedLM(root=["```repl\nprint(type(context).__name__, len(context))\n```", "FINAL(ok)"] * 3) as lm:
        rlm = make_rlm(lm)
        for ctx, expect in ((path, "str 10000"), (["a", "bb"], "list 2"), ({"k": [1, 2]}, "dict 1")):
            result = rlm.completion(ctx, "q")
            assert result.steps[0].outputs[0].stdout.strip() == expect
    assert all("SECRET-TAIL" not in str(r.messages) for r in lm.requests)


def test_root_endpoint_failure_raises_with_partial_result(make_rlm):
    # the script runs out -> HTTP 500
    with ScriptedLM(root=["```repl\nx = 1\n```"]) as lm, pytest.raises(Exception) as info:
        make_rlm(lm).completion("ctx", "q")
    assert info.value.partial.iterations == 1


async def test_sync_completion_inside_a_running_event_loop(make_rlm):
    with ScriptedLM(root=["```repl\nx = llm_query('item 2: a')\n```", "FINAL_VAR(x)"], sub=item_reply) as lm:
        rlm = make_rlm(lm)
        assert rlm.completion("ctx", "q").answer == "answer 2"
        lm.root = ["FINAL(async)"]
        assert (await rlm.acompletion("ctx", "q")).answer == "async"


def test_two_completions_at_once_on_one_rlm_share_the_limiter(make_rlm):
    program = "```repl\nr = llm_batch(['item %d: x' % i for i in range(40)], max_concurrent=40)\n```"
    with ScriptedLM(
        root=lambda req: "FINAL_VAR(r)" if len(req.messages) > 2 else program, sub=item_reply, latency=0.1
    ) as lm:
        rlm = make_rlm(lm, max_concurrent=16)
        results: list[RLMResult] = []
        threads = [threading.Thread(target=lambda: results.append(rlm.completion("c", "q"))) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert len(results) == 2 and all("answer 39" in r.answer for r in results)
    assert lm.stats["max_in_flight"] <= 16


def test_keyboard_interrupt_cancels_sub_calls_and_rlm_stays_usable(make_rlm):
    program = "```repl\nr = llm_batch(['item %d: x' % i for i in range(30)], max_concurrent=30)\n```"
    def slow_subs(req):
        return 30.0 if req.role == "sub" else 0.0
    with ScriptedLM(root=[program], sub=item_reply, latency=slow_subs) as lm:
        rlm = make_rlm(lm)

        def interrupt_once_in_flight() -> None:
            deadline = time.monotonic() + 30
            while lm.stats["in_flight"] < 30 and time.monotonic() < deadline:
                time.sleep(0.02)
            interrupted.append(time.monotonic())
            os.kill(os.getpid(), signal.SIGINT)

        interrupted: list[float] = []
        # Ctrl-C is Python's default SIGINT handler, whatever an earlier test in this worker
        # process left installed: what rlm does with a KeyboardInterrupt is the question here.
        previous = signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            threading.Thread(target=interrupt_once_in_flight, daemon=True).start()
            with pytest.raises(KeyboardInterrupt) as info:
                rlm.completion("ctx", "q")
        finally:
            signal.signal(signal.SIGINT, previous)
        assert time.monotonic() - interrupted[0] < 2.0
        partial = info.value.partial  # Ctrl-C keeps what was done, as Cancelled does
        assert partial is not None and partial.stopped == "cancelled" and partial.usage.calls >= 1
        assert any(e.kind == "batch.start" for e in partial.trace)  # the interrupted step is in the trace
        deadline = time.monotonic() + 1.0
        while lm.stats["in_flight"] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert lm.stats["in_flight"] == 0, "sub-calls still in flight 1 s after the interrupt"
        lm.latency = 0.0
        lm.root = ["FINAL(still works)"]
        assert rlm.completion("ctx", "q").answer == "still works"


def test_acompletion_cancel_stops_sub_calls(make_rlm):
    async def main():
        program = "```repl\nr = llm_batch(['item %d: x' % i for i in range(10)])\n```"
        with ScriptedLM(root=[program], sub=item_reply, latency=lambda r: 30.0 if r.role == "sub" else 0) as lm:
            rlm = make_rlm(lm)
            task = asyncio.ensure_future(rlm.acompletion("ctx", "q"))
            deadline = time.monotonic() + 30  # the kernel may still be starting
            while lm.stats["in_flight"] < 10 and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            assert lm.stats["in_flight"] == 10
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            deadline = time.monotonic() + 2.0
            while lm.stats["in_flight"] and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            assert lm.stats["in_flight"] == 0

    asyncio.run(main())


@pytest.mark.parametrize("fault", [Fault.malformed(), Fault.empty_choices()], ids=["malformed", "empty-choices"])
def test_unusable_responses_are_typed_errors(fault, make_rlm):
    from rlm import LMResponseError

    with ScriptedLM(
        root=["```repl\nr = llm_query('item 1: x')\nprint(type(r.error).__name__)\n```", "FINAL(ok)"]
    ) as lm:
        lm.fail(fault, when=lambda r: r.role == "sub")
        result = make_rlm(lm).completion("ctx", "q")
        assert result.steps[0].outputs[0].stdout.strip() == "LMResponseError"
        lm.root = ["FINAL(never)"]
        lm.fail(fault, when=lambda r: r.role == "root")
        with pytest.raises(LMResponseError) as info:
            make_rlm(lm).completion("ctx", "q")
        assert info.value.partial is not None and info.value.partial.iterations == 0


def test_a_runaway_step_times_out_and_the_next_step_runs(make_rlm):
    replies = ["```repl\nx = 1\nwhile True:\n    pass\n```", "```repl\nprint('after', x)\n```", "FINAL(ok)"]
    with ScriptedLM(root=replies) as lm:
        result = make_rlm(lm, limits=Limits(step_timeout=1.0)).completion("ctx", "q")
    assert "timed out" in result.steps[0].outputs[0].error
    assert result.steps[1].outputs[0].stdout == "after 1\n"
    assert result.answer == "ok"
