"""Finding and killing a sandbox's processes through /proc (Linux), from the host side.

Root code can rewrite anything inside its kernel, so the host never asks the kernel
which processes it started: it looks them up itself, by the kernel's own uid when it
has one, else as descendants of the process the host launched.
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Iterable
from dataclasses import dataclass

log = logging.getLogger("rlm")


@dataclass(frozen=True, slots=True)
class ProcInfo:
    pid: int
    ppid: int
    uid: int
    state: str
    rss_pages: int


def read(pid: int) -> ProcInfo | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            raw = fh.read().decode("ascii", "replace")
        uid = os.stat(f"/proc/{pid}").st_uid
    except OSError:
        return None
    # The command name may contain spaces and parentheses: split after the last ')'.
    fields = raw[raw.rfind(")") + 2 :].split()
    return ProcInfo(pid, int(fields[1]), uid, fields[0], int(fields[21]))


def all_pids() -> list[int]:
    """Every pid in /proc; empty where there is no /proc (then strays cannot be found)."""
    try:
        return [int(name) for name in os.listdir("/proc") if name.isdigit()]
    except FileNotFoundError:
        return []


def by_uid(uid: int) -> list[ProcInfo]:
    """Live (not zombie) processes of ``uid``; one stat per process, the cheap filter first."""
    found = []
    for pid in all_pids():
        try:
            if os.stat(f"/proc/{pid}").st_uid != uid:
                continue
        except OSError:
            continue
        info = read(pid)
        if info is not None and info.uid == uid and info.state not in "ZX":
            found.append(info)
    return found


def descendants(root: int) -> list[ProcInfo]:
    """Live processes under ``root`` (not ``root`` itself)."""
    infos = [i for i in (read(p) for p in all_pids()) if i is not None]
    children: dict[int, list[ProcInfo]] = {}
    for info in infos:
        children.setdefault(info.ppid, []).append(info)
    found: list[ProcInfo] = []
    stack = [root]
    while stack:
        for child in children.get(stack.pop(), []):
            if child.state not in "ZX":
                found.append(child)
            stack.append(child.pid)
    return found


def kill(pids: Iterable[int]) -> int:
    """SIGKILL each pid; returns how many signals were delivered."""
    sent = 0
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
            sent += 1
        except OSError:
            pass
    return sent


def kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except OSError:
        pass


class SandboxProcesses:
    """The processes of one sandbox, found by its uid or as descendants of what the host launched."""

    def __init__(self, uid: int | None) -> None:
        self.uid = uid
        self.launched: int | None = None
        #: The kernel's own processes once it is up; anything else is a stray of some step.
        self.known: set[int] = set()

    def find(self) -> list[ProcInfo]:
        if self.uid is not None:
            return by_uid(self.uid)
        if self.launched is None:
            return []
        return descendants(self.launched)

    def pids(self) -> list[int]:
        return [p.pid for p in self.find()]

    def mark_known(self) -> set[int]:
        self.known = set(self.pids())
        return self.known

    def strays(self) -> list[int]:
        """Processes root code started that are still alive (none before start-up ends)."""
        if not self.known:
            return []
        return [pid for pid in self.pids() if pid not in self.known]

    def kill_strays(self) -> int:
        """Kill what a step left behind (background, detached, forked); keep the kernel."""
        killed = 0
        for _ in range(50):
            strays = self.strays()
            if not strays:
                break
            killed += kill(strays)
        return killed

    def over_limits(self, max_processes: int, memory_mb: int) -> str | None:
        """What the sandbox's processes exceed together, if anything."""
        found = self.find()
        if len(found) > max_processes:
            return f"The step started more than {max_processes} processes"
        if sum(p.rss_pages for p in found) * os.sysconf("SC_PAGE_SIZE") > memory_mb * 2**20:
            return f"The step's processes used more than {memory_mb} MiB together"
        return None

    def kill_all(self) -> None:
        """SIGKILL every process, found first and killed together, until none is left; the launched one last.

        Without bubblewrap the launched process is the reaper (``reaper.py``), which every
        orphan under it is re-parented to: alive until the rest is gone, it keeps them in
        sight. Never raises.
        """
        try:
            for _ in range(20):
                pids = self.pids()
                if not pids or not kill(pids):
                    break
            if self.launched is not None:
                launched = read(self.launched)
                if launched is not None and launched.state not in "ZX":
                    kill([launched.pid])
                kill_group(self.launched)
        except Exception:
            log.exception("rlm: killing a sandbox's processes failed")


def seccomp_filtered(pid: int) -> bool:
    """Does every thread of ``pid`` run under a seccomp filter? Read by the host in /proc, not asked."""
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return False
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/status") as fh:
                fields = dict(line.split(":", 1) for line in fh if ":" in line)
        except OSError:
            return False
        if fields.get("Seccomp", "").strip() != "2":
            return False
    return bool(tasks)
