"""The one limiter per RLM: a concurrency cap that adapts to 429s, RPM/TPM caps, no deadlocks."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from rlm import RLM, ConfigError, Endpoint, FailedCall, LMRateLimited, LMResponseError
from rlm.lm.dispatcher import Dispatcher
from rlm.lm.limiter import AdaptiveLimiter
from rlm.lm.retry import RetryPolicy
from rlm.lm.transport import FastClient
from rlm.testing import Fault, ScriptedLM, ScriptedRequest
from rlm.trace.events import Tracer


async def _hold(limiter: AdaptiveLimiter, seen: list[int], order: list[int] | None = None, i: int = 0) -> None:
    async with limiter.slot():
        if order is not None:
            order.append(i)
        seen.append(limiter.in_flight)
        await asyncio.sleep(0.001)



async def until(done: Callable[[], bool], timeout: float = 5.0) -> None:
    """Let the loop run until ``done()`` holds, or fail at the deadline (never a fixed sleep, then a look)."""
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "the condition did not hold within the deadline"
        await asyncio.sleep(0.001)

async def test_never_more_in_flight_than_the_limit() -> None:
    limiter = AdaptiveLimiter(5)
    seen: list[int] = []
    await asyncio.gather(*(_hold(limiter, seen) for _ in range(60)))
    assert len(seen) == 60 and max(seen) == 5
    assert limiter.in_flight == 0 and limiter.stats["peak_in_flight"] == 5


async def test_waiters_are_served_in_arrival_order() -> None:
    limiter = AdaptiveLimiter(1)
    order: list[int] = []
    await asyncio.gather(*(_hold(limiter, [], order, i) for i in range(20)))
    assert order == list(range(20))


async def test_cancelled_waiters_and_holders_give_their_slots_back() -> None:
    limiter = AdaptiveLimiter(2)
    gate = asyncio.Event()

    async def holder() -> None:
        async with limiter.slot():
            await gate.wait()

    holders = [asyncio.create_task(holder()) for _ in range(2)]
    waiters = [asyncio.create_task(holder()) for _ in range(5)]
    await until(lambda: limiter.in_flight == 2 and limiter.waiting == 5)
    for task in waiters[:3] + holders[:1]:
        task.cancel()
    await until(lambda: all(t.done() for t in waiters[:3] + holders[:1]))
    assert limiter.in_flight == 2 and limiter.waiting == 1  # a cancelled holder's slot went to a waiter
    gate.set()
    await asyncio.gather(*holders, *waiters, return_exceptions=True)
    assert limiter.in_flight == 0 and limiter.waiting == 0
    async with limiter.slot():
        assert limiter.in_flight == 1


async def _finish(limiter: AdaptiveLimiter, error: Exception | None) -> None:
    """One call through the limiter that ends with ``error`` (or succeeds)."""
    slot = limiter.slot()
    await slot.__aenter__()
    await slot.__aexit__(type(error) if error else None, error, None)


async def test_429s_cut_the_limit_once_per_round_and_successes_grow_it_back() -> None:
    limiter = AdaptiveLimiter(40, decrease=0.75)
    slots = [limiter.slot() for _ in range(40)]
    for slot in slots:
        await slot.__aenter__()
    # 30 calls sent together all come back 429: one cut, not thirty
    for slot in slots[:30]:
        await slot.__aexit__(LMRateLimited, LMRateLimited("429"), None)
    assert limiter.limit == 30 and limiter.stats["cuts"] == 1 and limiter.stats["rate_limited"] == 30
    for slot in slots[30:]:
        await slot.__aexit__(None, None, None)
    # a call sent after the cut can cut again
    await _finish(limiter, LMRateLimited("429"))
    assert limiter.limit == 22 and limiter.stats["cuts"] == 2  # (30 + 10 * 1/30) * 0.75
    for _ in range(200):
        await _finish(limiter, None)
    assert 22 < limiter.limit < 40
    for _ in range(2000):
        await _finish(limiter, None)
    assert limiter.limit == 40  # never above the configured cap


async def test_other_errors_do_not_cut_and_the_floor_holds() -> None:
    limiter = AdaptiveLimiter(4, min_concurrent=2)
    await _finish(limiter, LMResponseError("500", status=500))
    assert limiter.limit == 4
    for _ in range(10):
        await _finish(limiter, LMRateLimited("429"))
    assert limiter.limit == 2


async def test_non_adaptive_limiter_keeps_its_limit() -> None:
    limiter = AdaptiveLimiter(4, adaptive=False)
    await _finish(limiter, LMRateLimited("429"))
    assert limiter.limit == 4


async def test_requests_per_minute_cap_spaces_out_starts() -> None:
    limiter = AdaptiveLimiter(50, rpm=600)  # 10 a second, a burst of 10
    started = time.monotonic()
    stamps: list[float] = []

    async def one() -> None:
        async with limiter.slot():
            stamps.append(time.monotonic() - started)

    await asyncio.gather(*(one() for _ in range(15)))
    stamps.sort()
    assert len(stamps) == 15
    assert stamps[-1] >= 0.45  # the 5 beyond the burst waited for the bucket to refill


async def test_tokens_per_minute_cap_charges_real_usage() -> None:
    limiter = AdaptiveLimiter(50, tpm=6000)  # 100 tokens a second
    started = time.monotonic()
    async with limiter.slot(tokens=50) as slot:
        slot.used(300)  # the call turned out bigger than estimated: 200 tokens of debt
    async with limiter.slot(tokens=50):
        waited = time.monotonic() - started
    assert waited >= 2.0


async def test_a_pause_longer_than_max_pause_is_not_taken() -> None:
    limiter = AdaptiveLimiter(4, max_pause=1.0)
    assert limiter.pause(5.0) is False and limiter.paused_for == 0.0
    assert limiter.stats["pauses_refused"] == 1
    assert limiter.pause(0.3) is True and 0.2 < limiter.paused_for <= 0.3


def test_limiter_settings_are_validated() -> None:
    rlm = RLM("m", base_url="http://127.0.0.1:9/v1", api_key="k", sandbox="local",
            endpoint=Endpoint(retries=RetryPolicy(max_server_delay=7)))
    assert rlm.limiter.max_pause == 7  # the limiter waits no longer than the retry policy would
    bad_settings = (
        {"max_concurrent": 0}, {"max_concurrent": 4, "min_concurrent": 5}, {"max_concurrent": 4, "rpm": 0},
        {"max_concurrent": 4, "max_pause": -1},
    )
    for bad in bad_settings:
        with pytest.raises(ConfigError):
            AdaptiveLimiter(**bad)  # type: ignore[arg-type]


# ------------------------------------------------------------------ nested batches, real server


async def test_batches_inside_a_batch_stay_under_the_limit_without_deadlock() -> None:
    """Six concurrent batches of ten, each item itself a batch of three, through a limiter of 4."""
    with ScriptedLM(latency=0.01, sub=lambda r: r.prompt) as lm:
        client = FastClient(base_url=lm.base_url, api_key="k")
        dispatcher = Dispatcher(client, limiter=AdaptiveLimiter(4), tracer=Tracer(keep=False))

        async def item(prefix: str) -> str:
            inner = await dispatcher.batch(
                [f"{prefix}.{k}" for k in range(3)], model="m", max_concurrent=3, parent=None
            )
            return "|".join(inner)

        async def outer(b: int) -> list[str]:
            return list(await asyncio.gather(*(item(f"{b}.{i}") for i in range(10))))

        results = await asyncio.wait_for(asyncio.gather(*(outer(b) for b in range(6))), timeout=60)
        await client.aclose()
        assert results[5][9] == "5.9.0|5.9.1|5.9.2"
        assert lm.stats["sub"] == 180 and lm.stats["max_in_flight"] <= 4


async def test_a_big_batch_keeps_only_max_concurrent_tasks_alive() -> None:
    """A 300-item batch at max_concurrent=8 runs on 8 workers, not 300 waiting tasks (GC pressure)."""
    with ScriptedLM(latency=0.02, sub=lambda r: r.prompt) as lm:
        client = FastClient(base_url=lm.base_url, api_key="k")
        dispatcher = Dispatcher(client, limiter=AdaptiveLimiter(64), tracer=Tracer(keep=False))
        running = asyncio.ensure_future(
            dispatcher.batch([f"p{i}" for i in range(300)], model="m", max_concurrent=8, parent=None)
        )
        while lm.stats["sub"] < 20:
            await asyncio.sleep(0.005)
        # the batch's own tasks, whatever else the loop runs (a worker, or one task per item before)
        alive = [t.get_coro().__qualname__ for t in asyncio.all_tasks()]
        alive = [name for name in alive if name.startswith("Dispatcher.batch.")]
        results = await asyncio.wait_for(running, timeout=60)
        await client.aclose()
    assert results == [f"p{i}" for i in range(300)]  # input order
    assert len(alive) == 8, alive  # eight workers, not 300 waiting tasks
    assert lm.stats["max_in_flight"] == 8


NESTED_ROOT = """```repl
from concurrent.futures import ThreadPoolExecutor
words = context.split()
parts = [" ".join(words[i::6]) for i in range(6)]
with ThreadPoolExecutor(6) as pool:
    answers = list(pool.map(lambda p: rlm_query("count the words", p), parts))
```"""
CHILD_PROGRAM = """```repl
words = context.split()
r = llm_batch(["word " + w for w in words], max_concurrent=8)
FINAL(str(sum(1 for x in r if not isinstance(x, FailedCall))))
```"""


def _nested_root(request: ScriptedRequest) -> str:
    if request.body["model"] == "sub":  # a child run (children think with the sub-model)
        return CHILD_PROGRAM
    return NESTED_ROOT if len(request.messages) == 2 else "FINAL_VAR(answers)"


def test_rlm_query_children_batching_in_parallel_share_one_limit() -> None:
    """Six children at depth 2, each running an 8-wide batch, under RLM(max_concurrent=5)."""
    context = [f"w{i}" for i in range(48)]
    with ScriptedLM(root=_nested_root, sub=lambda r: "seen", latency=0.02) as lm:
        rlm = RLM("root", "sub", base_url=lm.base_url, api_key="k", max_depth=2, max_concurrent=5)
        result = rlm.completion(" ".join(context), "q")
        stats = lm.stats
    assert result.answer == str(["8"] * 6)
    assert stats["sub"] == 48 and stats["root"] == 2 + 6  # two root turns, one per child
    assert stats["max_in_flight"] <= 5
    assert rlm.limiter.in_flight == 0


@pytest.mark.parametrize("transport", ["openai", "fast"])
def test_a_small_429_storm_loses_nothing_and_the_limit_adapts(transport: str) -> None:
    program = "```repl\nr = llm_batch(['item %d' % i for i in range(60)], max_concurrent=24)\n```"
    with ScriptedLM(root=[program, "FINAL_VAR(r)"], sub=lambda r: r.prompt.upper(), latency=0.03) as lm:
        lm.admit(4, retry_after=0.05)
        rlm = RLM("root", "sub", base_url=lm.base_url, api_key="k", max_concurrent=24,
                endpoint=Endpoint(transport=transport, retries=RetryPolicy(max_attempts=20)))
        result = rlm.completion("ctx", "q")
        stats = lm.stats
    answers = eval(result.answer)
    assert answers == [f"ITEM {i}" for i in range(60)]
    assert not any(isinstance(a, FailedCall) for a in answers)
    assert stats["faults"].get("admit", 0) > 0 and rlm.limiter.stats["cuts"] >= 1
    assert rlm.limiter.stats["lowest_limit"] < 24


# ------------------------------------------------------------------ quota pause cap, rpm/tpm end to end


async def test_a_daily_quota_reset_is_not_waited_out(monkeypatch: pytest.MonkeyPatch) -> None:
    """remaining-requests 0 with reset "2h": each call fails at once, nothing pauses the run."""
    daily = {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "2h"}
    program = (
        "```repl\nr = llm_batch(['a', 'b', 'c'], max_concurrent=1)\nprint([type(x.error).__name__ for x in r])\n```"
    )
    with ScriptedLM(root=[program, "FINAL(ok)"]) as lm:
        lm.fail(Fault.rate_limit(headers=daily), when=lambda r: r.role == "sub")  # only these headers
        rlm = RLM("root", "sub", base_url=lm.base_url, api_key="k", sandbox="local")
        started = time.monotonic()
        result = await asyncio.wait_for(rlm.acompletion("ctx", "q"), timeout=20)  # uncapped, it waited 2 h
        elapsed = time.monotonic() - started
        stats = lm.stats
    assert result.answer == "ok"
    assert result.steps[0].outputs[0].stdout.strip() == "['LMRateLimited', 'LMRateLimited', 'LMRateLimited']"
    assert stats["sub"] == 3 and stats["root"] == 2  # one try each: 2h is past max_server_delay
    assert rlm.limiter.stats["pauses_refused"] == 3 and rlm.limiter.paused_for == 0.0
    assert elapsed < 15


def _stamped(stamps: list[float]) -> Callable[[ScriptedRequest], str]:
    """A sub script that records when each request reached the server."""
    def sub(request: ScriptedRequest) -> str:
        stamps.append(time.monotonic())
        return "ok"
    return sub


def _assert_paced(stamps: list[float], burst: float, per_s: float) -> None:
    """No window of t seconds holds more than a bucket allows (burst + per_s * t), give or take 2 for jitter."""
    stamps = sorted(stamps)
    for i in range(len(stamps)):
        for j in range(i, len(stamps)):
            n, t = j - i + 1, stamps[j] - stamps[i]
            assert n <= burst + per_s * t + 2, f"{n} requests in {t:.2f} s"


def test_rlm_rpm_cap_spreads_requests_at_the_server() -> None:
    stamps: list[float] = []
    program = "```repl\nr = llm_batch(['item %d' % i for i in range(25)], max_concurrent=25)\n```"
    with ScriptedLM(root=[program, "FINAL(done)"], sub=_stamped(stamps)) as lm:
        rlm = RLM("root", "sub", base_url=lm.base_url, api_key="k", sandbox="local", max_concurrent=32,
                endpoint=Endpoint(rpm=600))
        result = rlm.completion("ctx", "q")
        stats = lm.stats
    assert result.answer == "done" and stats["sub"] == 25 and stats["root"] == 2
    assert len(stamps) == 25
    # 600 rpm: a burst of 10 (the root call took one), then 10 a second: 16 more take 1.6 s
    assert 1.3 <= max(stamps) - min(stamps) < 10
    _assert_paced(stamps, burst=10, per_s=10)


def test_rlm_tpm_cap_spreads_requests_at_the_server() -> None:
    stamps: list[float] = []
    # each sub-call is ~100 tokens (400 characters), so 60k tpm (1000 a second) is ~10 calls a second
    program = "```repl\nr = llm_batch(['%03d' % i + 'x' * 397 for i in range(20)], max_concurrent=20)\n```"
    with ScriptedLM(root=[program, "FINAL(done)"], sub=_stamped(stamps)) as lm:
        rlm = RLM("root", "sub", base_url=lm.base_url, api_key="k", sandbox="local", max_concurrent=32,
                endpoint=Endpoint(tpm=60_000))
        result = rlm.completion("ctx", "q")
        stats = lm.stats
    assert result.answer == "done" and stats["sub"] == 20 and stats["root"] == 2
    assert len(stamps) == 20
    # 2000 tokens against a 1000-token burst: at least a second, more as the root call's tokens count too
    assert 0.8 <= max(stamps) - min(stamps) < 15
    _assert_paced(stamps, burst=10, per_s=10)
