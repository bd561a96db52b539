"""Host-side file operations that a hostile kernel cannot turn against the host.

The kernel may plant symlinks, FIFOs or million-entry trees wherever it can write.
So the host creates what it writes with ``O_EXCL|O_NOFOLLOW|O_NONBLOCK`` in
directories only the host can write, changes ownership and mode on the open file
descriptor (never by name), reads kernel-reachable files through descriptors it has
checked, and deletes trees iteratively, descriptor-relative, without following links.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
import time

log = logging.getLogger("rlm")

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def set_owner(fd: int, gid: int | None, mode: int) -> None:
    """Give the kernel's group access to an open file or directory; the host keeps ownership."""
    if gid is not None:
        os.fchown(fd, os.geteuid(), gid)
    os.fchmod(fd, mode)


def open_dir(path: str) -> int:
    """A descriptor of ``path``, which must be a real directory (not a link to one)."""
    return os.open(path, _DIR)


def make_dir(parent_fd: int, name: str, *, gid: int | None, mode: int, owner: int | None = None) -> None:
    """Create ``name`` under ``parent_fd``; ``owner`` hands it to the kernel's uid."""
    os.mkdir(name, 0o700, dir_fd=parent_fd)
    fd = os.open(name, _DIR, dir_fd=parent_fd)
    try:
        if owner is not None:
            os.fchown(fd, owner, owner if gid is None else gid)
        elif gid is not None:
            os.fchown(fd, os.geteuid(), gid)
        os.fchmod(fd, mode)
    finally:
        os.close(fd)


def write_new(parent_fd: int, name: str, data: bytes, *, gid: int | None, mode: int) -> None:
    """Write a file that must not exist yet; a planted link or FIFO makes this fail, never redirect."""
    fd = os.open(name, _NEW, 0o600, dir_fd=parent_fd)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view[: 1 << 24]) :]
        set_owner(fd, gid, mode)
    except BaseException:
        os.close(fd)
        unlink_quietly(parent_fd, name)
        raise
    os.close(fd)


def unlink_quietly(parent_fd: int, name: str) -> None:
    try:
        os.unlink(name, dir_fd=parent_fd)
    except OSError:
        pass


def read_tail(path: str, limit: int) -> bytes:
    """The last ``limit`` bytes of a regular file, or b"" (a FIFO or a link is never read)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return b""
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return b""
        os.lseek(fd, max(0, info.st_size - limit), os.SEEK_SET)
        return os.read(fd, limit)
    except OSError:
        return b""
    finally:
        os.close(fd)


def freeze_dir(path: str, gid: int | None) -> bool:
    """Take a directory back from the kernel: host-owned, readable by its group, writable by nobody else.

    Entries already in it stay as they are, and the kernel can no longer add, rename
    or replace any. False when ``path`` is no longer a real directory.
    """
    try:
        fd = open_dir(path)
    except OSError:
        return False
    try:
        set_owner(fd, gid, 0o750 if gid is not None else 0o700)
    finally:
        os.close(fd)
    return True


class TreeChanged(OSError):
    """A directory changed under ``remove_tree`` (moved while it ran): it stopped rather than guess."""


def remove_tree(path: str, *, deadline_s: float = 60.0) -> bool:
    """Delete ``path`` and everything under it; never raises, never follows a link, never recurses.

    One directory descriptor is open at a time, so a tree thousands of levels deep
    costs neither the stack nor the descriptor limit; going back up through ``..``
    is checked against the device and inode seen on the way down. Returns True once
    ``path`` is gone.
    """
    parent, name = os.path.split(os.path.abspath(path))
    try:
        top = open_dir(parent)
    except OSError:
        return not os.path.lexists(path)
    try:
        _remove_under(top, name, time.monotonic() + deadline_s)
    except OSError as exc:
        log.warning("rlm: could not remove %s completely: %s", path, exc)
    finally:
        os.close(top)
    return not os.path.lexists(path)


def _remove_under(top: int, name: str, deadline: float) -> None:
    try:
        fd = os.open(name, _DIR, dir_fd=top)
    except FileNotFoundError:
        return
    except OSError:  # not a directory, or a link: the entry itself goes
        os.unlink(name, dir_fd=top)
        return
    seen = [os.fstat(fd)]
    names: list[str] = []
    try:
        while True:
            if time.monotonic() > deadline:
                raise TimeoutError("gave up: the tree is too large to delete in time")
            sub = _clear_files(fd)
            if sub is not None:
                try:
                    child = os.open(sub, _DIR, dir_fd=fd)
                except FileNotFoundError:  # another remover (a second pool's remove_stale) was first
                    continue
                except OSError:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(sub, dir_fd=fd)
                    continue
                os.close(fd)
                fd = child
                names.append(sub)
                seen.append(os.fstat(fd))
                continue
            if not names:
                break
            up = os.open("..", _DIR, dir_fd=fd)
            os.close(fd)
            fd = up
            seen.pop()
            here = os.fstat(fd)
            if (here.st_dev, here.st_ino) != (seen[-1].st_dev, seen[-1].st_ino):
                raise TreeChanged("a directory was moved during the delete")
            with contextlib.suppress(FileNotFoundError):
                os.rmdir(names.pop(), dir_fd=fd)
    finally:
        os.close(fd)
    with contextlib.suppress(FileNotFoundError):
        os.rmdir(name, dir_fd=top)


def _clear_files(fd: int) -> str | None:
    """Unlink every non-directory entry of ``fd``; return the first subdirectory, if any."""
    with os.scandir(fd) as entries:
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    return entry.name
                os.unlink(entry.name, dir_fd=fd)
            except FileNotFoundError:
                continue
    return None
