"""How a sandbox kernel is launched: its environment, its limits, and the bubblewrap command around it."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .config import DEFAULT_DISK_MB, Isolation, SandboxConfig
from .isolation import python_dirs

#: Variables the kernel may inherit from the host; everything else is dropped.
ENV_ALLOW = ("LANG", "LC_ALL", "LC_CTYPE", "TZ")
#: The kernel's home and working directory under bubblewrap (a size-limited tmpfs).
SANDBOX_HOME = "/sandbox"
_SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc")


def kernel_env(config: SandboxConfig, home: str, sandbox_id: str) -> dict[str, str]:
    """The whole environment of the kernel: an allow-list, never a copy of the host's."""
    env = {k: os.environ[k] for k in ENV_ALLOW if k in os.environ}
    env.update(
        PATH=os.pathsep.join(dict.fromkeys([str(Path(config.python).parent), "/usr/local/bin", "/usr/bin", "/bin"])),
        HOME=home, TMPDIR=home, IPYTHONDIR=os.path.join(home, ".ipython"),
        MPLCONFIGDIR=os.path.join(home, ".matplotlib"), MPLBACKEND="agg",
        PYTHONDONTWRITEBYTECODE="1", RLM_SANDBOX=sandbox_id,
    )
    env.update(config.extra_env)
    return env


def rlimits(config: SandboxConfig, *, count_existing: bool) -> dict[str, int]:
    """Resource limits for the launcher to apply inside the sandbox."""
    limits = {
        "RLIMIT_AS": config.memory_mb * 2**20,
        "RLIMIT_CPU": config.cpu_seconds,
        "RLIMIT_NPROC": config.max_processes,
        "RLIMIT_FSIZE": config.max_file_mb * 2**20,
        "RLIMIT_CORE": 0,
    }
    if count_existing:
        # Same uid as the host, no namespace of our own: the limit counts every process of
        # the user, so allow those that already exist (without /proc we cannot count them).
        if os.path.isdir("/proc"):
            limits["RLIMIT_NPROC"] += _tasks_of_uid(os.getuid())
        else:
            del limits["RLIMIT_NPROC"]
    return limits


def _tasks_of_uid(uid: int) -> int:
    count = 0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid:
                    count += len(os.listdir(f"/proc/{entry.name}/task"))
            except OSError:
                continue
    return count


def bwrap_command(
    bwrap: str, config: SandboxConfig, rundir: str, sockdir: str, env: Mapping[str, str], inner: list[str],
) -> list[str]:
    """bubblewrap around ``inner``: read-only system, Python and run dir, a private /tmp, no network.

    The only host directory the kernel may write is ``sockdir``, for the sockets it binds
    at start-up; the host takes it back before any model code runs.
    """
    cmd = [bwrap, "--die-with-parent", "--new-session", "--unshare-pid", "--unshare-net",
           "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try", "--hostname", "rlm-sandbox"]
    if os.geteuid() != 0:
        cmd.append("--unshare-user")
    bound: list[str] = []
    for path in _SYSTEM_DIRS:
        if os.path.islink(path):
            cmd += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            cmd += ["--ro-bind", path, path]
            bound.append(path)
    small = str(64 * 2**20)
    cmd += ["--proc", "/proc", "--dev", "/dev",
            "--perms", "1777", "--size", str((config.disk_mb or DEFAULT_DISK_MB) * 2**20), "--tmpfs", SANDBOX_HOME,
            "--perms", "1777", "--size", small, "--tmpfs", "/tmp",
            "--perms", "1777", "--size", small, "--tmpfs", "/dev/shm"]
    # After the tmpfs mounts: a venv, a checkout or $TMPDIR under /tmp must stay visible.
    made: set[str] = set()
    for path in [*python_dirs(config.python, config.extra_env), rundir]:
        if any(path == b or path.startswith(b + "/") for b in bound):
            continue
        # bubblewrap would create the missing parents as 0700; the kernel's uid must pass.
        for parent in reversed(Path(path).parents[:-1]):
            if str(parent) not in made and not any(str(parent) == b or str(parent).startswith(b + "/") for b in bound):
                made.add(str(parent))
                cmd += ["--perms", "0755", "--dir", str(parent)]
        cmd += ["--ro-bind", path, path]
        bound.append(path)
    cmd += ["--bind", sockdir, sockdir, "--chdir", SANDBOX_HOME, "--clearenv"]
    for key, value in env.items():
        cmd += ["--setenv", key, value]
    return [*cmd, "--", *inner]


def launcher_config(
    isolation: Isolation, config: SandboxConfig, uid: int | None, *, home: str, sockdir: str,
) -> dict[str, Any]:
    """What ``_launch`` applies before ipykernel starts.

    Landlock (where the Linux kernel has it) confines writes to the kernel's own home
    (and under bubblewrap its private /tmp and /dev/shm), and in the socket dir to new
    sockets: without bubblewrap the host's /tmp and /dev/shm are out of reach too, and
    so are TCP (under seccomp's filter), the host's abstract unix sockets and signals.
    """
    outside = isolation.mode != "bwrap"
    writable = [home] if outside else [home, "/tmp", "/dev/shm"]
    cfg: dict[str, Any] = {
        "rlimits": rlimits(config, count_existing=outside and uid is None and os.geteuid() != 0),
        "uid": uid, "gid": uid,
        "reaper": outside,
        "landlock": (
            None if isolation.mode == "none"
            else {"write": writable, "sockets": [sockdir], "devices": ["/dev"], "no_tcp": outside}
        ),
    }
    if outside:
        cfg["parent_pid"] = os.getpid()
        if isolation.disk_mb is not None:
            cfg["tmpfs"] = {"path": home, "size": isolation.disk_mb * 2**20}
    return cfg
