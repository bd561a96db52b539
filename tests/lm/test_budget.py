"""Budgets (reserved before dispatch, rolled up over children), pricing, and the window guard.

Every run goes through the real openai client against ScriptedLM; the server's own
request counter is the ground truth for "not sent".
"""

from __future__ import annotations

import asyncio
import threading

import pytest

from rlm import (
    RLM,
    Budget,
    BudgetExceeded,
    BudgetReport,
    ConfigError,
    ContextWindowExceeded,
    Endpoint,
    Limits,
    LMResponseError,
    ModelInfo,
    Usage,
)
from rlm.lm.budget import BudgetLedger
from rlm.lm.client import OpenAIClient
from rlm.lm.dispatcher import OFF_LOOP_CHARS, _off_loop_if_big
from rlm.lm.endpoint import wire_options
from rlm.lm.pricing import Pricing
from rlm.lm.transport import FastClient
from rlm.testing import Fault, ScriptedLM

PRICES = {"root": ModelInfo(100.0, 100.0), "sub": ModelInfo(100.0, 100.0)}  # $0.0001 a token

BATCH_100 = (
    "```repl\nr = llm_batch(['item %d: ' % i + '1234 5678 ' * 20 for i in range(100)], max_concurrent=64)\n"
    "refused = [x for x in r if isinstance(x, FailedCall)]\n"
    "print(len(refused), refused[0] if refused else '')\n```"
)


def make_rlm(lm: ScriptedLM, **kwargs: object) -> RLM:
    kwargs.setdefault("endpoint", Endpoint(retries=0))
    kwargs.setdefault("sandbox", "local")
    return RLM("root", "sub", base_url=lm.base_url, api_key="k", **kwargs)  # type: ignore[arg-type]


def test_64_parallel_calls_never_overshoot_max_calls_and_the_run_stops_with_a_partial() -> None:
    with ScriptedLM(root=[BATCH_100, "FINAL(never)"], latency=0.02) as lm:
        rlm = make_rlm(lm, budget=Budget(max_calls=30))
        with pytest.raises(BudgetExceeded) as info:
            rlm.completion("ctx", "q")
        assert lm.stats["requests"] == 30  # 1 root turn + 29 sub-calls, not one more
    exc = info.value
    assert exc.budget == "max_calls" and exc.spent == 30 and exc.limit == 30
    assert "max_calls=30" in str(exc) and "Budget(max_calls=...)" in str(exc)
    partial = exc.partial
    assert partial.stopped == "budget" and partial.answer == ""
    assert partial.usage.calls == 30 and partial.budget.exceeded == "max_calls"
    assert partial.budget.calls == 30 and partial.budget.remaining == {"max_calls": 0}
    out = partial.steps[0].outputs[0].stdout
    assert out.startswith("71 [rlm error] BudgetExceeded: budget max_calls=30 reached")


def test_max_tokens_is_reserved_for_calls_in_flight() -> None:
    limit = 4_000
    with ScriptedLM(root=[BATCH_100, "FINAL(never)"], sub=lambda r: "ok", latency=0.02) as lm:
        rlm = make_rlm(lm, budget=Budget(max_tokens=limit), endpoint=Endpoint(call_options={"max_tokens": 100}))
        with pytest.raises(BudgetExceeded) as info:
            rlm.completion("ctx", "q")
        sent = lm.stats["requests"]
    partial = info.value.partial
    assert info.value.budget == "max_tokens"
    assert partial.usage.total_tokens <= limit  # the server's own counts
    assert partial.budget.tokens == partial.usage.total_tokens
    assert 1 < sent < 101 and partial.usage.calls == sent


def test_max_cost_usd_with_overridden_prices_and_cost_in_usage() -> None:
    with ScriptedLM(root=[BATCH_100, "FINAL(never)"], sub=lambda r: "ok", latency=0.02) as lm:
        rlm = make_rlm(lm, budget=Budget(max_cost_usd=0.5),
                endpoint=Endpoint(pricing=PRICES, call_options={"max_tokens": 100}))
        with pytest.raises(BudgetExceeded) as info:
            rlm.completion("ctx", "q")
    usage = info.value.partial.usage
    assert info.value.budget == "max_cost_usd"
    assert usage.cost_usd == pytest.approx(usage.total_tokens * 0.0001)
    assert usage.cost_usd <= 0.5
    assert "$" in str(usage) and usage.unpriced == []


LONG_REPLY = "word " * 8_000  # about 10,000 tokens by the server's count


def test_long_replies_cannot_push_parallel_calls_past_max_tokens() -> None:
    # No reply cap in call_options: the budget sends its own, so 20 parallel
    # 10k-token replies stay inside 20k tokens (they once spent 180k).
    limit = 20_000
    batch = "```repl\nr = llm_batch(['item %d' % i for i in range(20)], max_concurrent=20)\nprint(r[0][:20])\n```"
    with ScriptedLM(root=[batch, "FINAL(never)"], sub=lambda r: LONG_REPLY, latency=0.02) as lm:
        rlm = make_rlm(lm, budget=Budget(max_tokens=limit, output_tokens_per_call=2_000))
        with pytest.raises(BudgetExceeded) as info:
            rlm.completion("ctx", "q")
        sent = lm.requests
    partial = info.value.partial
    assert info.value.budget == "max_tokens"
    assert partial.usage.total_tokens <= limit  # the server's own counts
    caps = [r.body["max_tokens"] for r in sent]
    assert all(16 <= cap <= 2_000 for cap in caps) and caps[1] == 2_000
    assert "max_completion_tokens" not in sent[0].body  # a local endpoint gets max_tokens
    assert len(sent) > 2  # calls ran in parallel until the limit, not one


def test_long_replies_cannot_push_parallel_calls_past_max_cost_usd() -> None:
    batch = "```repl\nr = llm_batch(['item %d' % i for i in range(20)], max_concurrent=20)\nprint(len(r))\n```"
    with ScriptedLM(root=[batch, "FINAL(never)"], sub=lambda r: LONG_REPLY, latency=0.02) as lm:
        rlm = make_rlm(lm, budget=Budget(max_cost_usd=1.0, output_tokens_per_call=1_500),
                endpoint=Endpoint(pricing=PRICES))
        with pytest.raises(BudgetExceeded) as info:
            rlm.completion("ctx", "q")
    usage = info.value.partial.usage
    assert info.value.budget == "max_cost_usd"
    assert usage.cost_usd == pytest.approx(usage.total_tokens * 0.0001)
    assert usage.cost_usd <= 1.0


def test_a_small_token_budget_still_runs_with_the_reply_cut_to_what_is_left() -> None:
    # The default allowance (8192) is larger than the whole budget: with nothing in
    # flight the call takes what is left instead of being refused.
    with ScriptedLM(root=["FINAL(" + "x" * 40_000 + ")"] * 2, latency=0.0) as lm:
        rlm = make_rlm(lm, budget=Budget(max_tokens=3_000))
        # The cut reply is not an answer (it may be incomplete), and the budget is then spent.
        with pytest.raises(BudgetExceeded) as info:
            rlm.completion("ctx", "q")
        cap = lm.requests[0].body["max_tokens"]
    result = info.value.partial
    assert 16 <= cap < 3_000
    assert result.usage.total_tokens <= 3_000 and result.stopped == "budget"
    ends = [e for e in result.trace if e.kind == "call.end" and e.data.get("status") == "ok"]
    assert [e.data["finish_reason"] for e in ends] == ["length"]  # the trace says the reply was cut


def test_a_reply_cap_in_call_options_is_kept_and_reserved() -> None:
    with ScriptedLM(root=["FINAL(ok)"]) as lm:
        rlm = make_rlm(lm, budget=Budget(max_tokens=100_000),
                endpoint=Endpoint(call_options={"max_completion_tokens": 77}))
        rlm.completion("ctx", "q")
        body = lm.requests[0].body
    assert body["max_completion_tokens"] == 77 and "max_tokens" not in body


def test_without_a_token_or_dollar_limit_no_cap_is_sent() -> None:
    with ScriptedLM(root=["FINAL(ok)"]) as lm:
        make_rlm(lm, budget=Budget(max_calls=5)).completion("ctx", "q")
        body = lm.requests[0].body
    assert "max_tokens" not in body and "max_completion_tokens" not in body


def test_the_cap_goes_by_the_name_each_endpoint_knows() -> None:
    cap = {"max_output_tokens": 9, "temperature": 0}
    assert wire_options(cap, None) == {"max_completion_tokens": 9, "temperature": 0}
    assert wire_options(cap, "https://api.openai.com/v1") == {"max_completion_tokens": 9, "temperature": 0}
    assert wire_options(cap, "http://127.0.0.1:8000/v1") == {"max_tokens": 9, "temperature": 0}


def test_cost_budget_needs_prices_for_the_models() -> None:
    with pytest.raises(ConfigError, match="pricing="):
        RLM("root", "sub", base_url="http://127.0.0.1:9/v1", budget=Budget(max_cost_usd=1.0))
    with pytest.raises(ConfigError, match="max_calls"):
        Budget(max_calls=0)
    with pytest.raises(ConfigError, match="max_time_s"):
        Budget(max_time_s=-1)


CHILD_ROOT = "```repl\nparts = [rlm_query('sum', 'abc ' * 50) for _ in range(3)]\nprint(parts)\n```"
CHILD = "```repl\nr = llm_batch(['x ' + str(i) for i in range(4)])\nFINAL(len(r))\n```"


def _tree_root(request) -> str:
    if request.body["model"] == "sub":
        return CHILD
    return CHILD_ROOT if len(request.messages) == 2 else "FINAL_VAR(parts)"


def test_children_and_sub_calls_roll_up_into_the_roots_usage_and_budget() -> None:
    with ScriptedLM(root=_tree_root, sub=lambda r: "ok") as lm:
        rlm = make_rlm(lm, max_depth=2, budget=Budget(max_calls=100), endpoint=Endpoint(pricing=PRICES))
        result = rlm.completion("ctx", "q")
        sent = lm.stats
    assert result.answer == "['4', '4', '4']"
    assert result.usage.calls == sent["requests"] == 2 + 3 * (1 + 4)
    assert result.usage.by_model["sub"].calls == 15  # children think with the sub-model
    assert result.budget.calls == result.usage.calls
    assert result.budget.tokens == result.usage.total_tokens
    assert result.budget.cost_usd == pytest.approx(result.usage.cost_usd)
    assert result.usage.cost_usd == pytest.approx(result.usage.total_tokens * 0.0001)


def test_a_child_hitting_the_budget_returns_an_error_string_and_the_run_stops() -> None:
    with ScriptedLM(root=_tree_root, sub=lambda r: "ok") as lm:
        rlm = make_rlm(lm, max_depth=2, budget=Budget(max_calls=4))
        with pytest.raises(BudgetExceeded) as info:
            rlm.completion("ctx", "q")
        assert lm.stats["requests"] == 4
    out = info.value.partial.steps[0].outputs[0].stdout
    assert "[rlm error] BudgetExceeded" in out


def test_max_time_s_cuts_calls_in_flight() -> None:
    program = "```repl\nr = llm_batch(['slow'] * 8)\nprint(r[0])\n```"
    with ScriptedLM(root=[program, "FINAL(late)"], latency=lambda r: 30.0 if r.role == "sub" else 0.0) as lm:
        rlm = make_rlm(lm, budget=Budget(max_time_s=0.5))
        with pytest.raises(BudgetExceeded) as info:
            rlm.completion("ctx", "q")
    assert info.value.budget == "max_time_s" and info.value.partial.budget.exceeded == "max_time_s"
    assert "max_time_s" in info.value.partial.steps[0].outputs[0].stdout


def test_budget_is_readable_from_the_repl() -> None:
    program = "```repl\nx = llm_query('one')\nb = budget()\nprint(b.calls, b.remaining)\nprint(b)\n```"
    with ScriptedLM(root=[program, "FINAL(ok)"]) as lm:
        result = make_rlm(lm, budget=Budget(max_calls=10)).completion("ctx", "q")
    out = result.steps[0].outputs[0].stdout
    first, rest = out.split("\n", 1)
    assert first == "2 {'max_calls': 8}"  # the root's turn and the one sub-call
    assert "calls: 2 of 10 used" in rest and "tokens:" in rest and "(no limit)" in rest
    assert result.stopped == "final" and result.budget.exceeded is None


def test_failed_calls_count_as_calls_but_use_no_tokens() -> None:
    program = "```repl\nr = llm_batch(['a', 'b', 'c'])\n```"
    with ScriptedLM(root=[program, "FINAL(ok)"]) as lm:
        lm.fail(Fault.http(500), when=lambda r: r.role == "sub")
        result = make_rlm(lm, budget=Budget(max_calls=10)).completion("ctx", "q")
    assert result.budget.calls == 5 and result.usage.calls == 2
    assert result.budget.tokens == result.usage.total_tokens


async def idle() -> None:
    """Run the loop until every ready callback has run: a ledger waits on nothing else, so what could finish has."""
    for _ in range(100):
        await asyncio.sleep(0)


async def test_a_reservation_waits_for_calls_in_flight_instead_of_failing() -> None:
    ledger = BudgetLedger(Budget(max_tokens=1_000), Pricing())
    first = await ledger.reserve("m", 100, 600)
    waiting = asyncio.ensure_future(ledger.reserve("m", 100, 250))
    await idle()
    assert not waiting.done()  # 700 + 350 reserved could pass 1000 if the first used it all
    ledger.settle(first, Usage(1, 100, 50))
    second = await asyncio.wait_for(waiting, 5)
    assert ledger.tokens == 150 and second.tokens == 350
    with pytest.raises(BudgetExceeded):
        await ledger.reserve("m", 500, 500)  # 150 spent + 1000 can never fit
    with pytest.raises(BudgetExceeded):
        await ledger.reserve("m", 1, 1)  # once a limit refused, the run is over


async def test_a_call_behind_calls_in_flight_waits_to_take_what_is_left_instead_of_being_refused() -> None:
    ledger = BudgetLedger(Budget(max_tokens=1_000, output_tokens_per_call=600), Pricing())
    first = await ledger.reserve("m", 100)
    ledger.settle(first, Usage(1, 100, 500))  # 600 spent
    second = await ledger.reserve("m", 50)  # nothing in flight: its cap shrinks to what is left
    assert second.reply_tokens == 1_000 - 600 - 50
    third = asyncio.ensure_future(ledger.reserve("m", 10))  # 600 + 10 + 600 > 1000, but it can shrink
    await idle()
    assert not third.done()
    ledger.settle(second, Usage(1, 50, 100))  # 750 spent
    assert (await asyncio.wait_for(third, 5)).reply_tokens == 1_000 - 750 - 10
    with pytest.raises(BudgetExceeded):
        await ledger.reserve("m", 300)  # not even a 16-token reply fits beside 750 spent + 250 reserved


def test_budget_report_round_trips_through_a_dict() -> None:
    report = BudgetReport(Budget(max_calls=5, max_cost_usd=1.0), calls=2, tokens=10, cost_usd=0.25, seconds=1.5)
    again = BudgetReport.from_dict(report.to_dict())
    assert again == report and again.remaining == {"max_calls": 3, "max_cost_usd": 0.75}
    assert "cost: $0.2500 of $1.0000 used" in str(again)


# -- pricing ---------------------------------------------------------------------------


def test_pricing_lookup_is_exact_then_unprefixed_then_undated() -> None:
    pricing = Pricing()
    assert pricing.lookup("gpt-4o-2024-08-06") == pricing.lookup("gpt-4o")
    assert pricing.lookup("openai/gpt-5-mini") == pricing.lookup("gpt-5-mini")
    assert pricing.lookup("claude-sonnet-4-20250514") == pricing.lookup("claude-sonnet-4")
    assert pricing.lookup("gpt-5-pro").input_per_mtok != pricing.lookup("gpt-5").input_per_mtok
    assert pricing.lookup("gpt-5-turbo-extreme") is None
    assert pricing.cost("gpt-5-mini", Usage(1, 1_000_000, 100_000)) == pytest.approx(0.25 + 0.2)
    assert pricing.cost("unknown", Usage(1, 10, 10)) is None


def test_pricing_overrides_merge_with_the_builtin_table() -> None:
    pricing = Pricing({"gpt-5-mini": (1.0, 2.0), "local": ModelInfo(context_window=8_192)})
    info = pricing.lookup("gpt-5-mini")
    assert (info.input_per_mtok, info.output_per_mtok, info.context_window) == (1.0, 2.0, 272_000)
    assert pricing.context_window("local") == 8_192 and not pricing.is_priced("local")
    with pytest.raises(ConfigError):
        Pricing({"x": (1.0,)})  # type: ignore[dict-item]
    with pytest.raises(ConfigError):
        ModelInfo(input_per_mtok=-1)


def test_unpriced_models_show_as_unknown_cost_not_zero() -> None:
    with ScriptedLM(root=["```repl\nllm_query('a')\n```", "FINAL(ok)"]) as lm:
        result = make_rlm(lm, endpoint=Endpoint(pricing={"root": (1.0, 1.0)})).completion("ctx", "q")
    assert result.usage.by_model["sub"].cost_usd is None
    assert result.usage.unpriced == ["sub"] and result.usage.cost_usd > 0
    assert "no price for sub" in str(result.usage)
    assert result.budget.unpriced_calls == 1  # the sub-call; the two root turns are priced
    assert f"cost: ${result.budget.cost_usd:.4f} used + 1 calls to models with no price" in str(result.budget)
    with ScriptedLM(root=["FINAL(ok)"]) as lm:
        unpriced = make_rlm(lm).completion("ctx", "q").budget
    assert "cost: unknown (1 calls to models with no price" in str(unpriced) and "$0.0000" not in str(unpriced)


# -- the context-window guard ----------------------------------------------------------


def test_a_sub_prompt_over_the_window_is_not_sent_and_says_how_big() -> None:
    program = "```repl\nr = llm_batch(['small one', context])\nprint(r[0])\nprint(r[1])\n```"
    big = "lorem ipsum dolor sit amet " * 2_000  # about 10k tokens
    with ScriptedLM(root=[program, "FINAL(ok)"], sub=lambda r: "fine") as lm:
        rlm = make_rlm(lm, endpoint=Endpoint(pricing={"sub": ModelInfo(context_window=4_000)}))
        result = rlm.completion(big, "q")
        assert lm.stats["sub"] == 1  # only the small prompt went out
    ok, refused = result.steps[0].outputs[0].stdout.strip().split("\n", 1)
    assert ok == "fine"
    assert refused.startswith("[rlm error] ContextWindowExceeded: prompt is 10,")
    assert "context window of 'sub' is 4,000 tokens" in refused and "chunk(text, max_tokens=2000)" in refused


@pytest.mark.parametrize("transport", ["auto", "openai"])
def test_a_local_endpoints_window_is_learnt_once_from_its_model_listing(transport: str) -> None:
    # No pricing entry for "sub": the window comes from /v1/models (vLLM's max_model_len).
    program = "```repl\nr = llm_batch(['small one', context])\nprint(r[1])\n```"
    big = "lorem ipsum dolor sit amet " * 2_000  # about 10k tokens
    with ScriptedLM(root=[program, "FINAL(ok)"] * 2, sub=lambda r: "fine", windows={"sub": 4_000}) as lm:
        rlm = make_rlm(lm, endpoint=Endpoint(transport=transport))
        first = rlm.completion(big, "q")
        rlm.completion(big, "q")
        stats = lm.stats
        system = lm.root_requests[0].messages[0]["content"]
    assert stats["model_listings"] == 1 and stats["sub"] == 2  # asked once; the big prompts never went out
    assert "context window of 'sub' is 4,000 tokens" in first.steps[0].outputs[0].stdout
    assert "up to about 4,000 tokens" in system  # the root is told too


def test_an_endpoint_that_lists_no_window_leaves_it_unknown() -> None:
    with ScriptedLM(root=["FINAL(ok)"]) as lm:
        rlm = make_rlm(lm)
        assert rlm.completion("ctx", "q").answer == "ok"
        assert lm.stats["model_listings"] == 1
    assert rlm.pricing.context_window("sub") is None


@pytest.mark.parametrize("client_type", [OpenAIClient, FastClient])
async def test_a_failed_model_listing_is_a_typed_lm_error(client_type: type) -> None:
    with ScriptedLM() as lm:
        client = client_type(base_url=lm.url + "/nowhere/v1", api_key="k")
        with pytest.raises(LMResponseError) as info:
            await client.list_models()
        await client.aclose()
    assert info.value.status == 404


def test_failed_call_from_the_guard_carries_the_numbers() -> None:
    program = (
        "```repl\nr = llm_query(context)\nprint(type(r).__name__, r.error.tokens > r.error.limit, r.error.limit)\n```"
    )
    with ScriptedLM(root=[program, "FINAL(ok)"]) as lm:
        result = make_rlm(lm, endpoint=Endpoint(pricing={"sub": ModelInfo(context_window=100)})).completion(
            "word " * 500, "q"
        )
        refused = [e for e in result.trace if e.kind == "call.end" and e.data.get("status") == "refused"]
        assert not lm.sub_requests and len(refused) == 1  # refused here, never sent
    assert result.steps[0].outputs[0].stdout.strip() == "FailedCall True 100"


def test_a_root_prompt_over_the_window_stops_the_run() -> None:
    # Even the system prompt and the query do not fit: nothing can be compacted away.
    with ScriptedLM(root=["FINAL(ok)"]) as lm:
        rlm = make_rlm(lm, endpoint=Endpoint(pricing={"root": ModelInfo(context_window=300)}))
        with pytest.raises(ContextWindowExceeded) as info:
            rlm.completion("ctx", "q " * 400)
        assert lm.stats["root"] == 0
    assert info.value.partial.stopped == "error" and info.value.limit == 300


def test_a_history_near_the_roots_window_is_compacted_and_the_run_goes_on() -> None:
    replies = ["```repl\nprint(*range(3000))\n```", "```repl\nx = 41\n```", "FINAL(ok)"]
    with ScriptedLM(root=replies) as lm:
        rlm = make_rlm(lm, limits=Limits(max_output_chars=100_000),
                endpoint=Endpoint(pricing={"root": ModelInfo(context_window=3_000)}))
        result = rlm.completion("ctx", "q")
        last = lm.root_requests[-1].messages
    assert result.answer == "ok" and result.ok
    compactions = [e for e in result.trace if e.kind == "history.compact"]
    assert compactions and compactions[0].data["window"] == 3_000
    assert any("were compacted to fit your context window" in str(m["content"]) for m in last)
    assert sum(len(str(m["content"])) for m in last) < 3_000 * 4


def test_the_root_is_told_the_sub_models_window_and_the_helpers() -> None:
    with ScriptedLM() as lm:
        make_rlm(lm, endpoint=Endpoint(pricing={"sub": ModelInfo(context_window=8_192)})).completion("ctx", "q")
    system = lm.root_requests[0].messages[0]["content"]
    assert "up to about 8,192 tokens" in system and "chunk(text" in system and "budget()" in system


def test_budget_works_in_the_seed_replenv() -> None:
    from rlm.repl import REPLEnv

    with ScriptedLM(sub=lambda r: "ok") as lm:
        env = REPLEnv("sub", context_str="ctx", base_url=lm.base_url, api_key="k")
        out = env.code_execution(
            "llm_query('a')\npieces = chunk('x ' * 50, max_tokens=10)\n"
            "print(budget().calls, len(pieces) > 1 and all(count_tokens(p) <= 10 for p in pieces))"
        )
    assert out.stdout.strip() == "1 True"


async def test_big_prompts_are_tokenized_off_the_event_loop() -> None:
    # tiktoken releases the GIL: counting a big prompt on a worker thread keeps the
    # runtime loop (and every call in flight) moving.
    here = threading.get_ident()
    small = [{"role": "user", "content": "x"}]
    big = [{"role": "user", "content": "x" * (OFF_LOOP_CHARS + 1)}]
    assert await _off_loop_if_big(small, threading.get_ident) == here
    assert await _off_loop_if_big(big, threading.get_ident) != here
