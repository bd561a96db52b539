"""examples/example_batch.py runs offline, announces simulated mode, and computes the answer."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "example_batch.py"


def test_example_batch_offline_is_announced_and_right():
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL")}
    out = subprocess.run(
        [sys.executable, str(EXAMPLE), "--sections", "120", "--chunks", "8"],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("SIMULATED MODE")
    assert "same answers in the same order: True" in out.stdout
    speedup = float(re.search(r"speedup: ([\d.]+)x", out.stdout).group(1))
    assert speedup > 1.5  # how much faster is a benchmark's question (rlm bench throughput), not a test's
    planted, named = re.search(
        r"planted with the merger: (\[.*?\]); named in the answer: (\[.*?\])", out.stdout
    ).groups()
    assert planted == named and planted != "[]"
