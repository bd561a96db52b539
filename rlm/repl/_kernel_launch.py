"""The sandbox kernel's launcher: limits, then privileges, then ipykernel in this process.

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

_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36
_PR_SET_NO_NEW_PRIVS = 38


def _prctl(option: int, value: int) -> None:
    if not sys.platform.startswith("linux"):
        return  # prctl is Linux's; elsewhere the rlimits are all we have
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(option, value, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), f"prctl({option}) failed")


# Landlock (Linux >= 5.13): the same syscall numbers on every architecture.
_LANDLOCK_CREATE_RULESET, _LANDLOCK_ADD_RULE, _LANDLOCK_RESTRICT_SELF = 444, 445, 446
_FS_WRITE_FILE, _FS_REMOVE_DIR, _FS_REMOVE_FILE = 1 << 1, 1 << 4, 1 << 5
_FS_MAKE = {"char": 1 << 6, "dir": 1 << 7, "reg": 1 << 8, "sock": 1 << 9, "fifo": 1 << 10, "block": 1 << 11,
            "sym": 1 << 12}
_FS_REFER, _FS_TRUNCATE = 1 << 13, 1 << 14


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64)]


class _PathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def _landlock(rules: dict[str, Any]) -> int:
    """Allow writes only where ``rules`` says, for this process and all it starts; 0 if Landlock is absent.

    Applied before ipykernel starts a thread, so every thread of the kernel is bound by
    it; irrevocable. ``write`` dirs take any change, ``sockets`` dirs only new sockets
    (ipykernel binds there), ``devices`` only writes to existing files (/dev/null).
    """
    if not sys.platform.startswith("linux"):
        return 0
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    abi = libc.syscall(_LANDLOCK_CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(1))
    if abi < 1:
        return 0
    every = _FS_WRITE_FILE | _FS_REMOVE_DIR | _FS_REMOVE_FILE | sum(_FS_MAKE.values())
    every |= (_FS_REFER if abi >= 2 else 0) | (_FS_TRUNCATE if abi >= 3 else 0)
    attr = _RulesetAttr(every)
    ruleset = libc.syscall(_LANDLOCK_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(ctypes.sizeof(attr)),
                           ctypes.c_uint32(0))
    if ruleset < 0:
        raise OSError(ctypes.get_errno(), "landlock_create_ruleset failed")
    try:
        grants = [(p, every) for p in rules.get("write", [])]
        grants += [(p, _FS_MAKE["sock"] | _FS_REMOVE_FILE) for p in rules.get("sockets", [])]
        grants += [(p, _FS_WRITE_FILE | (_FS_TRUNCATE if abi >= 3 else 0)) for p in rules.get("devices", [])]
        for path, access in grants:
            try:
                fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            except OSError:
                continue  # a dir this sandbox does not have
            try:
                rule = _PathBeneath(access, fd)
                if libc.syscall(_LANDLOCK_ADD_RULE, ctypes.c_int(ruleset), ctypes.c_int(1), ctypes.byref(rule),
                                ctypes.c_uint32(0)) != 0:
                    raise OSError(ctypes.get_errno(), f"landlock_add_rule({path}) failed")
            finally:
                os.close(fd)
        if libc.syscall(_LANDLOCK_RESTRICT_SELF, ctypes.c_int(ruleset), ctypes.c_uint32(0)) != 0:
            raise OSError(ctypes.get_errno(), "landlock_restrict_self failed")
    finally:
        os.close(ruleset)
    return int(abi)


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
    uid = cfg.get("uid")
    if uid is not None:
        os.setgroups([])
        os.setgid(int(cfg["gid"]))
        os.setuid(int(uid))  # from root to another uid: every capability is dropped
    parent = cfg.get("parent_pid")
    if parent is not None:
        # After the uid change, which clears it. Dies with the host even on SIGKILL.
        _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != int(parent):
            os._exit(70)
    if cfg.get("subreaper"):
        # Orphaned grandchildren (double-forked daemons) stay our descendants.
        _prctl(_PR_SET_CHILD_SUBREAPER, 1)
    if cfg.get("landlock"):
        _landlock(cfg["landlock"])  # after no_new_privs, which Landlock requires of an unprivileged process

    os.umask(0o077)


def _launch(argv: list[str]) -> None:
    cfg = json.loads(argv[0])
    _apply_limits(cfg)
    sys.argv = ["ipykernel_launcher", *argv[1:]]
    from ipykernel import kernelapp

    kernelapp.launch_new_instance()


if __name__ == "__main__":
    _launch(sys.argv[1:])
