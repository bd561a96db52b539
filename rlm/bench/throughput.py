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
import functools
import json
import math
import os
import signal
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any, NamedTuple

from .. import RLM, RLMResult, runtime
from ..cli import arguments
from ..config import Endpoint
from ..lm.hedge import Hedge
from . import estimates
from . import peers as peer_env
from .estimates import say
from .fake_server import FakeServer
from .floor import floor_row, ideal_batch
from .report import Row, machine, row_json, row_line, table, targets

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


# ------------------------------------------------------------------ measurements


def run_ours(
    server: FakeServer, transport: str, mode: str, n: int, c: int, tag: str, sandbox: str = "kernel",
    hedge: Hedge | None = None, repeats: int = 1,
) -> list[dict[str, Any]]:
    """``repeats`` completions whose root code makes ``n`` sub-calls, on one fresh RLM.

    A one-call warm-up completion first starts the sandbox kernel and opens a
    connection, as any earlier cell of a notebook would have; the server's and the
    limiter's counters are reported for each measured completion alone.
    """
    rlm = RLM("bench-root", "bench-sub", base_url=server.base_url, api_key="bench", sandbox=sandbox,
              max_concurrent=c, max_iterations=2, progress=False,
              endpoint=Endpoint(transport=transport, hedge=hedge))
    measured = []
    try:
        _complete(rlm, {"n": 1, "c": 1, "mode": mode, "tag": "warm-up"})
        for k in range(repeats):
            before = dict(rlm.limiter.stats)
            server.reset()
            wall, cpu = time.perf_counter(), time.process_time()
            result = _complete(rlm, {"n": n, "c": c, "mode": mode, "tag": f"{tag}-{k}"})
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            limiter = {key: value - before.get(key, 0) if key in ("granted", "rate_limited", "cuts") else value
                       for key, value in rlm.limiter.stats.items()}
            measured.append({**json.loads(result.text), "wall": wall, "cpu": cpu, "stats": server.stats(),
                             "limiter": limiter})
    finally:
        rlm.close()
    return measured


def _complete(rlm: RLM, context: dict[str, Any]) -> RLMResult:
    """A completion that fails loudly after ``GUARD_S`` instead of hanging the benchmark."""
    return runtime.run(asyncio.wait_for(rlm.acompletion(context, "benchmark"), GUARD_S))


def _ours_rows(
    server: FakeServer, scenario: str, transports: list[str], mode: str, n: int, c: int, repeats: int, sandbox: str,
    hedge: Hedge | None = None, fresh: bool = False,
) -> list[Row]:
    """One row per transport; ``fresh``: a new RLM for each repeat (a storm meets a limiter that knows nothing)."""
    rows = []
    for transport in transports:
        row = Row(scenario, f"rlm {transport}" + (" hedged" if hedge else ""), n, c, server.latency)
        runs = ([got for k in range(repeats) for got in run_ours(server, transport, mode, n, c, f"{scenario}-{k}",
                                                                    sandbox, hedge)] if fresh
                else run_ours(server, transport, mode, n, c, scenario, sandbox, hedge, repeats))
        for got in runs:
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
        print(row_line(row), flush=True)
    return rows


def _peer_rows(python: Path, server: FakeServer, scenario: str, n: int, c: int, repeats: int,
               default_waves: int | None = None) -> list[Row]:
    """Each peer with C set to ours on N calls; with ``default_waves``, first at its own default C, on as many
    calls as make that many waves (the ideal time of ours), so its row costs what ours does."""
    rows = []
    for lib in ("rlms", "dspy"):
        for concurrency in ([None] if default_waves else []) + [c]:
            row = Row(scenario, lib, n, None, server.latency)
            for k in range(repeats):
                server.reset()
                got = peer_env.run_peer(python, lib, server.base_url, n if concurrency else None, concurrency,
                                        tag=f"{lib}-{k}", waves=default_waves)
                row.n, row.c = got["n"], got["concurrency"]
                row.walls.append(got["seconds"])
                row.cpu_s.append(got["cpu_s"])
                row.wrong += got["wrong"]
                row.requests += server.stats()["requests"]
            row.note = "default C" if concurrency is None else "C set to ours"
            row.extra["version"] = got["version"]
            row.ideal = ideal_batch(row.n, row.c or 1, server.latency) if server.latency else None
            rows.append(row)
            print(row_line(row), flush=True)
    return rows


# ------------------------------------------------------------------ the run


class Part(NamedTuple):
    """One part of the run: what it measures, how long it should take, and the rows it makes."""

    title: str
    seconds: float
    rows: Callable[[], list[Row]]


def run(args: argparse.Namespace) -> int:
    """Run every part, each announced with its estimated time; print the table, write JSON if asked."""
    signal.signal(signal.SIGTERM, _exit_on_sigterm)  # so the servers' with-blocks still stop them
    started = time.time()
    info = machine()
    info["sandbox"] = args.sandbox
    python = peer_env.ensure_venv(Path(args.peers_venv), install=not args.no_install) if args.peers else None
    if python is not None:
        info["peers"] = peer_env.peer_versions(python)
        info["peers_python"] = peer_env.python_version(python)
    parts = plan(args, python)
    load, cpus = os.getloadavg()[0], os.cpu_count() or 1
    busy = f"; the load average is {load:.1f} on {cpus} CPUs, so expect longer" if load > cpus / 2 else ""
    print(f"rlm bench throughput: {len(parts)} parts, about {say(sum(p.seconds for p in parts))} in all "
          f"(estimated for a quiet 2-core machine{busy})", flush=True)
    rows: list[Row] = []
    for i, part in enumerate(parts, 1):
        print(f"[{i}/{len(parts)}] {part.title}: about {say(part.seconds)}", flush=True)
        began = time.perf_counter()
        rows += part.rows()
        print(f"  took {say(time.perf_counter() - began)}", flush=True)
    info["seconds"] = round(time.time() - started, 1)
    info["estimated_seconds"] = round(sum(p.seconds for p in parts), 1)
    info["loadavg_end"] = os.getloadavg()
    print()
    print(table(rows))
    checks = targets(rows)
    print()
    print("\n".join(checks))
    if args.json:
        payload = {"machine": info, "args": vars(args), "rows": [row_json(r) for r in rows], "targets": checks}
        Path(args.json).write_text(json.dumps(payload, indent=1, default=str))
        print(f"\nwrote {args.json}")
    return 0


def plan(args: argparse.Namespace, python: Path | None) -> list[Part]:
    """The parts the arguments ask for, each with its estimate (``rlm.bench.estimates``)."""
    transports, n, c, latency, repeats = args.transports, args.n, args.concurrency, args.latency, args.repeats
    start, peers = estimates.RLM_START_S[args.sandbox], len(_PEERS) if python is not None else 0
    by_peers = f", {' and '.join(_PEERS)}" if peers else ""
    parts = []
    if n:
        ours = sum(start + repeats * estimates.batch_s(n, c, latency, t) for t in transports)
        theirs = peers * (2 * estimates.PEER_START_S + estimates.batch_s(n, c, latency, "peer")
                          + math.ceil(n / c) * latency * estimates.WAVE_OVERHEAD) * args.peer_repeats
        parts.append(Part(f"batch of N={n} at C={c}, L={latency} s: the raw aiohttp floor, rlm {', '.join(transports)}"
                          f"{by_peers}, {repeats} repeats", repeats * estimates.batch_s(n, c, latency, "floor")
                          + ours + theirs, lambda: _latency_rows(args, python)))
    if args.seq_n:
        parts.append(Part(f"sequential llm_query loop of {args.seq_n} calls at L={latency} s, rlm {transports[0]}",
                          start + estimates.sequential_s(args.seq_n, latency), lambda: _sequential_rows(args)))
    if args.overhead_n:
        m = args.overhead_n
        ours = sum(start + repeats * estimates.batch_s(m, c, 0.0, t) for t in transports)
        theirs = peers * (estimates.PEER_START_S + estimates.batch_s(m, c, 0.0, "peer")) * args.peer_repeats
        parts.append(Part(f"client overhead, N={m} at latency 0: the floor, rlm {', '.join(transports)}{by_peers}",
                          repeats * estimates.batch_s(m, c, 0.0, "floor") + ours + theirs,
                          lambda: _overhead_rows(args, python)))
    if args.storm_n:
        each = start + estimates.storm_s(args.storm_n, args.storm_admit, latency)
        parts.append(Part(f"429 storm, N={args.storm_n}, the server admitting {args.storm_admit}: rlm "
                          f"{transports[0]}, {repeats} repeats on a fresh RLM each", repeats * each,
                          lambda: _storm_rows(args)))
    for sigma in args.tail_sigma if args.tail_n else []:
        tail_n, tail_c, median = args.tail_n, args.tail_c, args.tail_median
        plain = estimates.lognormal_s(tail_n, tail_c, median, sigma, hedged=False)
        hedged = estimates.lognormal_s(tail_n, tail_c, median, sigma, hedged=True)
        seconds = (repeats * plain + 2 * start + args.tail_repeats * (plain + hedged)
                   + peers * (estimates.PEER_START_S + plain) * args.peer_repeats)
        parts.append(Part(f"lognormal tail, sigma {sigma:g}: N={tail_n} at C={tail_c}, median {median} s, rlm "
                          f"{transports[0]} hedged and not, {args.tail_repeats} repeats{by_peers}", seconds,
                          functools.partial(_tail_rows, args, sigma, python)))
    return parts


_PEERS = ("rlms", "dspy")


def _latency_rows(args: argparse.Namespace, python: Path | None) -> list[Row]:
    """The batch at the endpoint's latency beside the floor and the peers (at their default C, then ours)."""
    n, c, latency, repeats = args.n, args.concurrency, args.latency, args.repeats
    rows: list[Row] = []
    with FakeServer(latency=latency, root_reply=ROOT_PROGRAM) as server:
        rows.append(floor_row(server, n, c, repeats))
        batch = _ours_rows(server, "batch", args.transports, "batch", n, c, repeats, args.sandbox)
        for row in batch:
            row.ideal = ideal_batch(n, c, latency)
        rows += batch
        if python is not None:
            rows += _peer_rows(python, server, "batch", n, c, args.peer_repeats, default_waves=math.ceil(n / c))
    return rows


def _sequential_rows(args: argparse.Namespace) -> list[Row]:
    """The seed's way: ``llm_query`` in a loop, one call at a time, against N·L."""
    with FakeServer(latency=args.latency, root_reply=ROOT_PROGRAM) as server:
        seq = _ours_rows(server, "sequential llm_query", args.transports[:1], "seq", args.seq_n, args.concurrency, 1,
                         args.sandbox)
    seq[0].ideal = args.seq_n * args.latency
    seq[0].c = 1  # one call at a time, whatever the RLM allows
    return seq


def _overhead_rows(args: argparse.Namespace, python: Path | None) -> list[Row]:
    """Client CPU per call at latency 0."""
    c, repeats, m = args.concurrency, args.repeats, args.overhead_n
    rows: list[Row] = []
    with FakeServer(latency=0.0, root_reply=ROOT_PROGRAM) as server:
        rows.append(floor_row(server, m, c, repeats))
        rows += _ours_rows(server, "overhead L=0", args.transports, "batch", m, c, repeats, args.sandbox)
        if python is not None:
            rows += _peer_rows(python, server, "overhead L=0", m, c, args.peer_repeats)
        if args.profile:
            from .profile import profile_transports

            for path in profile_transports(server.base_url, Path(args.profile), m, c):
                print(f"profile written: {path}", flush=True)
    return rows


def _storm_rows(args: argparse.Namespace) -> list[Row]:
    """A 429 storm: the share of the admitted throughput we reach, each repeat on a fresh RLM."""
    n, c, latency, admit = args.storm_n, args.concurrency, args.latency, args.storm_admit
    with FakeServer(latency=latency, admit=admit, admit_retry_after=args.storm_retry_after,
                    root_reply=ROOT_PROGRAM) as server:
        storm = _ours_rows(server, f"429 storm (admit {admit})", args.transports[:1], "batch", n, c, args.repeats,
                           args.sandbox, fresh=True)
    for row in storm:
        row.ideal = ideal_batch(n, admit, latency)  # the admitted throughput's time
        share = (n / row.median) / (admit / latency)
        row.note = f"{share:.0%} of admitted throughput"
        row.extra["share_of_admitted"] = share
    return storm


def _tail_rows(args: argparse.Namespace, sigma: float, python: Path | None) -> list[Row]:
    """Lognormal latency: the stragglers decide a batch; hedged and not, beside the floor and the peers."""
    n, c, median, transports = args.tail_n, args.tail_c, args.tail_median, args.transports[:1]
    scenario = f"lognormal tail (sigma {sigma})"
    rows = []
    with FakeServer(latency=median, latency_sigma=sigma, seed=args.tail_seed, root_reply=ROOT_PROGRAM) as server:
        rows.append(floor_row(server, n, c, args.repeats, scenario))
        for hedge in (None, Hedge()):
            rows += _ours_rows(server, scenario, transports, "batch", n, c, args.tail_repeats, args.sandbox, hedge)
        if python is not None:
            rows += _peer_rows(python, server, scenario, n, c, args.peer_repeats)
    for row in rows:
        row.ideal = ideal_batch(n, row.c or c, median)  # every call at the median: what the tail costs
        row.note = f"{row.requests / (n * max(1, len(row.walls))) - 1:+.1%} requests" if row.requests else row.note
    plain, hedged = (next(r for r in rows if r.client == f"rlm {transports[0]}{s}") for s in ("", " hedged"))
    # The mean, not the median: hedging cuts the tail, and a median of batch times leaves out the
    # slowest batches, the ones it cuts most (docs/performance.md).
    hedged.extra["speedup_vs_unhedged"] = statistics.fmean(plain.walls) / statistics.fmean(hedged.walls)
    hedged.extra["median_speedup_vs_unhedged"] = plain.median / hedged.median
    print(row_line(hedged), f"hedging: {hedged.extra['speedup_vs_unhedged']:.2f}x faster on average, "
          f"{hedged.extra['median_speedup_vs_unhedged']:.2f}x by the median", flush=True)
    return rows


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``rlm bench throughput``."""
    count, positive = arguments.number(int, 0), arguments.number(int, 1)
    seconds = arguments.number(float, 0)
    parser.add_argument("--n", type=count, default=1000, help="prompts in the batch; 0 skips it (1000)")
    parser.add_argument("--concurrency", type=positive, default=64,
                        help="max_concurrent of the batch and the RLM (64)")
    parser.add_argument("--latency", type=seconds, default=0.2, help="server latency per call in seconds (0.2)")
    parser.add_argument("--overhead-n", type=count, default=1000,
                        help="calls in the latency-0 overhead run; 0 skips (1000)")
    parser.add_argument("--seq-n", type=count, default=50,
                        help="calls in the sequential llm_query loop; 0 skips (50)")
    parser.add_argument("--storm-n", type=count, default=1000,
                        help="prompts in the 429 storm's batch, sent by the first of --transports; 0 skips (1000)")
    parser.add_argument("--storm-admit", type=positive, default=16,
                        help="server admits this many in flight, 429 beyond (16)")
    parser.add_argument("--storm-retry-after", type=seconds, default=0.5,
                        help="Retry-After of the storm's 429s (0.5)")
    parser.add_argument("--transports", type=arguments.choice_list(("auto", "openai", "fast")), default="auto,openai",
                        help="RLM transports in the batch and at latency 0; the storm and the tail use the first "
                             "(auto,openai)")
    parser.add_argument(
        "--sandbox", default="kernel", choices=("kernel", "local"), help="where root code runs (kernel)"
    )
    parser.add_argument("--repeats", type=positive, default=3, help="repeats of each timed row (3)")
    parser.add_argument("--peers", action=argparse.BooleanOptionalAction, default=True, help="measure rlms and dspy")
    parser.add_argument("--peer-repeats", type=positive, default=1,
                        help="repeats of each peer row, each in a fresh process (1)")
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
    parser.add_argument("--tail-sigma", type=arguments.number_list(float, 0), default="1.0",
                        help="lognormal sigmas, one part each (1.0; docs/performance.md also has 1.5)")
    parser.add_argument("--tail-seed", type=int, default=1, help="seed of the lognormal draws (1)")
    parser.add_argument("--tail-repeats", type=positive, default=5,
                        help="repeats of our lognormal rows: their mean decides the speedup (5)")
