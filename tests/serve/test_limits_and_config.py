"""The admission limit, the configuration file, and what the server answers besides completions."""

from __future__ import annotations

import asyncio
import base64
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import openai
import pytest

from rlm import ConfigError
from rlm.serve.config import ModelRoute, ServeConfig, load_config, parse_route
from rlm.serve.errors import RequestError
from rlm.serve.limits import Admission
from rlm.serve.runs import Service
from rlm.testing import ScriptedLM

QUESTION = [{"role": "user", "content": "q"}]


async def until(check: Callable[[], bool], seconds: float = 10.0) -> None:
    """Let the loop run until ``check`` holds, failing after ``seconds``."""
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.001)


async def test_admission_queues_in_order_then_refuses_and_a_leaver_gives_its_place_up() -> None:
    admission = Admission(max_runs=1, max_queue=2, timeout_s=5)
    order: list[str] = []
    gate = asyncio.Event()

    async def run(name: str) -> None:
        async with admission.slot():
            order.append(name)
            await gate.wait()

    first = asyncio.ensure_future(run("a"))
    await until(lambda: admission.running == 1)
    waiting = [asyncio.ensure_future(run(n)) for n in ("b", "c")]
    await until(lambda: admission.waiting == 2)
    assert (admission.running, admission.waiting) == (1, 2)
    with pytest.raises(RequestError) as caught:
        await run("d")
    assert caught.value.status == 429 and caught.value.retry_after is not None
    waiting[0].cancel()  # b's client leaves while it waits
    await until(lambda: admission.waiting == 1)
    gate.set()
    await asyncio.gather(first, waiting[1])
    assert order == ["a", "c"] and (admission.running, admission.waiting) == (0, 0)


async def test_a_patient_waiter_is_outside_the_queue_limit_and_waits_past_the_timeout() -> None:
    admission = Admission(max_runs=1, max_queue=1, timeout_s=0.05)
    gate = asyncio.Event()
    order: list[str] = []

    async def run(name: str, patient: bool = False) -> None:
        async with admission.slot(patient=patient):
            order.append(name)
            await gate.wait()

    first = asyncio.ensure_future(run("a"))
    await until(lambda: admission.running == 1)
    patient = asyncio.ensure_future(run("map item", patient=True))
    await until(lambda: admission.waiting == 1)
    with pytest.raises(RequestError) as caught:  # the queue's one place is still free: it waits, then times out
        await run("b")
    assert "waited" in caught.value.message and not patient.done()
    gate.set()
    await asyncio.gather(first, patient)
    assert order == ["a", "map item"] and (admission.running, admission.waiting) == (0, 0)


async def test_admission_refuses_a_request_that_waited_too_long() -> None:
    admission = Admission(max_runs=1, max_queue=4, timeout_s=0.05)
    async with admission.slot():
        with pytest.raises(RequestError) as caught:
            async with admission.slot():
                pass
    assert caught.value.status == 429 and "waited" in caught.value.message
    assert (admission.running, admission.waiting, admission.rejected) == (0, 0, 1)


def test_a_config_file_and_the_environment(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    path = tmp_path / "serve.toml"
    path.write_text(f'[upstream]\nbase_url = "http://127.0.0.1:9/v1"\napi_key_env = "MY_KEY"\nmax_concurrent = 7\n'
                    f'[server]\nroots = ["{docs}"]\nmax_runs = 2\ntoken_env = "MY_TOKEN"\nhost = "0.0.0.0"\n'
                    '[limits]\nmax_cost_usd = 0.25\nmax_iterations = 5\n'
                    '[models."rlm/a"]\nroot = "gpt-5"\nsub = "gpt-5-mini"\n')
    config = load_config(path, {"MY_KEY": "sk-from-env-123456", "MY_TOKEN": "t" * 20})
    assert (config.base_url, config.upstream_concurrency, config.max_runs, config.max_iterations) == \
        ("http://127.0.0.1:9/v1", 7, 2, 5)
    assert config.budget.max_cost_usd == 0.25 and config.budget.max_time_s == 600
    assert config.roots == (str(docs.resolve()),)
    assert config.route("rlm/a") is not None and config.route("rlm/b") is None
    assert "sk-from-env" not in repr(config) and "t" * 20 not in repr(config)
    assert config.secrets == ("sk-from-env-123456", "t" * 20)
    for wrong in ("[server]\nmax_runz = 2", "[server]\nbase_url = 'http://x'", "[limits]\nmax_runs = 2"):
        path.write_text(wrong + '\n[models."rlm/a"]\nroot = "a"\n')
        with pytest.raises(ConfigError, match="unknown key"):
            load_config(path, {"OPENAI_API_KEY": "sk-test-key-1234"})
    path.write_text('[server\n')
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(path, {})


def test_model_specs() -> None:
    assert parse_route("gpt-5", "mini") == parse_route("rlm/gpt-5=gpt-5:mini", None)
    route = parse_route("fast=a:b", None)
    assert (route.name, route.root, route.sub) == ("fast", "a", "b")
    with pytest.raises(ConfigError, match="OPENAI_API_KEY"):
        load_config(None, {}, any_root=True, sub_model="mini")
    any_model = load_config(None, {"OPENAI_API_KEY": "sk-test-key-1234"}, any_root=True, sub_model="mini")
    found = any_model.route("rlm/llama-70b")
    assert found is not None and (found.root, found.sub) == ("llama-70b", "mini")
    assert any_model.route("llama-70b") is None and any_model.route("rlm/") is None


def test_uploaded_files_are_the_context_with_their_names(start) -> None:
    root = ["```repl\nprint(type(context).__name__, sorted(context) if isinstance(context, dict) else context)\n```",
            "FINAL(read)"]
    with ScriptedLM(root=list(root)) as upstream:
        running = start(upstream)
        client = openai.OpenAI(base_url=running.base_url, api_key="unused", max_retries=0)
        data = base64.b64encode(b"line one\nline two\n").decode()
        one = [{"role": "user", "content": [
            {"type": "file", "file": {"filename": "notes.txt", "file_data": f"data:text/plain;base64,{data}"}},
            {"type": "text", "text": "What is in it?"}]}]
        client.chat.completions.create(model="rlm/root", messages=one)
        first = upstream.root_requests[0].messages[-1]["content"]
        assert "'notes.txt'" in first and "line one" in first
        upstream.root = list(root)
        two = [{"role": "user", "content": "earlier turn"}, {"role": "user", "content": [
            {"type": "file", "file": {"filename": "a.txt", "file_data": data}},
            {"type": "file", "file": {"filename": "../../a.txt", "file_data": data}},
            {"type": "text", "text": "Compare them."}]}]
        client.chat.completions.create(model="rlm/root", messages=two)
        printed = upstream.root_requests[-1].messages[-1]["content"]
        assert "dict ['_.._a.txt', 'a.txt', 'conversation.md']" in printed
        assert "'uploaded files'" in upstream.root_requests[-1].messages[1]["content"]


def test_health_metrics_and_traces(start, tmp_path: Path) -> None:
    with ScriptedLM(root=lambda r: "FINAL(x)") as upstream:
        running = start(upstream, token="a-token-that-is-long-enough")
        assert httpx.get(f"{running.url}/health").json() == {"status": "ok"}
        assert httpx.get(f"{running.url}/metrics").status_code == 401
        auth = {"Authorization": "Bearer a-token-that-is-long-enough"}
        reply = httpx.post(f"{running.base_url}/chat/completions", headers=auth,
                           json={"model": "rlm/root", "messages": QUESTION}).json()
        trace = httpx.get(f"{running.url}{reply['rlm']['trace']}", headers=auth)
        assert trace.status_code == 200 and '"run.end"' in trace.text
        for bad in ("..%2Fserve.toml", "x.txt", "nope.jsonl"):
            assert httpx.get(f"{running.base_url}/traces/{bad}", headers=auth).status_code == 404
        (tmp_path / "outside.jsonl").write_text("secret")
        (running.service.trace_dir / "link.jsonl").symlink_to(tmp_path / "outside.jsonl")
        assert httpx.get(f"{running.base_url}/traces/link.jsonl", headers=auth).status_code == 404
        metrics = httpx.get(f"{running.url}/metrics", headers=auth).text
        assert 'rlm_serve_requests_total{path="/v1/chat/completions",status="200"} 1' in metrics
        assert 'rlm_serve_runs_total{outcome="final"} 1' in metrics
        assert "rlm_serve_model_calls_total 1" in metrics


def test_stopping_lets_a_request_in_flight_finish(start) -> None:
    with ScriptedLM(root=lambda r: "FINAL(finished)", latency=1.0) as upstream:
        running = start(upstream)
        replies: list[httpx.Response] = []
        worker = threading.Thread(target=lambda: replies.append(httpx.post(
            f"{running.base_url}/chat/completions", json={"model": "rlm/root", "messages": QUESTION}, timeout=30)))
        worker.start()
        deadline = time.monotonic() + 10
        while upstream.stats["in_flight"] == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        running.stop()  # as SIGTERM does: stop listening, let what runs finish (grace: 5 s here)
        worker.join(30)
        assert replies[0].status_code == 200 and replies[0].json()["choices"][0]["message"]["content"] == "finished"
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{running.url}/health")


def test_the_documented_config_file_loads(tmp_path: Path) -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "serve.md").read_text()
    example = doc.split("```toml\n", 1)[1].split("```", 1)[0]
    docs_root = tmp_path / "documents"
    docs_root.mkdir()
    path = tmp_path / "serve.toml"
    path.write_text(example.replace("/srv/documents", str(docs_root)))
    config = load_config(path, {"OPENAI_API_KEY": "sk-test-key-1234", "RLM_SERVE_TOKEN": "x" * 32})
    assert [m.name for m in config.models] == ["rlm/gpt-5", "rlm/local"]
    assert config.budget.max_cost_usd == 0.5 and config.upstream_concurrency == 32


def test_every_route_shares_one_limiter_kernel_pool_and_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    import rlm.engine

    pools: list[object] = []

    class CountedPool(rlm.engine.KernelPool):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, **kwargs)
            pools.append(self)

    monkeypatch.setattr(rlm.engine, "KernelPool", CountedPool)
    with ScriptedLM() as upstream:
        config = ServeConfig(models=(ModelRoute("rlm/a", "a", "a-mini"), ModelRoute("rlm/b", "b", "b-mini")),
                             base_url=upstream.base_url, api_key="sk-test-key-1234", cache=False, trace_dir=None)
        service = Service(config)
        a, b = (service.rlm(route) for route in config.models)
        assert len(pools) == 1  # no pool made for a route only to be thrown away
        assert a.limiter is b.limiter and a.kernels is b.kernels is pools[0] and a.engine.cache is b.engine.cache
        assert (a.settings.model, a.settings.sub_model, b.settings.model, b.settings.sub_model) == \
            ("a", "a-mini", "b", "b-mini")
        asyncio.run(service.aclose())
