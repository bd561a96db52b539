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


def test_import_loads_no_heavy_library():
    """`import rlm` and `rlm --help` stay fast: the openai SDK alone took 0.8-1.0 s of a 1.2-1.7 s import."""
    heavy = ["openai", "aiohttp", "jupyter_client", "zmq", "anywidget", "ipywidgets", "IPython", "tiktoken", "ray",
             "pandas"]
    code = f"import sys, rlm, rlm.cli; print([m for m in {heavy!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    helped = ("import contextlib, io, sys, rlm.cli\nwith contextlib.redirect_stdout(io.StringIO()):\n"
              "    with contextlib.suppress(SystemExit): rlm.cli.main(['--help'])\n"
              f"print([m for m in {heavy!r} + ['rlm.bench.scale', 'rlm.testing'] if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", helped], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", "rlm --help loads what only a subcommand needs"
