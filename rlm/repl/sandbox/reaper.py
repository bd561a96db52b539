"""The process the host launches without bubblewrap: it forks the kernel and outlives every process under it.

Copied into the kernel's run directory as ``_rlm_reaper.py`` and run by the launcher
first; standard library only. Without a pid namespace nothing ends a kernel's children
when the host is SIGKILLed: ``PR_SET_PDEATHSIG`` takes the kernel with the host, but
is not inherited, so a ``subprocess.Popen`` of root code would live on, re-parented to
init. So the launcher forks: the child becomes the kernel, the parent stays behind as
a subreaper, which every orphan of the kernel's tree is re-parented to (none escapes its
view, whatever it double-forks or ``setsid``s). It waits for either the host to die
(a pidfd of the host, else polling its parent pid) or the kernel to exit, then kills
every process under it until it has no child left, and exits with the kernel's status.
With a uid of its own the kernel cannot signal it: it keeps the host's uid, outside the
kernel's Landlock domain.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
from collections.abc import Callable

#: How often the host is checked when this Linux has no pidfd to wait on.
_POLL_MS = 200
#: Signals that tell the reaper to stop (jupyter_client's terminate): it takes everything under it along.
_STOP = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)


def fork_kernel(host: int, prctl: Callable[[int, int], None]) -> int:
    """Fork; in the child (the kernel) return the watcher's pid, in the parent watch and never return."""
    prctl(36, 1)  # PR_SET_CHILD_SUBREAPER: orphans below come to us, not to init
    host_fd = _pidfd(host)
    if os.getppid() != host:  # the host died before it could be watched
        os._exit(70)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    # Handlers that do nothing but write the signal's number to wake_w (set_wakeup_fd): the
    # poll below reads it, and no exception can come between a stop and the killing.
    before = {signum: signal.signal(signum, _noted) for signum in (signal.SIGCHLD, *_STOP)}
    signal.set_wakeup_fd(wake_w)
    watcher = os.getpid()
    kernel = os.fork()
    if kernel == 0:  # the kernel gets the handlers back (ipykernel's interrupts are Python's SIGINT handler)
        signal.set_wakeup_fd(-1)
        for signum, handler in before.items():
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)
        for fd in (wake_r, wake_w, host_fd):
            if fd is not None:
                os.close(fd)
        return watcher
    status = _watch(kernel, host, host_fd, wake_r)
    _end_all()
    os._exit(status)


def _noted(_signum: int, _frame: object) -> None:
    """The signal's number is already in the wakeup pipe."""


def _pidfd(pid: int) -> int | None:
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


def _watch(kernel: int, host: int, host_fd: int | None, wake: int) -> int:
    """Until the kernel exits (its status, signals as 128+N) or the host dies (137)."""
    poller = select.poll()
    poller.register(wake, select.POLLIN)
    if host_fd is not None:
        poller.register(host_fd, select.POLLIN)
    while True:
        ready = {fd for fd, _ in poller.poll(None if host_fd is not None else _POLL_MS)}
        if wake in ready:
            with contextlib.suppress(BlockingIOError):
                stops = [n for n in os.read(wake, 512) if n in _STOP]
                if stops:
                    return 128 + stops[0]
        while True:  # reap the kernel and any orphan re-parented to us
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return 1
            if pid == 0:
                break
            if pid == kernel:
                code = os.waitstatus_to_exitcode(status)
                return 128 - code if code < 0 else code
        if (host_fd is not None and host_fd in ready) or os.getppid() != host:
            return 128 + signal.SIGKILL


def _end_all() -> None:
    """SIGKILL everything under this process until it has no child left (then nothing is under it)."""
    me = os.getpid()
    while True:
        for pid in _descendants(me):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            return


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as fh:
                raw = fh.read()
        except OSError:
            continue
        ppid = int(raw[raw.rfind(b")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(name))
    found, stack = [], [root]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found
