"""``rlm serve-fake``: a scripted OpenAI-compatible model on 127.0.0.1, for demos and benchmarks.

It runs in the foreground until SIGINT or SIGTERM. Root calls answer ``FINAL(...)`` at
once and sub-calls echo their prompt's start, so any RLM pointed at it terminates.
"""

from __future__ import annotations

import argparse
import math
import random
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING

from rlm.cli import arguments

if TYPE_CHECKING:  # the server loads when the command runs
    from rlm.testing import ScriptedRequest

CANNED_ANSWER = "This is a canned answer from rlm serve-fake."


def parse_latency(text: str) -> float | tuple[float, float]:
    """``0.2`` is a fixed latency, ``0.1,0.5`` a uniform range."""
    try:
        parts = [float(p) for p in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected SECONDS or LO,HI, got {text!r}") from None
    if len(parts) == 1 and parts[0] >= 0:
        return parts[0]
    if len(parts) == 2 and 0 <= parts[0] <= parts[1]:
        return parts[0], parts[1]
    raise argparse.ArgumentTypeError(f"expected SECONDS or LO,HI with 0 <= LO <= HI, got {text!r}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``serve-fake``."""
    parser.add_argument("--port", type=arguments.number(int, 0, 65535), default=8000,
                        help="port on 127.0.0.1; 0 picks a free one (default 8000)")
    parser.add_argument(
        "--latency",
        type=parse_latency,
        default=0.0,
        metavar="SECONDS|LO,HI",
        help="delay before each reply: fixed, or uniform in [LO, HI]",
    )
    parser.add_argument(
        "--latency-sigma", type=float, default=0.0, metavar="SIGMA",
        help="sub-call latency lognormal with median --latency and this sigma (0: off); seeded by --seed",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of --latency-sigma's draws (0)")
    parser.add_argument(
        "--reply", default=None, help="answer every request with TEXT (default: root FINAL(...), sub echoes the prompt)"
    )
    parser.add_argument(
        "--root-reply", default=None, metavar="TEXT", help="answer root calls with TEXT (overrides --reply)"
    )
    parser.add_argument(
        "--admit", type=arguments.number(int, 1), default=None, metavar="N",
        help="answer 429 (with Retry-After) beyond N requests in flight"
    )
    parser.add_argument(
        "--admit-retry-after", type=arguments.number(float, 0), default=0.5, metavar="SECONDS",
        help="Retry-After of --admit's 429s (0.5)"
    )


def _echo_prompt(request: ScriptedRequest) -> str:
    """Sub-call default: the prompt's start, so callers can see what was asked."""
    return request.prompt[:80]


def _canned_final(request: ScriptedRequest) -> str:
    """Root default: finish at once, so any RLM pointed at the server terminates."""
    return f"FINAL({CANNED_ANSWER})"


def lognormal_latency(median: float, sigma: float, seed: int) -> Callable[[ScriptedRequest], float]:
    """Sub-call latencies drawn from a lognormal (a heavy tail, as endpoints have); root calls take ``median``."""
    draws = random.Random(seed)

    def latency(request: ScriptedRequest) -> float:
        return median if request.role == "root" else median * math.exp(draws.gauss(0.0, sigma))

    return latency


def run(args: argparse.Namespace) -> int:
    """Run a ScriptedLM in the foreground until SIGINT or SIGTERM."""
    reply: str | None = args.reply
    root_reply: str | None = args.root_reply if args.root_reply is not None else reply
    root = _canned_final if root_reply is None else lambda request: root_reply
    sub = _echo_prompt if reply is None else lambda request: reply
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        """Only flag the stop: shutting the server down belongs to the main flow."""
        stop.set()

    from rlm.testing import ScriptedLM

    latency = args.latency
    if args.latency_sigma:
        if args.latency_sigma < 0 or not isinstance(args.latency, float):
            print("rlm serve-fake: --latency-sigma needs a sigma >= 0 and one --latency (the median)", file=sys.stderr)
            return 2
        latency = lognormal_latency(args.latency, args.latency_sigma, args.seed)
    # Counters only: a long benchmark would otherwise keep every request body.
    lm = ScriptedLM(root=root, sub=sub, latency=latency, port=args.port, record=False)
    if args.admit is not None:
        lm.admit(args.admit, retry_after=args.admit_retry_after)
    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        try:
            lm.start()
        except OSError as exc:
            print(f"rlm serve-fake: cannot listen on 127.0.0.1:{args.port}: {exc}", file=sys.stderr)
            return 1
        print(f"serving on {lm.base_url} (Ctrl-C to stop)", flush=True)
        stop.wait()
    finally:
        lm.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
