"""50 requests at once: every one answered with its own answer, the upstream's concurrency never exceeded."""

from __future__ import annotations

import asyncio
import re

import openai

from rlm.testing import ScriptedLM
from tests.scripting import code

N = 50
UPSTREAM_SLOTS = 4


def root(request) -> str:  # type: ignore[no-untyped-def]
    """First turn: a batch of three sub-calls; second turn: answer with the request's own number."""
    number = re.search(r"question (\d+)", str(request.messages[1]["content"]))
    assert number is not None
    if len(request.messages) <= 2:
        return code("parts = llm_batch(['a', 'b', 'c'])", "print(len(parts))")
    return f"FINAL(answer {number.group(1)})"


async def test_fifty_concurrent_requests_share_the_upstream_limit(start) -> None:
    with ScriptedLM(root=root, sub=lambda r: "part", latency=0.01) as upstream:
        running = start(upstream, max_runs=8, max_queue=N, upstream_concurrency=UPSTREAM_SLOTS)
        async with openai.AsyncOpenAI(base_url=running.base_url, api_key="unused", max_retries=0,
                                      timeout=120) as client:
            replies = await asyncio.gather(*[
                client.chat.completions.create(model="rlm/root",
                                               messages=[{"role": "user", "content": f"question {i}"}])
                for i in range(N)])
        assert [r.choices[0].message.content for r in replies] == [f"answer {i}" for i in range(N)]
        stats = upstream.stats
        assert stats["root"] == 2 * N and stats["sub"] == 3 * N
        assert 1 < stats["max_in_flight"] <= UPSTREAM_SLOTS
        assert stats["status_counts"] == {200: 5 * N}
        assert sum(r.model_extra["rlm"]["calls"] for r in replies) == 5 * N
