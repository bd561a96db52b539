"""``rlm bench startup``: how long ``import rlm`` and ``rlm --help`` take in a fresh process.

Each is timed as a whole process (the interpreter's own start included, and reported
beside them), the median of ``--repeats`` runs, so the figure is what a user waits for.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time

from ..cli import arguments

#: The targets of the start-up issue, in seconds.
TARGETS = {"import rlm": 0.3, "rlm --help": 0.4}


def _wall(cmd: list[str], repeats: int) -> float:
    walls = []
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        walls.append(time.perf_counter() - started)
    return statistics.median(walls)


def run(args: argparse.Namespace) -> int:
    """Print each command's median wall time and whether it is within its target."""
    script = shutil.which("rlm") or sys.argv[0]
    commands = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "import rlm": [sys.executable, "-c", "import rlm"],
        "rlm --help": [script, "--help"] if script.endswith("rlm") else [sys.executable, "-m", "rlm.cli", "--help"],
    }
    print(f"rlm bench startup: median of {args.repeats} fresh processes each")
    print("| command | wall s | target |")
    print("|---|---|---|")
    for name, cmd in commands.items():
        wall = _wall(cmd, args.repeats)
        target = TARGETS.get(name)
        verdict = "" if target is None else f"<= {target} s: {'met' if wall <= target else 'NOT met'}"
        print(f"| {name} | {wall:.3f} | {verdict} |")
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``rlm bench startup``."""
    parser.add_argument("--repeats", type=arguments.number(int, 1), default=7, help="fresh processes per command (7)")
