"""``rlm bench hedge-sim``: hedging policies on a simulated batch, to choose ``Hedge``'s defaults.

A discrete-event simulation of one ``llm_batch`` with lognormal latencies and no client
overhead, following the rules ``rlm.lm.hedge`` follows: items go out in order on
``max_concurrent`` slots; once the last one is out, a free slot re-sends the in-flight
item that has run longest, counted from its first request, once that is past the
``percentile`` of the finished items' latencies (after ``min_samples`` of them), at most
``copies`` times per item and ``max_extra`` of the items in all; the first reply settles
an item and frees every slot it held. Why a simulation: one real run of the lognormal
bench moves with its draws (docs/performance.md), and a policy is better chosen on the
average of many.
"""

from __future__ import annotations

import argparse
import heapq
import math
import random
import statistics
from dataclasses import dataclass

from ..cli import arguments
from ..lm.hedge import Hedge, re_sends_allowed, straggler_threshold


@dataclass(frozen=True)
class Outcome:
    """One simulated batch: when its last item settled, and how many requests were re-sends."""

    seconds: float
    extra: int


def simulate(n: int, c: int, median: float, sigma: float, seed: int, hedge: Hedge | None) -> Outcome:
    """One batch of ``n`` items on ``c`` slots, each request's latency drawn from the lognormal."""
    draws = random.Random(seed)
    pending: list[tuple[float, int, int]] = []  # (finish time, request id, item)
    live: dict[int, int] = {}  # request id -> item, for requests still in flight
    first_sent: dict[int, float] = {}
    copies: dict[int, int] = {}
    finished: list[float] = []
    allowed = re_sends_allowed(hedge, n) if hedge else 0
    extra = requests = handed = 0
    free, now = c, 0.0

    def send(item: int) -> None:
        nonlocal requests, free
        requests += 1
        free -= 1
        live[requests] = item
        heapq.heappush(pending, (now + median * math.exp(draws.gauss(0.0, sigma)), requests, item))

    while handed < n and free:
        first_sent[handed], copies[handed] = now, 0
        send(handed)
        handed += 1
    settled = 0
    while settled < n:
        now, request, item = heapq.heappop(pending)
        if live.pop(request, None) is None:
            continue  # a request cancelled when its item settled
        free += 1
        if item in first_sent:
            settled += 1
            finished.append(now - first_sent.pop(item))
            for other in [r for r, i in live.items() if i == item]:
                del live[other]
                free += 1
        while handed < n and free:
            first_sent[handed], copies[handed] = now, 0
            send(handed)
            handed += 1
        if hedge is None or handed < n or len(finished) < hedge.min_samples:
            continue
        threshold = straggler_threshold(hedge, sorted(finished))
        while free and extra < allowed:
            late = [(sent, i) for i, sent in first_sent.items()
                    if copies[i] < hedge.copies and now - sent > threshold]
            if not late:
                break
            straggler = min(late)[1]
            copies[straggler] += 1
            extra += 1
            send(straggler)
    return Outcome(now, extra)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--n", type=int, default=600, help="items in the batch (600)")
    parser.add_argument("--c", type=int, default=32, help="max_concurrent (32)")
    parser.add_argument("--median", type=float, default=0.1, help="median latency in seconds (0.1)")
    parser.add_argument("--sigma", type=float, default=1.0, help="the lognormal's sigma (1.0)")
    parser.add_argument("--seeds", type=int, default=40, help="batches simulated per policy (40)")
    parser.add_argument("--percentiles", type=arguments.number_list(float, 0, 1), default="0.5,0.7,0.9",
                        help="percentiles tried (0.5,0.7,0.9)")
    parser.add_argument("--copies", type=arguments.number_list(int, 1), default="1,2,3",
                        help="copies per item tried (1,2,3)")
    parser.add_argument("--max-extra", type=float, default=0.08, help="share of the items re-sent at most (0.08)")


def run(args: argparse.Namespace) -> int:
    """Print the unhedged batch and one row per policy: seconds and speedup by mean and median, extra requests.

    Both, because a heavy tail pulls the two apart: the mean is what batches cost over
    time, and the median leaves out the slowest batches, which hedging cuts most.
    """
    seeds = range(args.seeds)

    def batches(hedge: Hedge | None) -> tuple[float, float, float]:
        """Mean and median seconds of the batches, and the share of extra requests."""
        runs = [simulate(args.n, args.c, args.median, args.sigma, seed, hedge) for seed in seeds]
        seconds = [r.seconds for r in runs]
        return statistics.fmean(seconds), statistics.median(seconds), statistics.fmean(r.extra for r in runs) / args.n

    plain, plain_median, _ = batches(None)
    ideal = args.n * args.median / args.c
    print(f"simulated: N={args.n} C={args.c} median={args.median} s sigma={args.sigma}, {args.seeds} batches each, "
          f"no client overhead")
    print("| policy | mean s | x the median ideal | speedup (mean) | median s | speedup (median) | extra requests |")
    print("|---|---|---|---|---|---|---|")
    print(f"| unhedged | {plain:.3f} | {plain / ideal:.2f} | 1.00x | {plain_median:.3f} | 1.00x | +0.0 % |")
    for percentile in args.percentiles:
        for copies in args.copies:
            policy = Hedge(percentile=percentile, copies=copies, max_extra=args.max_extra)
            mean, median, extra = batches(policy)
            print(f"| percentile {percentile:g}, copies {copies} | {mean:.3f} | {mean / ideal:.2f} | "
                  f"{plain / mean:.2f}x | {median:.3f} | {plain_median / median:.2f}x | +{extra * 100:.1f} % |")
    return 0
