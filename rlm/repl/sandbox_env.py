"""How a sandbox kernel is launched: its limits, environment, user and bubblewrap view.

Pure decisions (no processes of their own except one cached bubblewrap probe), so
the kernel manager and the docs' isolation report agree on what is isolated.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import secrets
import shutil
import site
import stat
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from . import procs

log = logging.getLogger("rlm")

#: Variables the kernel may inherit from the host; everything else is dropped.
ENV_ALLOW = ("LANG", "LC_ALL", "LC_CTYPE", "TZ")
#: Names that never reach the kernel, even when passed in ``extra_env``.
SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL)S?$|^OPENAI_|^AWS_|^ANTHROPIC_", re.IGNORECASE)
#: Where the uids of per-kernel users are drawn from when the host runs as root.
UID_RANGE = (200_000_000, 1_900_000_000)
#: The kernel's home and working directory under bubblewrap (a size-limited tmpfs).
SANDBOX_HOME = "/sandbox"
_SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc")


@dataclass(frozen=True)
class SandboxConfig:
    """Limits and isolation of the kernel sandbox (``RLM(sandbox=SandboxConfig(...))``).

    ``isolation``: ``"auto"`` uses bubblewrap when it is installed and works, else runs
    the kernel without it (and says what that leaves open); ``"bwrap"`` requires it;
    ``"none"`` never uses it. ``memory_mb`` is the address-space limit of the kernel
    (an idle kernel already maps about 0.8 GiB), ``cpu_seconds`` counts a kernel's whole
    life (steps are bounded by the step timeout instead), ``max_processes`` counts
    threads too, ``disk_mb`` is the size of the writable temp dir under bubblewrap.
    """

    isolation: str = "auto"
    memory_mb: int = 4096
    cpu_seconds: int = 3600
    max_processes: int = 128
    max_file_mb: int = 1024
    disk_mb: int = 512
    step_timeout: float = 600.0
    start_timeout: float = 60.0
    interrupt_grace: float = 3.0
    max_bridge_mb: int = 256
    max_capture_chars: int = 2_000_000
    max_idle_kernels: int = 2
    extra_env: Mapping[str, str] = field(default_factory=dict)
    python: str = field(default_factory=lambda: sys.executable)

    def __post_init__(self) -> None:
        if self.isolation not in ("auto", "bwrap", "none"):
            raise ConfigError(f"isolation={self.isolation!r}: choose 'auto', 'bwrap' or 'none'")
        for name in ("memory_mb", "cpu_seconds", "max_processes", "max_file_mb", "disk_mb", "max_bridge_mb"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"SandboxConfig.{name} must be a positive int, got {value!r}")
        if self.memory_mb < 1024:
            raise ConfigError("SandboxConfig.memory_mb must be at least 1024: an idle kernel maps about 800 MiB")
        leaking = sorted(k for k in self.extra_env if SECRET_NAME.search(k))
        if leaking:
            raise ConfigError(
                f"extra_env would pass {leaking} into the sandbox, which never holds secrets; "
                "the host makes every model call, so the kernel does not need keys"
            )


@dataclass(frozen=True)
class Isolation:
    """What a kernel launched this way is protected from; docs/security.md explains each."""

    mode: str  # "bwrap" or "none"
    separate_user: bool  # runs under its own uid (host is root)
    filesystem_hidden: bool  # sees only system dirs, Python and its temp dir, read-only
    network_blocked: bool
    pid_namespace: bool  # cannot see or signal host processes
    process_limit: bool  # RLIMIT_NPROC applies (it never does to uid 0)

    def describe(self) -> str:
        def yes(flag: bool) -> str:
            return "isolated" if flag else "NOT isolated"

        return "; ".join([
            f"sandbox={self.mode}",
            "environment: scrubbed",
            f"filesystem: {yes(self.filesystem_hidden)}",
            f"network: {yes(self.network_blocked)}",
            f"host processes: {yes(self.pid_namespace or self.separate_user)}",
            f"process count: {'limited' if self.process_limit else 'NOT limited'}",
        ])


@functools.lru_cache(maxsize=4)
def bwrap_path() -> str | None:
    """The bubblewrap binary, if it is installed and can create a sandbox here."""
    found = shutil.which("bwrap")
    if not found:
        return None
    probe = [found, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--unshare-pid",
             "--unshare-net", "--die-with-parent"]
    if os.geteuid() != 0:
        probe.append("--unshare-user")
    try:
        ok = subprocess.run([*probe, "true"], check=False, capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        ok = False
    if not ok:
        log.warning("rlm: bubblewrap is installed but cannot create a sandbox here (user namespaces disabled?)")
    return found if ok else None


def _world_traversable(path: str) -> bool:
    """Can a stranger reach ``path``? Every directory on the way must be o+x."""
    current = Path(path).resolve()
    for part in (current, *current.parents):
        try:
            if not os.stat(part).st_mode & stat.S_IXOTH:
                return False
        except OSError:
            return False
    return True


def python_dirs(python: str) -> list[str]:
    """Directories the kernel's interpreter and its packages live in (bound read-only)."""
    dirs = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix,
            str(Path(python).parent), str(Path(python).resolve().parent.parent)}
    dirs.update(site.getsitepackages())
    user_site = site.getusersitepackages()
    if isinstance(user_site, str):
        dirs.add(user_site)
    return sorted(d for d in dirs if d and os.path.isdir(d))


def resolve(config: SandboxConfig) -> Isolation:
    """Decide how kernels of ``config`` run on this machine."""
    if os.name != "posix":
        raise ConfigError("sandbox='kernel' needs Linux (or another POSIX system); use RLM(sandbox='local') here")
    root = os.geteuid() == 0
    use_bwrap = config.isolation != "none" and bwrap_path() is not None
    if config.isolation == "bwrap" and not use_bwrap:
        raise ConfigError(
            "SandboxConfig(isolation='bwrap') but bubblewrap is not usable here; install it "
            "(Debian/Ubuntu: apt-get install bubblewrap) or use isolation='auto'"
        )
    separate = root and _span() is not None
    if use_bwrap:
        return Isolation("bwrap", separate, True, True, True, True)
    separate = separate and all(_world_traversable(d) for d in python_dirs(config.python))
    return Isolation("none", separate, False, False, False, separate or not root)


def usable_ids(ranges: list[tuple[int, int, int]]) -> tuple[int, int] | None:
    """The widest stretch of ids a kernel may take, from a ``/proc/self/uid_map``.

    Ids below 10,000 belong to accounts; in a rootless container only a few thousand ids
    may be mapped at all, and an unmapped uid cannot be used.
    """
    best: tuple[int, int] | None = None
    for inside, _outside, count in ranges:
        low, high = max(inside, 10_000), min(inside + count, UID_RANGE[1])
        if high > UID_RANGE[0] + 1000:
            low = max(low, UID_RANGE[0])
        if high - low >= 1000 and (best is None or high - low > best[1] - best[0]):
            best = (low, high)
    return best


def _mapped(kind: str) -> tuple[int, int] | None:
    try:
        with open(f"/proc/self/{kind}_map") as fh:
            ranges = [(int(a), int(b), int(c)) for a, b, c in (line.split() for line in fh if line.strip())]
    except OSError:
        return UID_RANGE
    return usable_ids(ranges)


_taken: set[int] = set()


def _span() -> tuple[int, int] | None:
    """Ids usable as both uid and gid here, if at least 1,000 of them."""
    uids, gids = _mapped("uid"), _mapped("gid")
    if uids is None or gids is None:
        return None
    low, high = max(uids[0], gids[0]), min(uids[1], gids[1])
    return (low, high) if high - low >= 1000 else None


def pick_uid() -> int | None:
    """A fresh uid for one kernel, so its processes are countable and killable as a group.

    None when this user namespace has no spare ids (the kernel then keeps the host's).
    A uid that owns a process, or one this process already gave out, is never reused.
    """
    span = _span()
    if span is None:
        return None
    low, high = span
    for _ in range(100):
        uid = low + secrets.randbelow(high - low)
        if uid != 65_534 and uid not in _taken and not procs.by_uid(uid):
            _taken.add(uid)
            return uid
    return None


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


def bwrap_command(config: SandboxConfig, rundir: str, env: Mapping[str, str], inner: list[str]) -> list[str]:
    """bubblewrap around ``inner``: read-only system and Python, a private /tmp, no network."""
    bwrap = bwrap_path()
    assert bwrap is not None
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
    # The work dir is its own tmpfs: the run dir (sockets, connection file) lives under the
    # host's /tmp and must not sit inside what a reset empties.
    small = str(64 * 2**20)
    cmd += ["--proc", "/proc", "--dev", "/dev",
            "--perms", "1777", "--size", str(config.disk_mb * 2**20), "--tmpfs", SANDBOX_HOME,
            "--perms", "1777", "--size", small, "--tmpfs", "/tmp",
            "--perms", "1777", "--size", small, "--tmpfs", "/dev/shm",
            "--bind", rundir, rundir, "--chdir", SANDBOX_HOME, "--clearenv"]
    # After the tmpfs mounts: a venv or a checkout under /tmp must stay visible.
    made: set[str] = set()
    for path in python_dirs(config.python):
        if any(path == b or path.startswith(b + "/") for b in bound):
            continue
        # bubblewrap would create the missing parents as 0700; the kernel's uid must pass.
        for parent in reversed(Path(path).parents[:-1]):
            if str(parent) not in made:
                made.add(str(parent))
                cmd += ["--perms", "0755", "--dir", str(parent)]
        cmd += ["--ro-bind", path, path]
        bound.append(path)
    for key, value in env.items():
        cmd += ["--setenv", key, value]
    return [*cmd, "--", *inner]


def launcher_config(isolation: Isolation, config: SandboxConfig, uid: int | None) -> dict[str, Any]:
    """What ``_kernel_side`` applies before ipykernel starts."""
    outside = isolation.mode == "none"
    cfg: dict[str, Any] = {
        "rlimits": rlimits(config, count_existing=outside and uid is None and os.geteuid() != 0),
        "uid": uid, "gid": uid,
        "subreaper": outside,
    }
    if outside:
        cfg["parent_pid"] = os.getpid()
    return cfg
