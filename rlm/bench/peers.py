"""The peer libraries (rlms, dspy) in a virtual environment of their own.

They are never installed into rlm's environment: rlms installs a top-level module
named ``rlm``, and dspy brings a large dependency tree. The environment is made
once with ``pip install`` from PyPI and reused; each measurement runs
``peer_worker.py`` in a fresh process of that environment.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
from pathlib import Path
from typing import Any

from ..errors import RLMError

#: What the peers environment holds; the versions measured in shared/peers/RESULTS.md.
PEER_REQUIREMENTS = ("rlms==0.1.3", "dspy==3.4.1", "aiohttp")
DEFAULT_VENV = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "rlm" / "bench-peers-venv"
WORKER = Path(__file__).with_name("peer_worker.py")
WORKER_TIMEOUT_S = 600


def venv_python(path: Path) -> Path:
    return path / "bin" / "python"


def ensure_venv(path: Path = DEFAULT_VENV, *, install: bool = True) -> Path:
    """The peers' Python, creating the environment and installing the peers if needed."""
    python = venv_python(path)
    probe = [str(python), "-c", "import rlm.core.lm_handler, dspy"]
    if python.exists() and subprocess.run(probe, capture_output=True, cwd=path, check=False).returncode == 0:
        return python
    if not install:
        raise RLMError(f"no peers environment at {path}; run without --no-install to create it")
    print(f"creating the peers environment at {path} (pip install {' '.join(PEER_REQUIREMENTS)}) ...", flush=True)
    venv.EnvBuilder(with_pip=True, clear=not python.exists()).create(path)
    subprocess.run([str(python), "-m", "pip", "install", "-q", *PEER_REQUIREMENTS], check=True)
    return python


def run_peer(
    python: Path, lib: str, base_url: str, n: int | None, concurrency: int | None, tag: str, waves: int | None = None
) -> dict[str, Any]:
    """One timed batched call by ``lib``; returns the worker's measurements.

    ``concurrency=None`` is the library's default; ``n=None`` is ``waves`` times that concurrency.
    """
    spec = json.dumps({"lib": lib, "base_url": base_url, "n": n, "concurrency": concurrency, "tag": tag,
                       "waves": waves})
    # cwd and PYTHONPATH keep our package (top-level ``rlm``) out of the peer's imports.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(
        [str(python), str(WORKER), spec],
        capture_output=True, text=True, timeout=WORKER_TIMEOUT_S, cwd=python.parent, env=env, check=False,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        tail = (done.stdout + done.stderr)[-1500:]
        raise RLMError(f"peer worker {lib} failed (exit {done.returncode}): {tail}")
    return dict(json.loads(lines[-1][len("RESULT ") :]))


def peer_versions(python: Path) -> dict[str, str]:
    """Installed versions of the peers and of the HTTP stacks they ride on."""
    code = (
        "import json; from importlib.metadata import version as v\n"
        "print(json.dumps({n: v(n) for n in ('rlms', 'dspy', 'openai', 'litellm', 'httpx', 'aiohttp')}))"
    )
    done = subprocess.run([str(python), "-c", code], capture_output=True, text=True, cwd=python.parent, check=False)
    return dict(json.loads(done.stdout)) if done.returncode == 0 else {"error": done.stderr[-300:]}


def python_version(python: Path) -> str:
    done = subprocess.run(
        [str(python), "-c", "import sys; print(sys.version.split()[0])"], capture_output=True, text=True, check=False
    )
    return done.stdout.strip() or sys.version.split()[0]
