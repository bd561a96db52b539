"""The floor of ``rlm bench throughput``: aiohttp and a semaphore, nothing else, against the same server.

What any client in Python pays on this machine for the same calls, so a row of ours is
read against it as well as against the ideal.
"""

from __future__ import annotations

import asyncio
import math
import time

from .fake_server import FakeServer
from .report import Row, row_line


def ideal_batch(n: int, c: int, latency: float) -> float:
    """ceil(N/C)·L: C calls at a time, each taking exactly L."""
    return math.ceil(n / c) * latency


def run_raw(base_url: str, n: int, c: int) -> tuple[float, float]:
    """The floor: aiohttp and a semaphore, nothing else (seconds, CPU seconds)."""
    import aiohttp

    async def go() -> float:
        gate = asyncio.Semaphore(c)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:

            async def one(i: int) -> str:
                async with gate:
                    body = {"model": "raw", "messages": [{"role": "user", "content": f"raw item {i}"}]}
                    async with session.post(f"{base_url}/chat/completions", json=body) as response:
                        return str((await response.json())["choices"][0]["message"]["content"])

            started = time.perf_counter()
            replies = await asyncio.gather(*(one(i) for i in range(n)))
            assert replies[-1] == f"raw item {n - 1}"
            return time.perf_counter() - started

    cpu = time.process_time()
    seconds = asyncio.run(go())
    return seconds, time.process_time() - cpu


def floor_row(server: FakeServer, n: int, c: int, repeats: int, scenario: str | None = None) -> Row:
    """The floor's row, ``repeats`` batches of ``n`` at ``c``, in ``scenario`` (by default the batch's)."""
    scenario = scenario or ("batch" if server.latency else "overhead L=0")
    row = Row(scenario, "raw aiohttp floor", n, c, server.latency)
    for _ in range(repeats):
        seconds, cpu = run_raw(server.base_url, n, c)
        row.walls.append(seconds)
        row.cpu_s.append(cpu)
    row.ideal = ideal_batch(n, c, server.latency) if server.latency else None
    print(row_line(row), flush=True)
    return row
