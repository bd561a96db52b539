"""Confinement a kernel applies to itself before any model code runs: Landlock and seccomp.

Standard library only (ctypes): the launcher and the kernel side import it from the
kernel's run directory as ``_rlm_confine``; the host imports it to know what this Linux
kernel offers. Both layers are irrevocable for the process and everything it starts.
"""

from __future__ import annotations

import ctypes
import os
import platform
import sys
from typing import Any

# Landlock (Linux >= 5.13): the same syscall numbers on every architecture.
_LANDLOCK_CREATE_RULESET, _LANDLOCK_ADD_RULE, _LANDLOCK_RESTRICT_SELF = 444, 445, 446
_FS_WRITE_FILE, _FS_REMOVE_DIR, _FS_REMOVE_FILE = 1 << 1, 1 << 4, 1 << 5
_FS_MAKE = {"char": 1 << 6, "dir": 1 << 7, "reg": 1 << 8, "sock": 1 << 9, "fifo": 1 << 10, "block": 1 << 11,
            "sym": 1 << 12}
_FS_REFER, _FS_TRUNCATE = 1 << 13, 1 << 14
# ABI 4: TCP bind and connect; ABI 6: scopes (IPC with processes outside the domain).
_NET_BIND_TCP, _NET_CONNECT_TCP = 1 << 0, 1 << 1
_SCOPE_ABSTRACT_UNIX_SOCKET, _SCOPE_SIGNAL = 1 << 0, 1 << 1
#: The first ABI with each of these.
NET_ABI, SCOPE_ABI = 4, 6


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64),
                ("scoped", ctypes.c_uint64)]


class _PathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def landlock(rules: dict[str, Any]) -> int:
    """Allow writes only where ``rules`` says, for this process and all it starts; 0 if Landlock is absent.

    Applied before ipykernel starts a thread, so every thread of the kernel is bound by
    it; irrevocable. ``write`` dirs take any change, ``sockets`` dirs only new sockets
    (ipykernel binds there), ``devices`` only writes to existing files (/dev/null).
    From ABI 6 the kernel can neither connect to an abstract unix socket (``\\0name``)
    nor signal a process outside its own domain: abstract sockets have no path, so the
    write rules never covered them, and any local service listening on one was in reach.
    ``no_tcp`` (ABI 4) refuses every TCP bind and connect, a second layer under seccomp.
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
    net = _NET_BIND_TCP | _NET_CONNECT_TCP if rules.get("no_tcp") and abi >= NET_ABI else 0
    scoped = _SCOPE_ABSTRACT_UNIX_SOCKET | _SCOPE_SIGNAL if abi >= SCOPE_ABI else 0
    attr = _RulesetAttr(every, net, scoped)
    # An older kernel knows a shorter struct: pass only the fields its ABI has.
    size = ctypes.sizeof(attr) if abi >= SCOPE_ABI else 16 if abi >= NET_ABI else 8
    ruleset = libc.syscall(_LANDLOCK_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0))
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


_CLONE_NEWNS = 0x00020000
_MS_NOSUID, _MS_NODEV, _MS_REC, _MS_PRIVATE = 1 << 1, 1 << 2, 1 << 14, 1 << 18


def private_tmpfs(path: str, size: int, uid: int | None) -> None:
    """Mount a tmpfs of ``size`` bytes over ``path``, seen only in a mount namespace of this process's own.

    Without bubblewrap the kernel's home is a directory on the host's disk, where only
    each file's size is limited (``RLIMIT_FSIZE``); a tmpfs bounds the total, and it is
    gone with the kernel's last process (nothing for the host to unmount, even when it is
    killed). Needs ``CAP_SYS_ADMIN``: run before the kernel gives up root.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    owner = f",uid={uid},gid={uid}" if uid is not None else ""
    _checked(libc.unshare(_CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    _checked(libc.mount(b"none", b"/", None, _MS_REC | _MS_PRIVATE, None), "making / private")
    _checked(libc.mount(b"tmpfs", path.encode(), b"tmpfs", _MS_NOSUID | _MS_NODEV,
                        f"size={size},mode=0700{owner}".encode()), f"mounting a tmpfs on {path}")


def _checked(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what} failed: {os.strerror(err)}")


def landlock_abi() -> int:
    """The Landlock ABI this Linux kernel offers (0 without it)."""
    if not sys.platform.startswith("linux"):
        return 0
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    return max(0, int(libc.syscall(_LANDLOCK_CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(1))))


def can_filter_network() -> bool:
    """Is there a seccomp table for this machine (``no_network`` would install)?"""
    return sys.platform.startswith("linux") and platform.machine() in _ARCH


# Seccomp (uid mode, where there is no network namespace): socket() of any family but AF_UNIX, and
# io_uring (which can open sockets without socket()), fail with EACCES. Installed by install(),
# after ipykernel bound its own loopback pipe and before any model code, on every thread (TSYNC).
# arch -> (AUDIT_ARCH, socket, io_uring_setup, seccomp)
_ARCH = {"x86_64": (0xC000003E, 41, 425, 317), "aarch64": (0xC00000B7, 198, 425, 277)}
_RET_ALLOW, _RET_ERRNO = 0x7FFF0000, 0x00050000
_EACCES = 13


class _SockFilter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8), ("k", ctypes.c_uint32)]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_uint16), ("filter", ctypes.POINTER(_SockFilter))]


def no_network() -> bool:
    """Install the filter; False where this architecture has no table here (the host then says so)."""
    arch = _ARCH.get(platform.machine())
    if arch is None or not sys.platform.startswith("linux"):
        return False
    audit_arch, nr_socket, nr_io_uring_setup, nr_seccomp = arch
    ld_w_abs, jeq_k, jge_k, ret_k = 0x20, 0x15, 0x35, 0x06
    deny = _RET_ERRNO | _EACCES
    program = [
        (ld_w_abs, 0, 0, 4),                      # 0: A = arch
        (jeq_k, 1, 0, audit_arch),                # 1: native? skip the next
        (ret_k, 0, 0, deny),                      # 2: a foreign ABI (i386, x32) gets nothing
        (ld_w_abs, 0, 0, 0),                      # 3: A = syscall number
        (jge_k, 3, 0, 0x40000000),                # 4: the x32 ABI's numbers -> 8
        (jeq_k, 3, 0, nr_socket),                 # 5: socket() -> 9
        (jeq_k, 1, 0, nr_io_uring_setup),         # 6: io_uring_setup() -> 8
        (ret_k, 0, 0, _RET_ALLOW),                # 7: anything else
        (ret_k, 0, 0, deny),                      # 8
        (ld_w_abs, 0, 0, 16),                     # 9: A = socket's family (args[0], low word)
        (jeq_k, 0, 1, 1),                         # 10: AF_UNIX -> 11, else 12
        (ret_k, 0, 0, _RET_ALLOW),                # 11
        (ret_k, 0, 0, deny),                      # 12
    ]
    filters = (_SockFilter * len(program))(*[_SockFilter(*f) for f in program])
    prog = _SockFprog(len(program), filters)
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    set_mode_filter, flag_tsync = 1, 1
    if libc.syscall(nr_seccomp, set_mode_filter, flag_tsync, ctypes.byref(prog)) != 0:
        raise OSError(ctypes.get_errno(), "seccomp filter failed")
    return True
