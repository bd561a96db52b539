"""The public surface is explicit and importing rlm has no side effects."""

from __future__ import annotations

import subprocess
import sys

import rlm


def test_all_is_sorted_and_importable():
    assert rlm.__all__ == sorted(rlm.__all__)
    for name in rlm.__all__:
        value = getattr(rlm, name)
        assert getattr(value, "__name__", None) == name and value.__module__.startswith("rlm."), name


def test_import_starts_no_threads_and_reads_no_environment():
    code = (
        "import os, threading; os.environ.pop('OPENAI_API_KEY', None); import rlm; "
        "print(threading.active_count())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "1"
