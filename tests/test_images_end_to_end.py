"""Root code sends images to sub-calls, end to end: the REPL (in-process and in the kernel sandbox), the
bridge, the host's checks, the real openai client, ScriptedLM, the trace and the saved HTML record."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from typing import Any

import pytest

from rlm import RLM, Budget, BudgetExceeded, Endpoint
from rlm.testing import ScriptedLM
from rlm.testing.images import jpeg, png
from rlm.testing.simulated import simulated_sub

RED, GREY = png(64, 48), jpeg(40, 30)
PICTURES = f"""\
import base64
red = base64.b64decode({base64.b64encode(RED).decode()!r})
grey = base64.b64decode({base64.b64encode(GREY).decode()!r})
"""


def program(code: str) -> str:
    return f"```repl\n{PICTURES}{code}\n```"


def seen(request: Any) -> str:
    return f"{len(request.images)} images: " + ", ".join(f"{i.format} {i.width}x{i.height}" for i in request.images)


@pytest.fixture(params=["kernel", "local"])
def make_rlm(request: pytest.FixtureRequest) -> Callable[..., RLM]:
    def make(lm: ScriptedLM, **kwargs: Any) -> RLM:
        kwargs.setdefault("endpoint", Endpoint(retries=0))
        return RLM("root", "sub", base_url=lm.base_url, api_key="k", sandbox=request.param, **kwargs)

    return make


def output(result: Any) -> str:
    return "".join(o.stdout + (o.error or "") for step in result.steps for o in step.outputs)


@pytest.mark.parametrize("transport", ["auto", "openai"])  # sub-calls through rlm's aiohttp client, or the SDK
def test_llm_query_and_llm_batch_send_root_codes_images_and_a_bad_item_fails_alone(make_rlm, transport) -> None:
    code = """\
one = llm_query("What is in the picture?", images=[red], detail="low")
grey_url = "data:image/jpeg;base64," + base64.b64encode(grey).decode()
many = llm_batch(["first", "second", "third", "fourth"], images=[[red, grey], [b"not an image"], None, grey_url])
print(one)
print([type(m).__name__ for m in many], many[0], "|", many[2], "|", many[3])
print(many[1])
try:
    llm_query("x", images=["page.png"])
except ValueError as exc:
    print("refused:", exc)"""
    with ScriptedLM(root=[program(code), "FINAL(done)"], sub=seen) as lm:
        result = make_rlm(lm, endpoint=Endpoint(retries=0, transport=transport)).completion("ctx", "look")
        subs = lm.sub_requests
    out = output(result)
    assert "1 images: png 64x48" in out
    assert ("['str', 'FailedCall', 'str', 'str'] 2 images: png 64x48, jpeg 40x30 | 0 images:  | "
            "1 images: jpeg 40x30") in out
    assert "llm_batch(images=...) item 1: image 0: the bytes are not a PNG or JPEG image" in out
    assert "refused: llm_query(images=...): image 0: an image must be bytes or a data: URL, got a str 'page.png'" in out
    assert len(subs) == 4  # the bad item and the refused llm_query never reached the model
    sent = [base64.b64decode(p["image_url"]["url"].split(",", 1)[1])
            for r in subs for p in r.messages[0]["content"] if isinstance(p, dict) and p.get("type") == "image_url"]
    assert sorted(sent) == sorted([RED, RED, GREY, GREY])
    assert [i.detail for i in subs[0].images] == ["low"]
    sdk = [any(k.startswith("x-stainless") for k in r.headers) for r in subs]
    assert sdk == [transport == "openai"] * 4  # the SDK's telemetry headers: which client sent them


def test_the_trace_and_the_html_record_show_the_images(make_rlm) -> None:
    code = 'print(llm_query("describe", images=[red, grey]))\nprint(llm_query("again", images=[red]))'
    with ScriptedLM(root=[program(code), "FINAL(done)"], sub=seen) as lm:
        result = make_rlm(lm).completion("ctx", "q")
    starts = [e.data for e in result.trace if e.kind == "call.start" and e.data.get("images")]
    assert [[(m["format"], m["width"], m["height"], m["bytes"]) for m in d["images"]] for d in starts] == [
        [("png", 64, 48, len(RED)), ("jpeg", 40, 30, len(GREY))], [("png", 64, 48, len(RED))]]
    assert "thumb" in starts[0]["images"][0] and "thumb" not in starts[1]["images"][0]
    page = result.trace.to_html(standalone=True)
    red_url = "data:image/png;base64," + base64.b64encode(RED).decode()
    assert page.count(red_url) == 1  # a record shows each image once
    assert re.search(r'<img src="data:image/jpeg;base64,[^"]+" width="40" height="30"', page)
    assert "PNG · 64×48 px" in page and "2 images" in page


def test_a_sub_model_that_refuses_images_gives_failed_calls_naming_it(make_rlm) -> None:
    code = """\
r = llm_query("look", images=[red])
print(isinstance(r, FailedCall), r)
b = llm_batch(["a", "b"], images=[[red], [grey]])
print([isinstance(x, FailedCall) for x in b])
print(llm_query("text still works"))"""
    with ScriptedLM(root=[program(code), "FINAL(done)"], sub=seen, refuses_images={"sub"}) as lm:
        out = output(make_rlm(lm).completion("ctx", "q"))
    assert "True [rlm error] ImagesRefused: 'sub' refused the images" in out
    assert "Send images to a vision model" in out and "model=" in out
    assert "[True, True]" in out and "0 images: " in out


def test_the_budget_counts_image_tokens_in_a_run(make_rlm) -> None:
    big = png(2048, 2048)
    code = f"big = base64.b64decode({base64.b64encode(big).decode()!r})\nr = llm_query('look', images=[big])\nprint(r)"
    with ScriptedLM(root=[program(code), "FINAL(done)"], sub=seen) as lm:
        with pytest.raises(BudgetExceeded) as info:
            make_rlm(lm, budget=Budget(max_tokens=700, output_tokens_per_call=50)).completion("ctx", "q")
        assert lm.stats["sub"] == 0
    assert info.value.budget == "max_tokens"


def test_the_simulated_model_says_only_what_the_headers_say(make_rlm) -> None:
    code = 'print(llm_query("What does the chart show?", images=[red, grey]))'
    with ScriptedLM(root=[program(code), "FINAL(done)"], sub=simulated_sub) as lm:
        out = output(make_rlm(lm).completion("ctx", "q"))
    assert "I am a simulated model: I cannot see what the images show." in out
    assert f"Image 1: PNG, 64x48 pixels, {len(RED):,} bytes." in out and "Image 2: JPEG, 40x30 pixels" in out


FORGED = """\
import sys
bridge = sys.modules['_rlm_in_kernel']._runtime.bridge
for args in ({"prompt": "x", "images": ["not base64!"]},
             {"prompt": "x", "images": [base64.b64encode(b"GIF89a-pretending").decode()]},
             {"prompt": "x", "images": "one string"},
             {"prompt": "x", "images": [base64.b64encode(red).decode()], "detail": "ultra"}):
    try:
        print("answered:", bridge.call("llm_query", args))
    except Exception as exc:
        print(type(exc).__name__, "|", exc)
try:
    print(bridge.call("llm_batch", {"prompts": ["a", "b"], "max_concurrent": 2, "model": None,
                                     "images": [["!!"], [base64.b64encode(red).decode()]]}))
except Exception as exc:
    print("batch", type(exc).__name__, exc)"""


def test_the_host_checks_images_again_whatever_the_kernel_sends() -> None:
    with ScriptedLM(root=[program(FORGED), "FINAL(done)"], sub=seen) as lm:
        rlm = RLM("root", "sub", base_url=lm.base_url, api_key="k", sandbox="kernel", endpoint=Endpoint(retries=0))
        out = output(rlm.completion("ctx", "q"))
        assert lm.stats["sub"] == 1  # only the good item of the forged batch
    assert "ImageError | llm_query(images=...): an image whose base64 is malformed" in out
    assert "ImageError | llm_query(images=...): image 0: GIF and WebP images are not sent" in out
    assert "TypeError | llm_query(images=...) must be list, got str" in out
    assert "ValueError | llm_query(detail=...) takes 'low', 'high', 'auto' or None, got 'ultra'" in out
    assert "'failed': '[rlm error] ImageError: llm_batch(images=...) item 0: an image whose base64 is malformed'" in out
    assert "'text': '1 images: png 64x48'" in out
