"""The isolation levels tests run the kernel sandbox in, and how each is made to run here.

``uid`` (no bubblewrap; the host is root and the kernel gets a uid of its own) needs
an interpreter other users can reach. A pyenv under a 0700 /root is not one, so the
tests use the system's Python of the same version with this environment's packages
on ``PYTHONPATH``, when both are readable by other users; otherwise they skip.
"""

from __future__ import annotations

import os
import secrets
import site
import sys
from typing import Any

import pytest

from rlm import SandboxConfig
from rlm.repl.sandbox import procs
from rlm.repl.sandbox.config import ISOLATION_ENV
from rlm.repl.sandbox.isolation import bwrap_path, world_traversable

#: Every level, or only the one a run forces with $RLM_SANDBOX_ISOLATION (CI's second pass).
MODES = [os.environ[ISOLATION_ENV]] if os.environ.get(ISOLATION_ENV) else ["bwrap", "uid", "none"]


def uid_settings() -> dict[str, Any] | None:
    """``python`` and ``extra_env`` for isolation='uid', or None where it cannot run here."""
    if os.geteuid() != 0:
        return None
    python = f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}"
    packages = [p for p in site.getsitepackages() if os.path.isdir(p)]
    if not os.path.exists(python) or not all(world_traversable(p) for p in [python, *packages]):
        return None
    return {"python": python, "extra_env": {"PYTHONPATH": os.pathsep.join(packages)}}


def sandbox_config(mode: str, **limits: Any) -> SandboxConfig:
    """A ``SandboxConfig`` for ``mode``, or a skip saying why it cannot run on this machine."""
    if mode == "bwrap" and bwrap_path() is None:
        pytest.skip("bubblewrap cannot create a sandbox here")
    if mode == "uid":
        settings = uid_settings()
        if settings is None:
            pytest.skip("isolation='uid' needs a root host and a Python other users can read "
                        "(the system's python3 with this venv's packages on PYTHONPATH)")
        extra = {**settings["extra_env"], **limits.pop("extra_env", {})}
        return SandboxConfig(isolation="uid", python=settings["python"], extra_env=extra, **limits)
    if mode == "auto":  # the default, which $RLM_SANDBOX_ISOLATION may force
        return SandboxConfig(**limits)
    return SandboxConfig(isolation=mode, **limits)


def unique_sleep(seconds: int) -> str:
    """A ``sleep`` argument nobody else on the machine runs, so a process running it is this test's own.

    Other tests (under pytest-xdist) and other users start ``sleep 300`` too; a check
    for a bare ``sleep 300`` would see theirs.
    """
    return f"{seconds}.{secrets.randbelow(10**9):09d}"


def running(command: str) -> list[int]:
    """Pids of live processes whose command line is exactly ``command`` (an argument from ``unique_sleep``)."""
    return [p for p in procs.all_pids() if cmdline(p) == command]


def cmdline(pid: int) -> str:
    """A process's command line as one string ("" once it is gone): to find what an attack started."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""
