"""``map_rlm(executor="ray")``: completions as Ray tasks on a local Ray, one call limit for all workers, resumable."""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rlm import RLM, Budget, Endpoint, FailedCall, Hedge, Limits, ModelInfo, RLMResult, Settings, WorkerError
from rlm.core.prompts import SYSTEM_PROMPT
from rlm.datasets.ray_executor import WorkerSpec
from rlm.testing import ScriptedLM

pytestmark = pytest.mark.slow  # starting a local Ray takes 10-30 s
ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'rlm[ray]'); the Ray executor is untested")

REPO = Path(__file__).resolve().parents[1]
#: Root code that asks one sub-call about its context and answers with it and the worker's process id.
REPLY = "```repl\nimport os\nFINAL(llm_query('label: ' + context) + '|' + str(os.getpid()))\n```"


def warm() -> int:
    """Import rlm on a worker, so a test's tasks do not wait for a worker to start and import it."""
    import rlm.datasets.ray_executor  # noqa: F401

    return os.getpid()


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    path = os.pathsep.join([str(REPO), str(REPO / "tests"), os.environ.get("PYTHONPATH", "")])
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=80 * 1024 * 1024, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": path}})
    started, deadline = set(), time.monotonic() + 120
    while len(started) < 2 and time.monotonic() < deadline:  # until both workers have imported rlm
        started |= set(ray.get([ray.remote(warm).remote() for _ in range(2)], timeout=120))
    assert len(started) == 2, "a second Ray worker never started"
    yield
    ray.shutdown()


def root(request: object) -> str:
    prompt = getattr(request, "prompt", "")
    if "poison" in prompt:
        raise RuntimeError("the scripted root refuses this context")
    if "crash" in prompt:  # the local sandbox runs root code in the worker's process: this kills it
        return "```repl\nimport os\nos._exit(3)\n```"
    return REPLY


def make(lm: ScriptedLM, max_concurrent: int) -> RLM:
    return RLM("root", "sub", base_url=lm.base_url, api_key="k", sandbox="local", max_concurrent=max_concurrent,
               endpoint=Endpoint(retries=0))


def test_completions_run_as_ray_tasks_under_one_limit_and_resume(local_ray: None, tmp_path: Path) -> None:
    contexts = [f"doc {i}" for i in range(8)]
    store = tmp_path / "ray.sqlite"
    with ScriptedLM(root=root, sub=lambda r: r.prompt.upper(), latency=0.2) as lm:
        results = make(lm, max_concurrent=1).map_rlm(contexts, "label it", checkpoint=store, max_concurrent=2,
                                                      executor="ray")
        served = lm.stats
        again = make(lm, max_concurrent=1).map_rlm(contexts, "label it", checkpoint=store, executor="ray")
        locally = make(lm, max_concurrent=1).map_rlm(contexts, "label it", checkpoint=store)
        assert lm.stats["requests"] == served["requests"]  # both reruns answered everything from the checkpoint
    assert all(isinstance(r, RLMResult) for r in results)
    answers = [str(r.answer).split("|") for r in results]
    assert [a for a, _ in answers] == [f"LABEL: DOC {i}" for i in range(8)]
    assert len({pid for _, pid in answers} - {str(os.getpid())}) == 2  # two worker processes, not this one
    assert served["requests"] == 16 and results.usage.calls == 16  # a root call and a sub-call per context
    assert served["max_in_flight"] == 1  # two workers at once, one call slot between them: the shared limit held
    assert again.resumed == 8 and locally.resumed == 8 and [r.answer for r in again] == [r.answer for r in results]
    runs = [e for e in results.trace if e.kind == "run.start"]
    assert len(runs) == 9 and all(e.parent is not None for e in runs[1:])  # the workers' runs, under the map's


def test_a_failed_completion_or_a_dead_worker_is_a_failed_call_and_the_others_are_kept(local_ray: None) -> None:
    with ScriptedLM(root=root, sub=lambda r: "ok") as lm:
        results = make(lm, max_concurrent=4).map_rlm(["a", "poison", "b", "crash"], "label it", executor="ray")
    assert isinstance(results[1], FailedCall) and "refuses this context" in results[1]
    assert isinstance(results[3], FailedCall) and isinstance(results[3].error, WorkerError)
    assert [str(results[0].answer).split("|")[0], str(results[2].answer).split("|")[0]] == ["ok", "ok"]


def a_tool(x: int) -> int:
    """Doubles x."""
    return 2 * x


def a_listener(progress: object) -> None:
    """A progress callable that pickles (by reference)."""


def received_on_a_worker(spec: WorkerSpec) -> tuple[Settings, dict[str, object]]:
    """What a Ray worker gets and builds: the settings as received, and what its engine made of them."""
    engine = spec.engine()
    try:
        return spec.settings, {"hedge": engine.hedge, "cache": engine.cache.path if engine.cache is not None else None,
                               "max_concurrent": engine.limiter.max_concurrent, "budget": engine.budget,
                               "window": engine.pricing.context_window("root")}
    finally:
        engine.close()


def test_a_worker_receives_every_setting_of_the_driver(local_ray: None, tmp_path: Path) -> None:
    driver = RLM(
        "root", "sub", base_url="http://127.0.0.1:9/v1", api_key="k", sandbox="local", max_concurrent=3,
        max_iterations=7, max_depth=2, budget=Budget(max_calls=99), progress=a_listener, log_dir=tmp_path / "logs",
        limits=Limits(max_output_chars=1234, step_timeout=9.0, max_children=2, max_descendants=5,
                      prompt=SYSTEM_PROMPT + "\nAnswer in one line."),
        endpoint=Endpoint(timeout=7.0, retries=2, transport="fast", rpm=600, tpm=60_000,
                          call_options={"temperature": 0.1}, pricing={"root": ModelInfo(context_window=9000)},
                          models=("extra",), stream=False, cache=tmp_path / "cache", hedge=Hedge(percentile=0.8)),
        tools=[a_tool],
    )
    defaults = Settings()
    received, built = ray.get(ray.remote(received_on_a_worker).remote(
        WorkerSpec(driver.settings, driver.pricing, None)), timeout=120)
    for field in dataclasses.fields(Settings):
        sent = getattr(driver.settings, field.name)
        assert sent != getattr(defaults, field.name), f"{field.name} is left at its default: the test proves nothing"
        assert getattr(received, field.name) == sent, field.name
    assert built == {"hedge": Hedge(percentile=0.8), "cache": tmp_path / "cache" / "completions.sqlite3",
                     "max_concurrent": 3, "budget": Budget(max_calls=99), "window": 9000}
    driver.close()
