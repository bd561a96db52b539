"""The engine under the facade: one settings value, one run lifecycle, engines rebuilt from settings alone."""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import pickle
import time
from pathlib import Path

import pytest

from rlm import (
    RLM,
    Budget,
    Cancelled,
    ConfigError,
    Endpoint,
    Hedge,
    Limits,
    MapResult,
    ModelInfo,
    RLMResult,
    Settings,
    UsageReport,
    runtime,
)
from rlm.core.prompts import SYSTEM_PROMPT
from rlm.core.result import Origin
from rlm.datasets.maps import run_map
from rlm.datasets.ray_executor import SharedLimit, WorkerSpec
from rlm.runtime import RunControl
from rlm.testing import ScriptedLM
from rlm.trace.trace import Trace


def a_tool(x: int) -> int:
    """Doubles x."""
    return 2 * x


def a_listener(progress: object) -> None:
    """A progress callable that pickles (by reference)."""


def every_setting(tmp_path: Path) -> RLM:
    """An RLM with every option away from its default."""
    return RLM(
        "root", "sub", base_url="http://127.0.0.1:9/v1", api_key="k", sandbox="local", max_concurrent=3,
        max_iterations=7, max_depth=2, budget=Budget(max_calls=99), progress=a_listener, log_dir=tmp_path / "logs",
        limits=Limits(max_output_chars=1234, step_timeout=9.0, max_children=2, max_descendants=5,
                      prompt=SYSTEM_PROMPT + "\nAnswer in one line."),
        endpoint=Endpoint(timeout=7.0, retries=2, transport="fast", rpm=600, tpm=60_000,
                          call_options={"temperature": 0.1}, pricing={"root": ModelInfo(context_window=9000)},
                          models=("extra",), stream=False, cache=tmp_path / "cache", hedge=Hedge(percentile=0.8)),
        tools=[a_tool],
    )


def test_rlm_takes_at_most_fourteen_parameters_and_its_defaults_are_the_settings() -> None:
    parameters = inspect.signature(RLM).parameters
    assert len(parameters) <= 14
    assert set(parameters) == {f.name for f in dataclasses.fields(Settings)}
    defaults = Settings()
    for name, parameter in parameters.items():
        if parameter.default is not None:
            assert parameter.default == getattr(defaults, name), name
    assert RLM(api_key="k").settings == dataclasses.replace(defaults, api_key="k")


def test_the_settings_pickle_whole_and_a_worker_builds_the_same_engine_from_them(tmp_path: Path) -> None:
    driver = every_setting(tmp_path)
    defaults = Settings()
    for field in dataclasses.fields(Settings):
        assert getattr(driver.settings, field.name) != getattr(defaults, field.name), f"{field.name} is a default"
    spec = pickle.loads(pickle.dumps(WorkerSpec(driver.settings, driver.pricing, None)))
    assert spec.settings == driver.settings
    worker = spec.engine()
    try:
        assert worker.hedge == driver.engine.hedge == Hedge(percentile=0.8)
        assert worker.cache is not None and driver.engine.cache is not None
        assert worker.cache.path == driver.engine.cache.path
        assert worker.budget == driver.engine.budget and worker.retry == driver.engine.retry
        assert worker.limiter.max_concurrent == 3 and worker.pricing.context_window("root") == 9000
        assert not worker.observed and driver.engine.observed  # no progress line or log of its own on a worker
        assert worker.settings.prompt == driver.settings.prompt == SYSTEM_PROMPT + "\nAnswer in one line."
    finally:
        worker.close()
        driver.close()


def test_a_sibling_shares_what_its_engine_built_and_has_settings_and_subscribers_of_its_own() -> None:
    first = RLM("a", "a-mini", api_key="k", sandbox="local", budget=Budget(max_calls=5),
                endpoint=Endpoint(cache=False, hedge=True, pricing={"b": ModelInfo(input_per_mtok=1.0,
                                                                                   output_per_mtok=2.0)}))
    first.subscribers.append(print)
    second = first.sibling("b")
    one, two = first.engine, second.engine
    shared = ("client", "sub_client", "limiter", "kernels", "cache", "hedge", "pricing", "retry")
    assert all(getattr(one, name) is getattr(two, name) for name in shared)
    assert (second.settings.model, second.settings.sub_model) == ("b", "b")
    assert second.settings == dataclasses.replace(first.settings, model="b", sub_model="b")
    assert first.subscribers == [print] and second.subscribers == []
    with pytest.raises(ConfigError, match="needs a price for model 'c'"):  # a dollar budget, checked again
        RLM("b", api_key="k", sandbox="local", budget=Budget(max_cost_usd=1.0),
            endpoint=Endpoint(pricing={"b": ModelInfo(input_per_mtok=1.0, output_per_mtok=2.0)})).sibling("c")


def test_a_run_with_no_endpoint_says_what_to_set_before_anything_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    rlm = RLM("gpt-5")  # builds, and can estimate
    assert rlm.estimate("some text", "q").tokens > 0
    with pytest.raises(ConfigError, match="OPENAI_API_KEY"):
        rlm.completion("some text", "q")
    assert rlm.kernels is not None and rlm.kernels.started == 0  # no kernel was started for it
    with pytest.raises(ConfigError, match="OPENAI_API_KEY"):
        rlm.map(["p"])


def test_a_pickled_result_leaves_its_origin_behind() -> None:
    engine = RLM(api_key="k", sandbox="local").engine
    result = RLMResult("a", 1, UsageReport(), (), Trace(()), text="a", origin=Origin(engine, "c"))
    again = pickle.loads(pickle.dumps(result))
    assert again == result and again.origin is None and result.origin is not None


async def test_the_clusters_limit_holds_tokens_per_minute() -> None:
    limit = SharedLimit(4, rpm=None, tpm=60, max_pause=10.0)  # a token a second, a burst of one
    first = await limit.acquire(0.5)
    second = asyncio.ensure_future(limit.acquire(1.0))
    await asyncio.sleep(0.1)
    assert not second.done(), "the second request started before its tokens were there"
    await limit.release(first, 0.5)
    started = time.monotonic()
    await asyncio.wait_for(second, 5.0)
    assert time.monotonic() - started < 5.0


def test_stop_ends_a_map_with_cancelled_and_keeps_what_it_did() -> None:
    with ScriptedLM(sub=lambda r: r.prompt.upper(), latency=lambda r: 0.0 if r.prompt < "p10" else 30.0) as lm:
        engine = RLM("m", base_url=lm.base_url, api_key="k", sandbox="local").engine
        control = RunControl()
        prompts = [f"p{i:02d}" for i in range(20)]
        future = runtime.submit(run_map(engine, prompts, checkpoint=None, max_concurrent=4, model=None,
                                        subscribers=[], control=control))
        deadline = time.monotonic() + 20
        while lm.stats["sub"] < 14 and time.monotonic() < deadline:  # the ten quick ones and four stuck
            time.sleep(0.02)
        assert lm.stats["sub"] >= 14
        control.stop()
        with pytest.raises(Cancelled) as stopped:
            future.result(timeout=20)
    partial = stopped.value.partial
    assert isinstance(partial, MapResult) and partial is control.partial
    assert partial[:10] == [p.upper() for p in prompts[:10]] and partial[10:] == [None] * 10
