"""Sub-calls with images through both transports (the openai SDK and rlm's aiohttp client) against
ScriptedLM on 127.0.0.1: the request's content parts, the budget, the cache, refusals, the trace."""

from __future__ import annotations

import asyncio
import base64
import json
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from rlm import Budget, BudgetExceeded, Cache, ImagesRefused, LMResponseError
from rlm.lm.budget import BudgetLedger
from rlm.lm.client import OpenAIClient
from rlm.lm.dispatcher import Dispatcher
from rlm.lm.limiter import AdaptiveLimiter
from rlm.lm.pricing import Pricing
from rlm.lm.record import prompt_hash
from rlm.lm.retry import RetryPolicy
from rlm.lm.transport import FastClient
from rlm.lm.vision import THUMB_BYTES, THUMBS_TOTAL, checked, image_tokens, user_message
from rlm.testing import Fault, ScriptedLM
from rlm.testing.images import jpeg, png
from rlm.trace.events import Tracer

TRANSPORTS = {"openai": OpenAIClient, "fast": FastClient}


def seen(request: Any) -> str:
    """A sub-model that says what it was sent: how many images, their formats and sizes."""
    return f"{len(request.images)} images: " + ", ".join(f"{i.format} {i.width}x{i.height}" for i in request.images)


def run(lm: ScriptedLM, transport: str, body: Callable[[Dispatcher], Awaitable[Any]], **kwargs: Any) -> Any:
    async def go() -> Any:
        client = TRANSPORTS[transport](base_url=lm.base_url, api_key="k")
        kwargs.setdefault("tracer", Tracer())
        kwargs.setdefault("retry", RetryPolicy(max_attempts=1))
        try:
            return await body(Dispatcher(client, limiter=AdaptiveLimiter(16), **kwargs))
        finally:
            await client.aclose()

    return asyncio.run(go())


@pytest.fixture(params=sorted(TRANSPORTS))
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_images_reach_the_request_as_image_url_parts_with_base64_data_urls(transport: str) -> None:
    pictures = [png(1024, 1024), jpeg(300, 200)]
    with ScriptedLM(sub=seen) as lm:
        answer = run(lm, transport, lambda d: d.query("what is this?", model="gpt-4o", parent=None,
                                                       images=checked(pictures), detail="low"))
        assert answer == "2 images: png 1024x1024, jpeg 300x200"
        (request,) = lm.requests
    content = request.messages[0]["content"]
    assert content[0] == {"type": "text", "text": "what is this?"}
    assert [p["type"] for p in content] == ["text", "image_url", "image_url"]
    urls = [p["image_url"]["url"] for p in content[1:]]
    assert [base64.b64decode(u.split(",", 1)[1]) for u in urls] == pictures
    assert urls[0].startswith("data:image/png;base64,") and urls[1].startswith("data:image/jpeg;base64,")
    assert {p["image_url"]["detail"] for p in content[1:]} == {"low"}
    assert [i.tokens for i in request.images] == [85, 85]


def test_without_detail_none_is_sent_and_a_text_call_stays_a_plain_string(transport: str) -> None:
    with ScriptedLM(sub=seen) as lm:
        run(lm, transport, lambda d: d.query("look", model="gpt-4o", parent=None, images=checked([png()])))
        run(lm, transport, lambda d: d.query("no images", model="gpt-4o", parent=None))
        with_image, plain = lm.requests
    assert "detail" not in with_image.messages[0]["content"][1]["image_url"]
    assert plain.messages[0]["content"] == "no images"


def test_the_budget_reserves_image_tokens_before_the_call_is_sent(transport: str) -> None:
    big = checked([png(2048, 2048)])  # 765 tokens on gpt-4o: 4 tiles after scaling to 768x768
    assert image_tokens(2048, 2048, model="gpt-4o") == 765
    budget = Budget(max_tokens=600, output_tokens_per_call=50)
    with ScriptedLM(sub=seen) as lm:
        def ledger() -> BudgetLedger:
            return BudgetLedger(budget, Pricing())

        text_only = run(lm, transport, lambda d: d.query("look", model="gpt-4o", parent=None), budget=ledger())
        assert not isinstance(text_only, Exception)
        refused = run(lm, transport, lambda d: d.query("look", model="gpt-4o", parent=None, images=big),
                      budget=ledger())
        assert isinstance(refused, BudgetExceeded) and refused.budget == "max_tokens"
        assert lm.stats["requests"] == 1  # the image call was never sent
        low = run(lm, transport, lambda d: d.query("look", model="gpt-4o", parent=None, images=big, detail="low"),
                  budget=ledger())
        assert low == "1 images: png 2048x2048"  # 85 tokens fit


def test_the_endpoints_usage_counts_the_images_and_settles_the_reservation(transport: str) -> None:
    ledger = BudgetLedger(Budget(max_tokens=100_000), Pricing())
    with ScriptedLM(sub=seen) as lm:
        run(lm, transport, lambda d: d.query("look", model="gpt-4o", parent=None,
                                             images=checked([png(1024, 1024)])), budget=ledger)
    report = ledger.report()
    assert report.calls == 1 and report.in_flight == 0
    assert 765 < report.tokens < 765 + 40  # the image, "look" and the reply, as the server reported them


def test_the_cache_keys_images_by_their_content(transport: str, tmp_path: Path) -> None:
    a, b = checked([png(rgb=(1, 2, 3))]), checked([png(rgb=(3, 2, 1))])
    with ScriptedLM(sub=seen) as lm:
        async def calls(d: Dispatcher) -> list[str | Exception]:
            return [await d.query("same prompt", model="gpt-4o", parent=None, images=i) for i in (a, a, b, [])]

        cache = Cache(tmp_path)
        answers = run(lm, transport, calls, cache=cache)
        assert lm.stats["requests"] == 3  # a once, then b, then the prompt alone
        assert answers[0] == answers[1] and answers[3] == "0 images: "
        run(lm, transport, calls, cache=Cache(tmp_path))
        assert lm.stats["requests"] == 3  # every one of them from disk the second time
    with sqlite3.connect(cache.path) as db:
        rows = db.execute("SELECT key, value FROM completions").fetchall()
    assert len(rows) == 3 and "base64" not in str(rows)


def test_a_model_that_refuses_images_is_a_typed_error_naming_it_and_is_not_retried(transport: str) -> None:
    with ScriptedLM(sub=seen, refuses_images={"text-only"}) as lm:
        refused = run(lm, transport, lambda d: d.query("look", model="text-only", parent=None,
                                                        images=checked([png()])), retry=RetryPolicy())
        assert isinstance(refused, ImagesRefused) and refused.status == 400 and refused.model == "text-only"
        assert "'text-only' refused the images" in str(refused) and "model=" in str(refused)
        assert lm.stats["requests"] == 1
        assert run(lm, transport, lambda d: d.query("text", model="text-only", parent=None)) == "0 images: "


def test_llama_cpps_500_for_images_is_typed_too_and_not_retried(transport: str) -> None:
    message = "image input is not supported - hint: if this is unexpected, you may need to provide the mmproj"
    with ScriptedLM(sub=seen) as lm:
        lm.fail(Fault.http(500, message))
        refused = run(lm, transport, lambda d: d.query("look", model="local", parent=None, images=checked([png()])),
                      retry=RetryPolicy(base_delay=0.01))
        assert isinstance(refused, ImagesRefused) and refused.status == 500
        assert lm.stats["requests"] == 1


def test_a_500_without_images_is_still_retried(transport: str) -> None:
    with ScriptedLM(sub=seen) as lm:
        lm.fail(Fault.http(500, "image input is not supported"), times=1)
        answer = run(lm, transport, lambda d: d.query("text", model="local", parent=None),
                     retry=RetryPolicy(base_delay=0.01))
        assert answer == "0 images: " and lm.stats["requests"] == 2


def test_a_batch_keeps_order_and_an_item_refused_before_sending_fails_alone(transport: str) -> None:
    entries: list[Any] = [checked([png(10, 10)]), ValueError("item 1: not an image"), [], checked([jpeg(7, 9)])]
    tracer = Tracer()
    with ScriptedLM(sub=seen, latency=(0.0, 0.05)) as lm:
        results = run(lm, transport, lambda d: d.batch(["a", "b", "c", "d"], model="gpt-4o", parent=None,
                                                       images=entries), tracer=tracer)
        assert lm.stats["requests"] == 3
    assert results[0] == "1 images: png 10x10" and results[2] == "0 images: " and results[3] == "1 images: jpeg 7x9"
    assert isinstance(results[1], ValueError)
    ends = [e for e in tracer.events if e.kind == "call.end"]
    assert sorted(e.data["status"] for e in ends) == ["error", "ok", "ok", "ok"]  # the refused item is in the trace
    (batch,) = [e for e in tracer.events if e.kind == "batch.start"]
    assert batch.data["images"] == 2 and batch.data["n"] == 4


def test_the_trace_says_how_many_images_their_sizes_and_hashes_and_carries_each_thumbnail_once(transport: str) -> None:
    small, large = png(640, 480, stripes=4), png(600, 600, noise=5)
    assert len(small) <= THUMB_BYTES < len(large)
    shown = checked([small, large])
    tracer = Tracer()
    with ScriptedLM(sub=seen) as lm:
        async def twice(d: Dispatcher) -> None:
            await d.query("first", model="gpt-4o", parent=None, images=shown)
            await d.query("again", model="gpt-4o", parent=None, images=shown[:1])

        run(lm, transport, twice, tracer=tracer)
    first, again = [e.data for e in tracer.events if e.kind == "call.start"]
    meta = first["images"]
    assert [(m["format"], m["width"], m["height"], m["bytes"]) for m in meta] == [
        ("png", 640, 480, len(small)), ("png", 600, 600, len(large))]
    assert meta[0]["sha256"] == shown[0].sha256[:16] and meta[0]["tokens"] == image_tokens(640, 480, model="gpt-4o")
    assert meta[0]["thumb"] == shown[0].data_url and "thumb" not in meta[1]  # too big to carry
    assert "thumb" not in again["images"][0]  # carried once per run
    assert first["prompt"] == "first" and first["prompt_chars"] == 5
    assert len(json.dumps([e.to_dict() for e in tracer.events])) < len(small) * 2


def test_thumbnails_in_one_run_stop_at_their_total(transport: str) -> None:
    pictures = [png(120, 120, noise=seed) for seed in range(80)]  # ~43 KB each, 3.4 MB in all
    tracer = Tracer()
    with ScriptedLM(sub=seen) as lm:
        run(lm, transport, lambda d: d.batch(["x"] * 80, model="gpt-4o", parent=None,
                                             images=[checked([p]) for p in pictures]), tracer=tracer)
    carried = sum(len(base64.b64decode(m["thumb"].split(",", 1)[1]))
                  for e in tracer.events if e.kind == "call.start" for m in e.data["images"] if "thumb" in m)
    assert THUMBS_TOTAL - len(pictures[0]) < carried <= THUMBS_TOTAL


def test_replays_tell_calls_with_different_images_apart() -> None:
    a, b = checked([png(rgb=(1, 1, 1))]), checked([png(rgb=(2, 2, 2))])
    assert prompt_hash([user_message("p", a, None)]) != prompt_hash([user_message("p", b, None)])
    assert prompt_hash([user_message("p", a, None)]) == prompt_hash([user_message("p", a, None)])
    assert prompt_hash([{"role": "user", "content": "p"}]) == prompt_hash([user_message("p", [], None)])


def test_scripted_lm_refuses_a_malformed_image_as_openai_does() -> None:
    with ScriptedLM() as lm:
        async def send() -> Any:
            client = OpenAIClient(base_url=lm.base_url, api_key="k")
            parts = [{"type": "text", "text": "x"},
                     {"type": "image_url", "image_url": {"url": "data:image/png;base64,aGVsbG8="}}]
            try:
                return await client.complete([{"role": "user", "content": parts}], model="gpt-4o")
            except LMResponseError as exc:
                return exc
            finally:
                await client.aclose()

        error = asyncio.run(send())
    assert isinstance(error, LMResponseError) and error.status == 400
    assert "unsupported image" in str(error) and not isinstance(error, ImagesRefused)
