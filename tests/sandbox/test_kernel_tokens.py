"""chunk and count_tokens in the kernel sandbox: they run in the kernel, and the context never crosses the bridge."""

from __future__ import annotations

import asyncio
import json

import pytest
from sandbox_modes import MODES, sandbox_config

from rlm.bench.sandbox import EchoHost
from rlm.lm.tokens import get_encoding
from rlm.repl.kernel_repl import KernelREPL
from rlm.repl.sandbox.pool import KernelPool
from rlm.testing.texts import sample_text

PROGRAM = """\
import json
pieces = chunk(context, max_tokens=20_000)
small = chunk(context[:40_000], max_tokens=300, overlap=30)
print(json.dumps([len(pieces), ''.join(pieces) == context, count_tokens(context), count_tokens(context[:1000]),
                  count_tokens(context, exact=False), len(small), max(count_tokens(p) for p in small)]))
"""


@pytest.mark.parametrize("mode", MODES)
def test_chunk_runs_in_the_kernel_and_sends_nothing_over_the_bridge(mode: str) -> None:
    text = "".join(sample_text(kind, 1_000_000) for kind in ("prose", "code", "cjk"))
    encoding = get_encoding()

    async def main() -> tuple[list[int], int, int]:
        repl = KernelREPL(KernelPool(sandbox_config(mode, warm_kernels=0)))
        try:
            await repl.start(text, EchoHost())
            await repl.execute("pass")  # the context is in: its pipe's descriptor came over the bridge
            kernel = await repl.kernel()
            before = kernel.bridge.bytes_in, kernel.bridge.bytes_out
            result = await repl.execute(PROGRAM)
            assert result.error is None, result.error
            return json.loads(result.stdout), kernel.bridge.bytes_in - before[0], kernel.bridge.bytes_out - before[1]
        finally:
            await repl.close()
            await repl.pool.aclose()

    (pieces, joined, total, head, sampled, _small, small_max), sent, received = asyncio.run(main())
    assert joined and pieces >= total // 20_000
    assert total == len(encoding.encode_ordinary(text)) and head == len(encoding.encode_ordinary(text[:1000]))
    assert sampled == pytest.approx(total, rel=0.05)
    assert small_max <= 300
    assert sent == 0 and received == 0  # nothing at all crossed: no helper call goes to the host
