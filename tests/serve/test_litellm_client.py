"""LiteLLM as a client of ``rlm serve`` (its OpenAI-compatible provider), whole and streamed.

LiteLLM is about 230 MB installed, so it is not in ``rlm[test]``: this module skips without
it (``pip install 'rlm[test-litellm]'``; .ci/run installs it in a step of its own).
"""

from __future__ import annotations

import os

import pytest

# LiteLLM fetches a price table from the internet at import unless told not to: tests stay on the loopback.
os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
litellm = pytest.importorskip("litellm", reason="LiteLLM is not installed: pip install 'rlm[test-litellm]'")

from rlm.testing import ScriptedLM  # noqa: E402
from tests.scripting import code  # noqa: E402

pytestmark = pytest.mark.litellm
ROOT = [code("parts = llm_batch(['a', 'b'])", "print(parts)"), "FINAL(from rlm serve)"]


def test_litellm_completion_and_stream_through_rlm_serve(start) -> None:
    litellm.telemetry = False
    with ScriptedLM(root=list(ROOT), sub=lambda r: "x") as upstream:
        running = start(upstream)
        reply = litellm.completion(model="openai/rlm/root", api_base=running.base_url, api_key="unused",
                                   messages=[{"role": "user", "content": "q"}], num_retries=0)
        assert reply.choices[0].message.content == "from rlm serve"
        assert reply.usage.total_tokens > 0
        upstream.root = list(ROOT)
        chunks = list(litellm.completion(model="openai/rlm/root", api_base=running.base_url, api_key="unused",
                                         messages=[{"role": "user", "content": "q"}], stream=True, num_retries=0))
        content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        reasoning = "".join(getattr(c.choices[0].delta, "reasoning_content", None) or "" for c in chunks if c.choices)
        assert content == "from rlm serve"
        assert "llm_batch: 2 sub-calls" in reasoning


async def test_litellm_async_completion(start) -> None:
    litellm.telemetry = False
    with ScriptedLM(root=lambda r: "FINAL(async ok)") as upstream:
        running = start(upstream)
        reply = await litellm.acompletion(model="openai/rlm/root", api_base=running.base_url, api_key="unused",
                                          messages=[{"role": "user", "content": "q"}], num_retries=0)
        assert reply.choices[0].message.content == "async ok"
