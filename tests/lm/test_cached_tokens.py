"""Cached prompt tokens: read as each provider reports them, priced at the cached rate, shown."""

from __future__ import annotations

import pytest

from rlm import RLM, Endpoint, ModelInfo
from rlm.lm.types import reported_usage
from rlm.testing import ScriptedLM
from rlm.trace import fanout, html
from rlm.trace.state import RunState

INSTRUCTION = "Read the passage below and list every date it mentions, one per line. " * 80  # ~1,400 tokens


def test_each_providers_report_of_cache_hits_is_read() -> None:
    openai = {"prompt_tokens": 2000, "completion_tokens": 5, "prompt_tokens_details": {"cached_tokens": 1536}}
    deepseek = {"prompt_tokens": 2000, "completion_tokens": 5, "prompt_cache_hit_tokens": 1024}
    plain = {"prompt_tokens": 2000, "completion_tokens": 5}
    assert reported_usage(openai).cached_prompt_tokens == 1536
    assert reported_usage(deepseek).cached_prompt_tokens == 1024
    assert reported_usage(plain, {"timings": {"cache_n": 700}}).cached_prompt_tokens == 700  # llama.cpp
    assert reported_usage(plain).cached_prompt_tokens == 0
    lying = {"prompt_tokens": 10, "prompt_tokens_details": {"cached_tokens": 10**9}}
    assert reported_usage(lying).cached_prompt_tokens == 10, "never more cached than sent"
    assert reported_usage({"prompt_tokens": "many", "prompt_tokens_details": None}).prompt_tokens == 0


@pytest.mark.parametrize("transport", ["auto", "openai"])
def test_a_batch_sharing_its_instruction_is_priced_at_the_cached_rate(transport: str) -> None:
    program = ("```repl\nanswers = llm_batch([INSTRUCTION + '\\n\\n' + f'passage {i}' for i in range(20)])\n"
               "FINAL(len(answers))\n```").replace("INSTRUCTION", repr(INSTRUCTION))
    prices = {"sub": ModelInfo(input_per_mtok=1.0, output_per_mtok=2.0, cached_input_per_mtok=0.1),
              "root": ModelInfo(input_per_mtok=1.0, output_per_mtok=2.0, cached_input_per_mtok=0.1)}
    with ScriptedLM(root=[program], sub=lambda r: "none", prefix_cache=True) as lm:
        rlm = RLM("root", "sub", base_url=lm.base_url, api_key="k", sandbox="local",
                  endpoint=Endpoint(transport=transport, pricing=prices))
        result = rlm.completion("ctx", "q", view=False)
    sub = result.usage.by_model["sub"]
    assert result.answer == "20"
    # The first prompt fills the cache; the other 19 hit it for the whole instruction, in 128-token steps.
    per_hit = (len(INSTRUCTION) // 512) * 128
    assert sub.cached_prompt_tokens == 19 * per_hit
    full = sub.prompt_tokens * 1.0 + sub.completion_tokens * 2.0
    assert sub.cost_usd == pytest.approx((full - sub.cached_prompt_tokens * 0.9) / 1_000_000)
    assert f"({result.usage.cached_prompt_tokens:,} prompt tokens cached)" in str(result.usage)
    header = html.render(RunState(result.trace).parts())
    assert "<small> (24.3k cached)</small>" in header


def test_the_call_detail_shows_its_cached_tokens() -> None:
    detail = {"index": 3, "model": "sub", "status": "ok", "prompt_tokens": 2000, "completion_tokens": 5,
              "cached_prompt_tokens": 1536}
    assert "2,000 + 5 tokens (1,536 cached)" in fanout.call_detail(detail)
