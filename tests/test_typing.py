"""The package type-checks under ``mypy --strict`` (config in pyproject.toml)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_rlm_type_checks_strictly() -> None:
    pytest.importorskip("mypy", reason="mypy is a test dependency; install rlm[test]")
    out = subprocess.run(
        [sys.executable, "-m", "mypy", "rlm"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-1000:]
