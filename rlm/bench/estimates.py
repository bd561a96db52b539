"""How long each part of ``rlm bench throughput`` will take, from its parameters, said before it runs.

The models are simple and deliberately so: a batch is its waves of latency or its client
CPU, whichever is longer; a lognormal batch is its work spread over the slots plus its
slowest call. The constants are what a quiet 2-core machine measured (docs/performance.md);
a loaded machine takes longer, and each part prints what it took beside the estimate.
"""

from __future__ import annotations

import math
from statistics import NormalDist

#: Seconds to build an RLM and run its one-call warm-up (a kernel sandbox starts; "local" is near 0).
RLM_START_S = {"kernel": 1.0, "local": 0.1}
#: Seconds for a peer's worker process to import its library and start its REPL.
PEER_START_S = 3.0
#: Client CPU per call, in ms: what bounds a batch when the latency is low.
CPU_MS = {"floor": 0.25, "auto": 0.4, "fast": 0.4, "openai": 2.6, "peer": 3.0}
#: A batch at a fixed latency takes about this much over its ideal (one loop per side on 2 cores).
WAVE_OVERHEAD = 1.1
#: The share of the admitted throughput a 429 storm reaches.
STORM_SHARE = 0.9


def batch_s(n: int, c: int, latency: float, client: str) -> float:
    """One batch: ceil(N/C) waves of the latency, or the client's CPU for N calls if that is longer."""
    return WAVE_OVERHEAD * max(math.ceil(n / c) * latency, n * CPU_MS[client] / 1000)


def sequential_s(n: int, latency: float) -> float:
    """``llm_query`` in a loop: each call's latency and a few ms of REPL and client."""
    return n * (latency + 0.003)


def storm_s(n: int, admit: int, latency: float) -> float:
    """A batch the server admits ``admit`` at a time: the admitted throughput's time, at the usual share."""
    return math.ceil(n / admit) * latency / STORM_SHARE


def lognormal_s(n: int, c: int, median: float, sigma: float, *, hedged: bool) -> float:
    """The work (N calls at the lognormal's mean) over C slots, plus the slowest call unless hedging cut it."""
    work = n * median * math.exp(sigma**2 / 2) / c
    slowest = median * math.exp(sigma * NormalDist().inv_cdf(1 - 1 / max(2, n)))
    return work + (2 * median if hedged else slowest)


def say(seconds: float) -> str:
    """``40 s`` or ``3.5 min``."""
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"
