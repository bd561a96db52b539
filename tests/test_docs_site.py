"""The docs site builds with no warning (``mkdocs build --strict``): every page in the nav, every link resolves."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import rlm

ROOT = Path(rlm.__file__).resolve().parents[1]

pytest.importorskip("mkdocs", reason="the docs extra (mkdocs-material, mkdocstrings) is not installed")


def test_the_docs_site_builds_strict(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                          cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-4000:]
    page = (tmp_path / "site" / "reference" / "index.html").read_text()
    assert "completion" in page and "map_rlm" in page  # the API reference came from the docstrings
