"""The code passes ruff with the rule set configured in pyproject.toml ([tool.ruff.lint])."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.timeout(120)
def test_ruff_finds_nothing() -> None:
    pytest.importorskip("ruff", reason="ruff is a test dependency; install rlm[test]")
    out = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "rlm", "tests", "examples"],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-1000:]
