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


def test_every_documented_import_path_still_works() -> None:
    """The layout moved modules; the paths users were told to import from stay (docs, seed API, console script)."""
    code = (
        "from rlm.rlm_repl import RLM_REPL\nfrom rlm.repl import REPLEnv, Sub_RLM\n"
        "from rlm.testing import ScriptedLM\nfrom rlm.otel import OpenTelemetrySubscriber\n"
        "from rlm.checkpoint import Checkpoint\nfrom rlm.cli import main\nimport rlm\n"
        "assert callable(rlm.load_ipython_extension) and callable(main) and Checkpoint is rlm.Checkpoint\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
    version = subprocess.run([sys.executable, "-m", "rlm.cli", "--version"], capture_output=True, text=True, check=True)
    assert version.stdout.strip() == f"rlm {rlm.__version__}"
