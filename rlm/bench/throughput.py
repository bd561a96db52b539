"""``rlm bench throughput``: batched sub-calls against the ideal, the client's overhead,
a 429 storm, a seed-style sequential loop and the peer libraries, in one run.

Every number comes from this run against ``rlm serve-fake`` in its own process. Our
rows run the real thing: a root call whose code calls ``llm_batch`` (or ``llm_query``
in a loop) from the REPL, timed inside the REPL around that call; the wall of a
whole completion and the client process's CPU time are recorded too.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import signal
import statistics
import time
from pathlib import Path
from types import FrameType
from typing import Any

from .. import RLM, RLMResult, __version__, arguments, runtime
from ..config import Endpoint
from ..lm.hedge import Hedge
from . import peers as peer_env
from .fake_server import FakeServer
from .report import Row, _as_json, _line, table, targets

# The root's one reply: the run's parameters come in through ``context``, so one
# server serves every scenario; FINAL inside the code makes it a single root call.
ROOT_PROGRAM = """```repl
import json, time
prompts = [context["tag"] + " item " + str(i) for i in range(context["n"])]
started = time.perf_counter()
if context["mode"] == "batch":
    replies = llm_batch(prompts, max_concurrent=context["c"])
else:
    replies = [llm_query(p) for p in prompts]
seconds = time.perf_counter() - started
failed = [r for r in replies if isinstance(r, FailedCall)]
wrong = sum(r != p[:80] for p, r in zip(prompts, replies) if not isinstance(r, FailedCall))
FINAL(json.dumps({"seconds": seconds, "lost": len(failed), "wrong": wrong,
                  "first_error": str(failed[0]) if failed else None}))
```"""


#: The longest one measured completion may take before the benchmark gives up on it.
GUARD_S = 900.0


def ideal_batch(n: int, c: int, latency: float) -> float:
    """ceil(N/C)·L: C calls at a time, each taking exactly L."""
    return math.ceil(n / c) * latency


# ------------------------------------------------------------------ measurements


def run_ours(
    server: FakeServer, transport: str, mode: str, n: int, c: int, tag: str, sandbox: str = "kernel",
    hedge: Hedge | None = None,
) -> dict[str, Any]:
    """One completion whose root code makes ``n`` sub-calls, on a fresh RLM.

    A one-call warm-up completion first starts the sandbox kernel and opens a
    connection, as any earlier cell of a notebook would have; the limiter's counters
    are reported for the measured run only.
    """
    rlm = RLM("bench-root", "bench-sub", base_url=server.base_url, api_key="bench", sandbox=sandbox,
            max_concurrent=c, max_iterations=2, progress=False, endpoint=Endpoint(transport=transport),
            hedge=hedge)
    try:
        _complete(rlm, {"n": 1, "c": 1, "mode": mode, "tag": "warm-up"})
        before = dict(rlm.limiter.stats)
        server.reset()
        wall, cpu = time.perf_counter(), time.process_time()
        result = _complete(rlm, {"n": n, "c": c, "mode": mode, "tag": tag})
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    finally:
        rlm.close()
    measured = json.loads(result.text)
    limiter = {k: v - before.get(k, 0) if k in ("granted", "rate_limited", "cuts") else v
               for k, v in rlm.limiter.stats.items()}
    return {**measured, "wall": wall, "cpu": cpu, "stats": server.stats(), "limiter": limiter}


def _complete(rlm: RLM, context: dict[str, Any]) -> RLMResult:
    """A completion that fails loudly after ``GUARD_S`` instead of hanging the benchmark."""
    return runtime.run(asyncio.wait_for(rlm.acompletion(context, "benchmark"), GUARD_S))


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


def _ours_rows(
    server: FakeServer, scenario: str, transports: list[str], mode: str, n: int, c: int, repeats: int, sandbox: str,
    hedge: Hedge | None = None,
) -> list[Row]:
    rows = []
    for transport in transports:
        row = Row(scenario, f"rlm {transport}" + (" hedged" if hedge else ""), n, c, server.latency)
        for k in range(repeats):
            got = run_ours(server, transport, mode, n, c, tag=f"{scenario}-{transport}-{k}", sandbox=sandbox,
                           hedge=hedge)
            row.walls.append(got["seconds"])
            row.cpu_s.append(got["cpu"])
            row.lost += got["lost"]
            row.wrong += got["wrong"]
            row.rate_limited += got["stats"]["status_counts"].get("429", 0)
            row.requests += got["stats"]["requests"]
            row.extra.setdefault("completion_wall_s", []).append(round(got["wall"], 4))
            row.extra.setdefault("limiter", []).append(got["limiter"])
            if got["first_error"]:
                row.extra.setdefault("errors", []).append(got["first_error"])
        rows.append(row)
        print(_line(row), flush=True)
    return rows


def _peer_rows(python: Path, server: FakeServer, scenario: str, n: int, c: int, repeats: int) -> list[Row]:
    rows = []
    for lib in ("rlms", "dspy"):
        for concurrency in (None, c):
            row = Row(scenario, lib, n, None, server.latency)
            for k in range(repeats):
                server.reset()
                got = peer_env.run_peer(python, lib, server.base_url, n, concurrency, tag=f"{lib}-{k}")
                row.c = got["concurrency"]
                row.walls.append(got["seconds"])
                row.cpu_s.append(got["cpu_s"])
                row.wrong += got["wrong"]
                row.requests += server.stats()["requests"]
            row.note = "default C" if concurrency is None else "C set to ours"
            row.extra["version"] = got["version"]
            row.ideal = ideal_batch(n, row.c or 1, server.latency) if server.latency else None
            rows.append(row)
            print(_line(row), flush=True)
    return rows


# ------------------------------------------------------------------ the run


def run(args: argparse.Namespace) -> int:
    """Run every scenario, print the table, write JSON if asked; 0 unless something failed to run."""
    signal.signal(signal.SIGTERM, _exit_on_sigterm)  # so the servers' with-blocks still stop them
    transports = args.transports
    n, c, latency, repeats = args.n, args.concurrency, args.latency, args.repeats
    started = time.time()
    info = _machine()
    info["sandbox"] = args.sandbox
    python = peer_env.ensure_venv(Path(args.peers_venv), install=not args.no_install) if args.peers else None
    if python is not None:
        info["peers"] = peer_env.peer_versions(python)
        info["peers_python"] = peer_env.python_version(python)
    rows: list[Row] = []
    print(f"rlm bench throughput: N={n} C={c} L={latency}s, repeats={repeats}, transports={transports}", flush=True)

    rows += _latency_rows(args, transports, python) if n else []
    rows += _overhead_rows(args, transports, python) if args.overhead_n else []
    rows += _storm_rows(args, transports) if n else []
    for sigma in args.tail_sigma if args.tail_n else []:
        rows += _tail_rows(args, sigma, python, transports[:1])

    info["seconds"] = round(time.time() - started, 1)
    info["loadavg_end"] = os.getloadavg()
    print()
    print(table(rows))
    checks = targets(rows)
    print()
    print("\n".join(checks))
    if args.json:
        payload = {"machine": info, "args": vars(args), "rows": [_as_json(r) for r in rows], "targets": checks}
        Path(args.json).write_text(json.dumps(payload, indent=1, default=str))
        print(f"\nwrote {args.json}")
    return 0


def _latency_rows(args: argparse.Namespace, transports: list[str], python: Path | None) -> list[Row]:
    """The batch at the endpoint's latency, and the sequential loop, beside the floor and the peers."""
    n, c, latency, repeats = args.n, args.concurrency, args.latency, args.repeats
    rows: list[Row] = []
    with FakeServer(latency=latency, root_reply=ROOT_PROGRAM) as server:
        rows.append(_raw_row(server, n, c, repeats))
        batch = _ours_rows(server, "batch", transports, "batch", n, c, repeats, args.sandbox)
        for row in batch:
            row.ideal = ideal_batch(n, c, latency)
        rows += batch
        if args.seq_n:
            seq = _ours_rows(server, "sequential llm_query", transports[:1], "seq", args.seq_n, c, 1, args.sandbox)
            seq[0].ideal = args.seq_n * latency
            seq[0].c = 1  # one call at a time, whatever the RLM allows
            rows += seq
        if python is not None:
            rows += _peer_rows(python, server, "batch", n, c, repeats)
    return rows


def _overhead_rows(args: argparse.Namespace, transports: list[str], python: Path | None) -> list[Row]:
    """Client CPU per call at latency 0."""
    c, repeats = args.concurrency, args.repeats
    rows: list[Row] = []
    with FakeServer(latency=0.0, root_reply=ROOT_PROGRAM) as server:
        rows.append(_raw_row(server, args.overhead_n, c, repeats))
        rows += _ours_rows(server, "overhead L=0", transports, "batch", args.overhead_n, c, repeats, args.sandbox)
        if python is not None:
            rows += _peer_rows(python, server, "overhead L=0", args.overhead_n, c, 1)
        if args.profile:
            from .profile import profile_transports

            for path in profile_transports(server.base_url, Path(args.profile), args.overhead_n, c):
                print(f"profile written: {path}", flush=True)
    return rows


def _storm_rows(args: argparse.Namespace, transports: list[str]) -> list[Row]:
    """A 429 storm: the share of the admitted throughput we reach."""
    n, c, latency, repeats = args.n, args.concurrency, args.latency, args.repeats
    rows: list[Row] = []
    with FakeServer(latency=latency, admit=args.storm_admit, admit_retry_after=args.storm_retry_after,
                    root_reply=ROOT_PROGRAM) as server:
        storm = _ours_rows(
            server, f"429 storm (admit {args.storm_admit})", transports, "batch", n, c, repeats, args.sandbox
        )
        for row in storm:
            row.ideal = ideal_batch(n, args.storm_admit, latency)  # the admitted throughput's time
            share = (n / row.median) / (args.storm_admit / latency)
            row.note = f"{share:.0%} of admitted throughput"
            row.extra["share_of_admitted"] = share
        rows += storm
    return rows


def _tail_rows(args: argparse.Namespace, sigma: float, python: Path | None, transports: list[str]) -> list[Row]:
    """Lognormal latency: the stragglers decide a batch; hedged and not, beside the floor and the peers."""
    n, c, median = args.tail_n, args.tail_c, args.tail_median
    scenario = f"lognormal tail (sigma {sigma})"
    rows = []
    with FakeServer(latency=median, latency_sigma=sigma, seed=args.tail_seed, root_reply=ROOT_PROGRAM) as server:
        floor = _raw_row(server, n, c, args.tail_repeats)
        floor.scenario = scenario
        rows.append(floor)
        for hedge in (None, Hedge()):
            rows += _ours_rows(server, scenario, transports, "batch", n, c, args.tail_repeats, args.sandbox, hedge)
        if python is not None:
            rows += _peer_rows(python, server, scenario, n, c, 1)
    for row in rows:
        row.ideal = ideal_batch(n, row.c or c, median)  # every call at the median: what the tail costs
        row.note = f"{row.requests / (n * max(1, len(row.walls))) - 1:+.1%} requests" if row.requests else row.note
    plain, hedged = (next(r for r in rows if r.client == f"rlm {transports[0]}{s}") for s in ("", " hedged"))
    # The mean, not the median: hedging cuts the tail, and a median of batch times leaves out the
    # slowest batches, the ones it cuts most (docs/performance.md).
    hedged.extra["speedup_vs_unhedged"] = statistics.fmean(plain.walls) / statistics.fmean(hedged.walls)
    hedged.extra["median_speedup_vs_unhedged"] = plain.median / hedged.median
    print(_line(hedged), f"hedging: {hedged.extra['speedup_vs_unhedged']:.2f}x faster on average, "
          f"{hedged.extra['median_speedup_vs_unhedged']:.2f}x by the median", flush=True)
    return rows


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def _raw_row(server: FakeServer, n: int, c: int, repeats: int) -> Row:
    row = Row("batch" if server.latency else "overhead L=0", "raw aiohttp floor", n, c, server.latency)
    for _ in range(repeats):
        seconds, cpu = run_raw(server.base_url, n, c)
        row.walls.append(seconds)
        row.cpu_s.append(cpu)
    row.ideal = ideal_batch(n, c, server.latency) if server.latency else None
    print(_line(row), flush=True)
    return row


def _machine() -> dict[str, Any]:
    import aiohttp
    import openai

    model = ""
    try:
        model = next(
            (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
             if line.startswith("model name")), ""
        )
    except OSError:
        pass
    return {
        "cpus": os.cpu_count(), "cpu_model": model, "platform": platform.platform(),
        "python": platform.python_version(), "rlm": __version__, "openai": openai.__version__,
        "aiohttp": aiohttp.__version__, "loadavg_start": os.getloadavg(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``rlm bench throughput``."""
    count, positive = arguments.number(int, 0), arguments.number(int, 1)
    seconds = arguments.number(float, 0)
    parser.add_argument("--n", type=count, default=1000, help="prompts per batch; 0 skips the batch and storm (1000)")
    parser.add_argument("--concurrency", type=positive, default=64,
                        help="max_concurrent of the batch and the RLM (64)")
    parser.add_argument("--latency", type=seconds, default=0.2, help="server latency per call in seconds (0.2)")
    parser.add_argument("--overhead-n", type=count, default=2000,
                        help="calls in the latency-0 overhead run; 0 skips (2000)")
    parser.add_argument("--seq-n", type=count, default=1000,
                        help="calls in the sequential llm_query loop; 0 skips (1000)")
    parser.add_argument("--storm-admit", type=positive, default=16,
                        help="server admits this many in flight, 429 beyond (16)")
    parser.add_argument("--storm-retry-after", type=seconds, default=0.5,
                        help="Retry-After of the storm's 429s (0.5)")
    parser.add_argument("--transports", type=arguments.choice_list(("auto", "openai", "fast")), default="auto,openai",
                        help="RLM transports to measure (auto,openai)")
    parser.add_argument(
        "--sandbox", default="kernel", choices=("kernel", "local"), help="where root code runs (kernel)"
    )
    parser.add_argument("--repeats", type=positive, default=3, help="repeats of each timed row (3)")
    parser.add_argument("--peers", action=argparse.BooleanOptionalAction, default=True, help="measure rlms and dspy")
    parser.add_argument("--peers-venv", default=str(peer_env.DEFAULT_VENV),
                        type=arguments.output_dir("a directory for the peers' virtual environment"),
                        help="the peers' own virtual environment")
    parser.add_argument("--no-install", action="store_true", help="fail rather than create the peers environment")
    parser.add_argument("--profile", metavar="DIR", default=None, type=arguments.output_dir("a directory for profiles"),
                        help="also profile both transports at L=0 into DIR")
    parser.add_argument("--json", metavar="PATH", default=None, type=arguments.output_file("a file for the numbers"),
                        help="write every measurement as JSON")
    parser.add_argument("--tail-n", type=count, default=600,
                        help="prompts in the lognormal-latency batch; 0 skips (600)")
    parser.add_argument("--tail-c", type=positive, default=32, help="max_concurrent of the lognormal batch (32)")
    parser.add_argument("--tail-median", type=seconds, default=0.1,
                        help="median latency of the lognormal batch (0.1)")
    parser.add_argument("--tail-sigma", type=arguments.number_list(float, 0), default="1.0,1.5",
                        help="lognormal sigmas, one run each (1.0,1.5)")
    parser.add_argument("--tail-seed", type=int, default=1, help="seed of the lognormal draws (1)")
    parser.add_argument("--tail-repeats", type=positive, default=10,
                        help="repeats of each lognormal row: their mean decides the speedup (10)")
