"""A sandbox kernel's run directory: what the host writes, what the kernel may write, and cleanup.

Layout (``$TMPDIR/rlm-sbx-<host pid>-<id>-*``, owned by the host, mode 0750 with the
kernel's group, so the kernel can read and list it but not change it; Python lists a
directory it imports from)::

    _rlm_launch.py, _rlm_in_kernel.py,    0444  the launcher, what root code sees, the shared step
    _rlm_steps.py, _rlm_checks.py,              runner, its argument checks and plain-data codec,
    _rlm_plain.py, _rlm_confine.py,             the Landlock/seccomp layers, chunk and
    _rlm_chunking.py, _rlm_counter.py,          count_tokens, how a context is read, the checks
    _rlm_reading.py, _rlm_images.py,            of sub-calls' images, the process that outlives
    _rlm_reaper.py, _rlm_documents/             the kernel's (no bubblewrap), the document readers
    connection.json                       0440  zmq ports and key (group: the kernel)
    bridge.sock                           0660  the host's callback server (group: the kernel)
    kernel.log                            0600  the kernel's start-up stderr (host only)
    spec/                                 0700  the kernelspec (host only)
    sock/                                       zmq sockets: the kernel's until they exist, then frozen
    work/                                       the kernel's home without bubblewrap

The host never opens by name anything the kernel can write: ``sock/`` is taken back
(``freeze``) before any model code runs, and ``work/`` is only ever deleted, with
``safe_fs.remove_tree``.
"""

from __future__ import annotations

import logging
import os
import socket
import tempfile
import threading
import time
from pathlib import Path

from . import safe_fs

log = logging.getLogger("rlm")

#: Run directories are named ``rlm-sbx-<host pid>-<id>-*`` so leftovers of a killed host can be found.
RUNDIR_PREFIX = "rlm-sbx-"
#: Copied into each run directory: the launcher the kernelspec runs, and what root code sees.
KERNEL_FILES = {"_rlm_launch.py": "_launch.py", "_rlm_in_kernel.py": "in_kernel.py",
                "_rlm_confine.py": "confine.py", "_rlm_reaper.py": "reaper.py",
                "_rlm_steps.py": "../steps.py", "_rlm_checks.py": "../checks.py", "_rlm_plain.py": "../plain.py",
                "_rlm_chunking.py": "../chunking.py",
                "_rlm_counter.py": "../../lm/counter.py", "_rlm_images.py": "../../lm/images.py",
                "_rlm_reading.py": "../reading.py"}
#: Packages copied the same way: the document readers (``rlm/repl/documents``), imported as ``_rlm_documents``.
KERNEL_PACKAGES = {"_rlm_documents": "../documents"}
_LOG_TAIL = 2000


class RunDir:
    """The files of one sandbox kernel. ``gid`` is the kernel's group when it has a uid of its own."""

    def __init__(self, sandbox_id: str, *, uid: int | None) -> None:
        self.uid = uid
        self.gid = uid
        self.path = tempfile.mkdtemp(prefix=f"{RUNDIR_PREFIX}{os.getpid()}-{sandbox_id}-")
        self.sock = os.path.join(self.path, "sock")
        self.work = os.path.join(self.path, "work")
        self.bridge = os.path.join(self.path, "bridge.sock")
        self.connection_file = os.path.join(self.path, "connection.json")
        self.log_file = os.path.join(self.path, "kernel.log")
        self.spec_dir = os.path.join(self.path, "spec")
        self._lock = threading.Lock()
        self._fd: int | None = safe_fs.open_dir(self.path)
        self._readable = 0o440 if self.gid is not None else 0o400
        safe_fs.set_owner(self._fd, self.gid, 0o750 if self.gid is not None else 0o700)

    @property
    def fd(self) -> int:
        if self._fd is None:
            raise OSError("the sandbox's run directory was removed")
        return self._fd

    def prepare(self, *, with_work: bool) -> None:
        """The kernel files, its socket dir and (without bubblewrap) its home."""
        here = Path(__file__).parent
        for name, source in KERNEL_FILES.items():
            safe_fs.write_new(self.fd, name, here.joinpath(source).read_bytes(), gid=None, mode=0o444)
        for name, source in KERNEL_PACKAGES.items():
            self._copy_package(name, here.joinpath(source))
        safe_fs.make_dir(self.fd, "sock", gid=self.gid, mode=0o700, owner=self.uid)
        if with_work:
            safe_fs.make_dir(self.fd, "work", gid=self.gid, mode=0o700, owner=self.uid)
        safe_fs.make_dir(self.fd, "spec", gid=None, mode=0o700)

    def _copy_package(self, name: str, source: Path) -> None:
        """A package's modules, read-only, in a directory the kernel may list and read but not change."""
        safe_fs.make_dir(self.fd, name, gid=None, mode=0o755)
        fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=self.fd)
        try:
            for module in sorted(source.glob("*.py")):
                safe_fs.write_new(fd, module.name, module.read_bytes(), gid=None, mode=0o444)
        finally:
            os.close(fd)

    def write_spec(self, text: str) -> str:
        """The kernelspec jupyter_client reads (host only); returns the kernel dir it lives in."""
        fd = safe_fs.open_dir(self.spec_dir)
        try:
            safe_fs.make_dir(fd, "rlm-sandbox", gid=None, mode=0o700)
            inner = os.open("rlm-sandbox", os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            try:
                safe_fs.write_new(inner, "kernel.json", text.encode(), gid=None, mode=0o600)
            finally:
                os.close(inner)
        finally:
            os.close(fd)
        return self.spec_dir

    def share_connection_file(self) -> None:
        """jupyter_client wrote it 0600 in our own directory; let the kernel's group read it."""
        fd = os.open(self.connection_file, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            safe_fs.set_owner(fd, self.gid, self._readable)
        finally:
            os.close(fd)

    def share_socket(self, path: str) -> None:
        """The bridge socket the host just bound here: connectable by the kernel, no one else."""
        if os.path.dirname(path) != self.path:
            raise ValueError("the bridge socket must live in the run directory")
        name = os.path.basename(path)
        if self.gid is not None:
            os.chown(name, os.geteuid(), self.gid, dir_fd=self.fd, follow_symlinks=False)
        os.chmod(name, 0o660 if self.gid is not None else 0o600, dir_fd=self.fd)

    def open_log(self) -> int:
        """A new, host-only log file for the kernel's stderr."""
        return os.open("kernel.log", os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                       0o600, dir_fd=self.fd)

    def log_tail(self) -> str:
        return safe_fs.read_tail(self.log_file, _LOG_TAIL).decode("utf-8", "replace").strip()

    def sockets_ready(self, names: list[str]) -> bool:
        """Has the kernel bound every socket? Checked with lstat: a link is never a socket."""
        import stat

        for name in names:
            try:
                if not stat.S_ISSOCK(os.lstat(os.path.join(self.sock, name)).st_mode):
                    return False
            except OSError:
                return False
        return True

    def freeze_sockets(self) -> bool:
        """Take ``sock/`` back once the kernel has bound its sockets (only with a uid of its own)."""
        if self.uid is None:
            return True
        return safe_fs.freeze_dir(self.sock, self.gid)

    def remove(self) -> None:
        """Everything goes, however deep or strange the kernel made its part. Never raises; any thread."""
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
            safe_fs.remove_tree(self.path)


def remove_stale(deadline_s: float = 10.0) -> int:
    """Remove run directories whose host process is gone (it was SIGKILLed and could not clean up).

    Only directories this user owns are touched; one that cannot be removed is left
    for later and never stops a new RLM from starting.
    """
    removed = 0
    base = tempfile.gettempdir()
    stop = time.monotonic() + deadline_s
    try:
        names = [n for n in os.listdir(base) if n.startswith(RUNDIR_PREFIX)]
    except OSError:
        return 0
    for name in names:
        if time.monotonic() > stop:
            break
        path = os.path.join(base, name)
        pid = name[len(RUNDIR_PREFIX):].split("-", 1)[0]
        try:
            if os.lstat(path).st_uid != os.geteuid() or not os.path.isdir(path) or os.path.islink(path):
                continue
        except OSError:
            continue
        if not pid.isdigit() or os.path.exists(f"/proc/{pid}") or _bridge_answers(path):
            continue
        if safe_fs.remove_tree(path, deadline_s=max(0.1, stop - time.monotonic())):
            removed += 1
    return removed


def _bridge_answers(rundir: str) -> bool:
    """A host in another pid namespace sharing this /tmp still serves its bridge: keep its files."""
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(0.5)
        try:
            sock.connect(os.path.join(rundir, "bridge.sock"))
        except OSError:
            return False
    return True
