"""Hedged sub-calls: stragglers re-sent once a batch's slots would sit idle; first reply wins."""

from __future__ import annotations

import time

import pytest

from rlm import RLM, Budget, ConfigError, Endpoint, Hedge
from rlm.lm.dispatcher import Dispatcher
from rlm.lm.limiter import AdaptiveLimiter
from rlm.lm.transport import FastClient
from rlm.lm.types import UsageMeter
from rlm.testing import ScriptedLM, ScriptedRequest
from rlm.trace.events import Tracer

SLOW = {"item 7", "item 41"}


def stalls_first_time(seconds: float = 2.0, times: int = 1):
    """Two prompts stall the first ``times`` times they are asked, as a slow replica would; other replies take 20 ms."""
    seen: dict[str, int] = {}

    def latency(request: ScriptedRequest) -> float:
        if request.prompt in SLOW and seen.get(request.prompt, 0) < times:
            seen[request.prompt] = seen.get(request.prompt, 0) + 1
            return seconds
        return 0.02

    return latency


async def run_batch(hedge: Hedge | None, n: int = 60, stalls: int = 1) -> tuple[list[str | Exception], float,
                                                                               ScriptedLM, Tracer, UsageMeter]:
    with ScriptedLM(latency=stalls_first_time(times=stalls), sub=lambda r: "ok " + r.prompt) as lm:
        tracer, meter = Tracer(), UsageMeter()
        client = FastClient(base_url=lm.base_url, api_key="k")
        dispatcher = Dispatcher(client, limiter=AdaptiveLimiter(8), tracer=tracer, meter=meter, hedge=hedge)
        started = time.perf_counter()
        try:
            answers = await dispatcher.batch([f"item {i}" for i in range(n)], model="m", max_concurrent=8,
                                             parent=None)
        finally:
            await client.aclose()
        return answers, time.perf_counter() - started, lm, tracer, meter


def raced(lm: ScriptedLM, copies: int, cap: int = 6) -> int:
    """Re-sends the server saw: each stalled prompt ``copies`` more times, and within ``max_extra``'s cap.

    On a loaded machine a 20 ms reply may pass the percentile too and be raced as well, so
    the count is read off what the server saw rather than fixed.
    """
    sent = [r.prompt for r in lm.sub_requests]
    assert all(sent.count(prompt) == 1 + copies for prompt in SLOW), "each straggler re-sent"
    extra = len(sent) - 60
    assert len(SLOW) * copies <= extra <= cap
    return extra


async def test_stragglers_are_re_sent_and_the_first_reply_wins() -> None:
    answers, seconds, lm, tracer, meter = await run_batch(Hedge(percentile=0.9, max_extra=0.1, min_samples=10,
                                                                copies=1))
    assert answers == [f"ok item {i}" for i in range(60)]
    assert seconds < 1.5, f"the batch waited {seconds:.1f} s for its stragglers"
    extra = raced(lm, copies=1)
    hedges = [e for e in tracer.events if e.kind == "call.start" and e.data.get("hedge")]
    assert len(hedges) == extra and {str(e.data["prompt"]) for e in hedges} >= SLOW
    cancelled = [e for e in tracer.events if e.kind == "call.end" and e.data["status"] == "cancelled"]
    assert 2 <= len(cancelled) <= extra, "the losing requests are cancelled"
    assert meter.total.calls == 60 + extra and meter.total.hedged_calls == extra
    batch_end = next(e for e in tracer.events if e.kind == "batch.end")
    assert batch_end.data["hedged"] == 2 and batch_end.data["failed"] == 0


async def test_a_second_copy_goes_out_when_the_first_is_slow_too() -> None:
    """Both the request and its first copy stall; the second copy answers, and all four are counted."""
    answers, seconds, lm, tracer, meter = await run_batch(Hedge(percentile=0.9, max_extra=0.1, min_samples=10),
                                                          stalls=2)
    assert answers == [f"ok item {i}" for i in range(60)]
    assert seconds < 1.5, f"the batch waited {seconds:.1f} s for its stragglers"
    extra = raced(lm, copies=2)
    assert meter.total.hedged_calls == extra
    cancelled = [e for e in tracer.events if e.kind == "call.end" and e.data["status"] == "cancelled"]
    assert 4 <= len(cancelled) <= extra, "both stalled requests of each race are cancelled"
    _, slow, lm, _, _ = await run_batch(Hedge(percentile=0.9, max_extra=0.1, min_samples=10, copies=1), stalls=2)
    assert slow >= 2.0, "with one copy the batch waits for a stalled copy"
    raced(lm, copies=1)


async def test_without_hedging_the_stragglers_decide_the_batch() -> None:
    answers, seconds, lm, _, meter = await run_batch(None)
    assert answers == [f"ok item {i}" for i in range(60)]
    assert seconds >= 2.0 and lm.stats["sub"] == 60 and meter.total.hedged_calls == 0


async def test_extra_requests_stay_within_max_extra() -> None:
    _, _, lm, _, meter = await run_batch(Hedge(percentile=0.5, max_extra=0.02, min_samples=10))
    assert meter.total.hedged_calls == 1 and lm.stats["sub"] == 61  # floor(2 % of 60) rounds up to one


async def test_small_batches_are_never_hedged() -> None:
    _, seconds, lm, _, _ = await run_batch(Hedge(min_samples=50), n=45)
    assert lm.stats["sub"] == 45 and seconds >= 2.0


def test_rlm_hedge_through_a_completion_counts_both_requests_in_usage_and_budget() -> None:
    program = ("```repl\nanswers = llm_batch([f'item {i}' for i in range(60)], max_concurrent=8)\n"
               "FINAL_VAR('answers')\n```")
    with ScriptedLM(root=[program], latency=stalls_first_time(), sub=lambda r: "ok " + r.prompt) as lm:
        rlm = RLM("root", "sub", base_url=lm.base_url, api_key="k", sandbox="local", max_concurrent=8,
                  endpoint=Endpoint(hedge=Hedge(percentile=0.9, min_samples=10, copies=1)),
                  budget=Budget(max_calls=100))
        result = rlm.completion("ctx", "q", view=False)
        sent = [r.prompt for r in lm.sub_requests]
    assert result.answer == str([f"ok item {i}" for i in range(60)])
    # Both stalled prompts were raced; on a loaded machine a 20 ms reply may pass the 90th
    # percentile too and be raced as well, so the count is read off what the server saw.
    assert all(sent.count(prompt) == 2 for prompt in SLOW)
    hedged = len(sent) - 60
    assert 2 <= hedged <= 4  # max_extra: 8 % of 60 items
    assert result.usage.hedged_calls == hedged and result.usage.calls == 1 + len(sent)
    assert f"{hedged} hedged" in str(result.usage)
    assert result.budget is not None and result.budget.calls == 1 + len(sent)


@pytest.mark.parametrize("bad", [0.3, 1.0, "yes"])
def test_a_bad_percentile_says_what_fits(bad: object) -> None:
    with pytest.raises(ConfigError, match=r"Hedge.percentile must be in \[0.5, 1\)"):
        Hedge(percentile=bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("field", ["min_samples", "copies"])
def test_counts_of_a_hedge_are_ints_of_at_least_one(field: str) -> None:
    with pytest.raises(ConfigError, match=rf"Hedge.{field} must be an int >= 1"):
        Hedge(**{field: 0})  # type: ignore[arg-type]


def test_hedge_takes_true_false_or_a_hedge() -> None:
    with pytest.raises(ConfigError, match=r"hedge must be True, False or a rlm\.Hedge"):
        Endpoint(hedge="fast")  # type: ignore[arg-type]
    rlm = RLM("m", base_url="http://127.0.0.1:9/v1", api_key="k", endpoint=Endpoint(hedge=True))
    assert rlm.engine.hedge == Hedge()


async def test_cancelling_a_hedged_batch_cancels_both_requests_of_a_race() -> None:
    import asyncio

    def always_stalls(request: ScriptedRequest) -> float:
        return 30.0 if request.prompt in SLOW else 0.02

    with ScriptedLM(latency=always_stalls, sub=lambda r: "ok " + r.prompt) as lm:
        tracer = Tracer()
        client = FastClient(base_url=lm.base_url, api_key="k")
        dispatcher = Dispatcher(client, limiter=AdaptiveLimiter(8), tracer=tracer,
                                hedge=Hedge(percentile=0.9, min_samples=10, copies=1))
        running = asyncio.ensure_future(
            dispatcher.batch([f"item {i}" for i in range(60)], model="m", max_concurrent=8, parent=None))
        deadline = time.monotonic() + 10
        # Both requests of the two stalled items hang: the batch is waiting on two races.
        while lm.stats["sub"] < 62 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        assert lm.stats["sub"] == 62 and not running.done()
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(running, 5)
        await client.aclose()
    starts = {e.id for e in tracer.events if e.kind == "call.start"}
    ends = {e.id for e in tracer.events if e.kind == "call.end"}
    assert starts == ends, "a request of the race was left running"
