"""Where the client's CPU goes per call: cProfile over one batch through each transport.

Runs the dispatcher (limiter, retry, trace, usage) and the client on this thread's
own loop, so the profiler sees the whole hot path; the REPL hop is left out.
"""

from __future__ import annotations

import asyncio
import cProfile
import io
import pstats
import time
from pathlib import Path

from ..lm.client import LMClient, OpenAIClient
from ..lm.dispatcher import Dispatcher
from ..lm.limiter import AdaptiveLimiter
from ..lm.transport import FastClient
from ..trace.events import Tracer

TOP = 30


async def _batch(client: LMClient, n: int, c: int, profiler: cProfile.Profile | None) -> float:
    """CPU seconds of one ``n``-call batch (after a warm-up that opens the connections)."""
    dispatcher = Dispatcher(client, limiter=AdaptiveLimiter(c), tracer=Tracer(keep=False))
    await dispatcher.batch([f"warm {i}" for i in range(c)], model="bench-sub", max_concurrent=c, parent=None)
    prompts = [f"profile item {i}" for i in range(n)]
    cpu = time.process_time()
    if profiler is not None:
        profiler.enable()
    await dispatcher.batch(prompts, model="bench-sub", max_concurrent=c, parent=None)
    if profiler is not None:
        profiler.disable()
    cpu = time.process_time() - cpu
    await client.aclose()  # type: ignore[attr-defined]
    return cpu


def profile_transports(base_url: str, out_dir: Path, n: int, c: int) -> list[Path]:
    """Write ``profile-<transport>.txt`` (top functions by own and cumulative time) for both transports."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, make in (("openai", OpenAIClient), ("fast", FastClient)):
        plain = asyncio.run(_batch(make(base_url=base_url, api_key="bench"), n, c, None))
        profiler = cProfile.Profile()
        profiled = asyncio.run(_batch(make(base_url=base_url, api_key="bench"), n, c, profiler))
        text = io.StringIO()
        text.write(
            f"transport={name} N={n} C={c} latency=0\n"
            f"client CPU without profiler: {1000 * plain / n:.3f} ms/call; "
            f"under cProfile: {1000 * profiled / n:.3f} ms/call\n\n"
        )
        for key in ("tottime", "cumulative"):
            text.write(f"--- top {TOP} by {key} ---\n")
            pstats.Stats(profiler, stream=text).strip_dirs().sort_stats(key).print_stats(TOP)
        path = out_dir / f"profile-{name}.txt"
        path.write_text(text.getvalue())
        written.append(path)
    return written
