"""Sandbox costs: kernel start-up vs a warm kernel, context load, step and bridge round trip.

Run ``python -m rlm.bench.sandbox`` (or ``rlm bench sandbox``). The host side here is
an instant in-process echo, so the numbers are the sandbox's own cost and not a model's.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import functools
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from ..lm.budget import BudgetLedger, BudgetReport
from ..lm.pricing import Pricing
from ..repl.kernel_repl import KernelREPL
from ..repl.local import LocalREPL
from ..repl.sandbox.config import SandboxConfig
from ..repl.sandbox.pool import KernelPool
from .sandbox_attacks import mode_settings


class EchoHost:
    """Answers at once, so a timing measures the path to the host and back, nothing else."""

    async def llm_query(self, prompt: str, model: str | None = None, images: list[bytes] | None = None,
                        detail: str | None = None) -> str:
        return prompt

    async def llm_batch(
        self, prompts: list[str], max_concurrent: int = 10, model: str | None = None,
        images: Sequence[list[bytes] | Exception] | None = None, detail: str | None = None,
    ) -> list[str]:
        return list(prompts)

    async def rlm_query(self, query: str, context: Any = None) -> str:
        return query

    async def rlm_batch(self, queries: list[str], contexts: list[Any], max_concurrent: int | None = None) -> list[str]:
        return list(queries)

    async def budget(self) -> BudgetReport:
        return BudgetLedger(None, Pricing()).report()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--mode", choices=["auto", "bwrap", "uid", "none", "all"], default="all",
                        help="isolation to measure (default: every one that works here)")
    parser.add_argument("--context-mb", type=int, default=100, help="size of the context to load (default 100)")
    parser.add_argument("--starts", type=int, default=5, help="cold kernel starts to time (default 5)")
    parser.add_argument("--calls", type=int, default=2000, help="llm_query calls for the round trip (default 2000)")


def _stats(samples: list[float], unit: float = 1.0) -> str:
    samples = sorted(s * unit for s in samples)
    p90 = samples[min(len(samples) - 1, int(len(samples) * 0.9))]
    return f"median {statistics.median(samples):8.3f}  p90 {p90:8.3f}  (n={len(samples)})"


async def _timed(fn: Callable[[], Awaitable[Any]]) -> float:
    started = time.perf_counter()
    await fn()
    return time.perf_counter() - started


async def _first_step(repl: KernelREPL, context: str) -> None:
    await repl.start(context, EchoHost())
    await repl.execute("x = 1")


async def _warm(pool: KernelPool) -> None:
    """Until the pool has a fresh kernel ready, as between completions that are not back to back."""
    while pool.stats()["warm"] < 1:
        await asyncio.sleep(0.02)


async def _bench_mode(mode: str, args: argparse.Namespace) -> list[str]:
    settings = mode_settings(mode)
    assert settings is not None
    config = SandboxConfig(**settings)  # type: ignore[arg-type]
    lines = [f"## sandbox={mode}"]

    cold: list[float] = []
    for _ in range(args.starts):
        pool = KernelPool(dataclasses.replace(config, warm_kernels=0))
        cold.append(await _timed(pool.acquire))
        await pool.aclose()
    lines.append(f"kernel start-up (cold, new pool)     s   {_stats(cold)}")

    pool = KernelPool(config)
    try:
        warm: list[float] = []
        back_to_back: list[float] = []
        for i in range(args.starts + 1):
            repl = KernelREPL(pool)
            took = await _timed(functools.partial(_first_step, repl, "small context"))
            await repl.close()
            if i:
                warm.append(took)
            await _warm(pool)
        lines.append(f"warm kernel: start + first step      s   {_stats(warm)}")
        for _ in range(args.starts):
            repl = KernelREPL(pool)  # the next completion at once: its kernel may still be starting
            back_to_back.append(await _timed(functools.partial(_first_step, repl, "small context")))
            await repl.close()
        lines.append(f"back-to-back completions: same       s   {_stats(back_to_back)}")
        await _warm(pool)

        text = "x" * (args.context_mb * 2**20 - 1) + "\n"
        loads: list[float] = []
        for _ in range(3):
            repl = KernelREPL(pool)
            loads.append(await _timed(functools.partial(_first_step, repl, text)))
            check = await repl.execute("print(len(context))")
            assert check.stdout.strip() == str(len(text)), check
            await repl.close()
            await _warm(pool)
        lines.append(f"context {args.context_mb} MB ready as `context`   s   {_stats(loads)}")

        repl = KernelREPL(pool)
        await repl.start("ctx", EchoHost())
        for _ in range(5):
            await repl.execute("pass")  # warm-up
        wall: list[float] = []
        for _ in range(100):
            wall.append(await _timed(lambda: repl.execute("pass")))
        lines.append(f"one step (execute 'pass'), host wall ms  {_stats(wall, 1000)}")
        code = f"import time\nt = time.perf_counter()\nfor _ in range({args.calls}):\n    llm_query('x')\n" \
               f"print((time.perf_counter() - t) / {args.calls})"
        per_call = [float((await repl.execute(code)).stdout) for _ in range(3)]
        lines.append(f"bridge round trip per llm_query   ms   {_stats(per_call, 1000)}")
        await repl.close()
    finally:
        await pool.aclose()
    return lines


async def _bench_local(args: argparse.Namespace) -> list[str]:
    repl = LocalREPL()
    await repl.start("ctx", EchoHost())
    code = f"import time\nt = time.perf_counter()\nfor _ in range({args.calls}):\n    llm_query('x')\n" \
           f"print((time.perf_counter() - t) / {args.calls})"
    per_call = [float((await repl.execute(code)).stdout) for _ in range(3)]
    await repl.close()
    return ["## sandbox=local (reference, not isolated)",
            f"in-process llm_query per call      ms   {_stats(per_call, 1000)}"]


async def _main(args: argparse.Namespace) -> list[str]:
    modes = [args.mode] if args.mode != "all" else [m for m in ("bwrap", "uid", "none") if mode_settings(m)]
    lines: list[str] = []
    for mode in modes:
        lines += await _bench_mode(mode, args)
    return lines + await _bench_local(args)


def run(args: argparse.Namespace) -> int:
    """Print the table; exit 0."""
    from .. import runtime

    for line in runtime.run(_main(args)):
        print(line)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rlm.bench.sandbox", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
