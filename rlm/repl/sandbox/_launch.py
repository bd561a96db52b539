"""The sandbox kernel's launcher: limits, then privileges, then ipykernel in this process.

Without bubblewrap it forks first and stays behind as the kernel's reaper (``reaper.py``),
so nothing the kernel starts outlives the host; the kernel is the child.

Copied into the kernel's run directory as ``_rlm_launch.py`` and run by the kernelspec
(inside bubblewrap when it is installed); standard library only. Limits are applied here,
inside the sandbox's namespaces, so that the process limit counts only the sandbox.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import sys
from typing import Any

try:  # inside rlm, for the type checker
    from . import confine, reaper
except ImportError:  # run as a script from the kernel's run directory
    import _rlm_confine as confine  # type: ignore[no-redef]
    import _rlm_reaper as reaper  # type: ignore[no-redef]

_PR_SET_PDEATHSIG = 1
_PR_SET_NO_NEW_PRIVS = 38


def _prctl(option: int, value: int) -> None:
    if not sys.platform.startswith("linux"):
        return  # prctl is Linux's; elsewhere the rlimits are all we have
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(option, value, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), f"prctl({option}) failed")


def _apply_limits(cfg: dict[str, Any]) -> None:
    """Limits first, then privileges: once the uid changes we may no longer raise them."""
    import resource

    for name, value in cfg.get("rlimits", {}).items():
        kind = getattr(resource, name)
        soft = hard = int(value)
        if name == "RLIMIT_CPU":
            hard = soft + 5  # soft limit sends SIGXCPU; the hard one is the backstop
        try:
            resource.setrlimit(kind, (soft, hard))
        except (ValueError, OSError):
            if sys.platform.startswith("linux"):
                raise
            # macOS refuses some limits (RLIMIT_AS above all): run without that one.
    _prctl(_PR_SET_NO_NEW_PRIVS, 1)
    tmpfs = cfg.get("tmpfs")
    if tmpfs:  # while still root; the home the host made is hidden under it
        confine.private_tmpfs(tmpfs["path"], int(tmpfs["size"]), cfg.get("uid"))
        os.chdir(tmpfs["path"])
    uid = cfg.get("uid")
    if uid is not None:
        os.setgroups([])
        os.setgid(int(cfg["gid"]))
        os.setuid(int(uid))  # from root to another uid: every capability is dropped
    parent = cfg.get("parent_pid")
    if parent is not None:
        # After the uid change, which clears it. Dies with its parent (the reaper) even on SIGKILL.
        _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != int(parent):
            os._exit(70)
    if cfg.get("landlock"):
        confine.landlock(cfg["landlock"])  # after no_new_privs, which Landlock requires of an unprivileged process

    os.umask(0o077)


def _launch(argv: list[str]) -> None:
    cfg = json.loads(argv[0])
    if cfg.get("reaper"):
        # Without a pid namespace: this process stays behind to end everything under it, the kernel is its child.
        cfg["parent_pid"] = reaper.fork_kernel(int(cfg["parent_pid"]), _prctl)
    _apply_limits(cfg)
    sys.argv = ["ipykernel_launcher", *argv[1:]]
    from ipykernel import kernelapp

    kernelapp.launch_new_instance()


if __name__ == "__main__":
    _launch(sys.argv[1:])
