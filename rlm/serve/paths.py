"""Document paths a request names, confined to the server's allowed roots.

A string check alone is not enough: a link inside a root may point anywhere, and a
name may be swapped for a link between a check and an open. So the path is walked one
component at a time from a descriptor of the root, each with ``O_NOFOLLOW``: no ``..``,
no link followed, nothing but directories on the way and a regular file or a directory
at the end. A directory is then read through ``/proc/self/fd/N``, which the kernel
resolves to the very directory checked, not to a name looked up again. A file is loaded
by its real path, and the loaded file's device and inode must be the ones checked (rlm's
file contexts check them again at every open, so a later swap is refused too); a file
type that carries no identity is loaded through ``/proc/self/fd/N/name`` instead.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass

from .errors import RequestError

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_LEAF = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | getattr(os, "O_NOCTTY", 0)
#: Directory walks for the size check stop after this many entries.
MAX_ENTRIES = 100_000


@dataclass
class Confined:
    """An open document under an allowed root: the descriptor of a directory, or of a file's parent.

    ``identity`` is the (device, inode) checked. Close it when the run is over.
    """

    fd: int
    name: str
    is_dir: bool
    size: int
    identity: tuple[int, int]
    real: str
    #: Loaded, and no longer read through ``fd`` (which may then be closed at once).
    done: bool = False

    @property
    def path(self) -> str:
        """A path that reaches exactly the checked directory, or the file's name in its checked parent."""
        return f"/proc/self/fd/{self.fd}" if self.is_dir else f"/proc/self/fd/{self.fd}/{self.name}"

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def confine(requested: str, roots: tuple[str, ...], max_bytes: int) -> Confined:
    """Open ``requested`` (relative to the first root, or absolute under one) without leaving the roots.

    Raises ``RequestError`` (400 for a path outside, 404 for a missing one, 413 when the
    file, or a directory's regular files together, hold more than ``max_bytes``).
    """
    if not roots:
        raise RequestError(400, "this server takes no document paths (it has no allowed roots: --root DIR)",
                           param="path")
    if not isinstance(requested, str) or not requested or "\x00" in requested:
        raise RequestError(400, "a document path must be a non-empty string", param="path")
    root, parts = _split(requested, roots)
    parent, fd = -1, os.open(root, _DIR)
    try:
        for i, part in enumerate(parts):
            if parent >= 0:
                os.close(parent)
            parent, fd = fd, -1
            fd = _step(parent, part, i == len(parts) - 1, requested)
        info = os.fstat(fd)
        identity = (info.st_dev, info.st_ino)
        if stat.S_ISDIR(info.st_mode):
            confined = Confined(fd, parts[-1] if parts else os.path.basename(root), True,
                                _tree_size(fd, max_bytes, requested), identity, os.path.join(root, *parts))
            fd = -1
        elif stat.S_ISREG(info.st_mode):
            confined = Confined(parent, parts[-1], False, info.st_size, identity, os.path.join(root, *parts))
            parent = -1
        else:
            raise RequestError(400, f"document path {requested!r} is neither a regular file nor a directory",
                               param="path")
    finally:
        for left in (parent, fd):
            if left >= 0:
                os.close(left)
    if confined.size > max_bytes:
        confined.close()
        raise RequestError(413, f"document {requested!r} holds {confined.size:,} bytes, over this server's limit "
                                f"of {max_bytes:,}", param="path", code="context_too_large")
    return confined


def _split(requested: str, roots: tuple[str, ...]) -> tuple[str, list[str]]:
    """The root a path lies under and its components below it; ``..`` anywhere is refused."""
    parts = [p for p in requested.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise RequestError(400, f"document path {requested!r} may not contain '..'", param="path")
    if not requested.startswith("/"):
        return roots[0], parts
    for root in roots:
        below = [p for p in root.split("/") if p]
        if parts[:len(below)] == below:
            return root, parts[len(below):]
    raise RequestError(400, f"document path {requested!r} is outside this server's allowed roots", param="path")


def _step(fd: int, part: str, last: bool, requested: str) -> int:
    """Open one component below ``fd``, never through a link; only the last may be a file."""
    try:
        try:
            return os.open(part, _DIR, dir_fd=fd)
        except NotADirectoryError:
            if not last:
                raise
            return os.open(part, _LEAF, dir_fd=fd)
    except OSError as exc:
        raise _refusal(exc, requested) from None


def _refusal(exc: OSError, requested: str) -> RequestError:
    if exc.errno == errno.ELOOP or exc.errno == errno.ENOTDIR:
        return RequestError(400, f"document path {requested!r} goes through a symbolic link or a file; "
                                 "links are not followed", param="path")
    if exc.errno == errno.ENOENT:
        return RequestError(404, f"no document {requested!r} under the allowed roots", param="path",
                            code="document_not_found")
    return RequestError(400, f"document {requested!r} cannot be opened ({exc.strerror})", param="path")


def _tree_size(fd: int, max_bytes: int, requested: str) -> int:
    """Bytes of the regular files below a directory, links not followed; stops once over ``max_bytes``."""
    total = entries = 0
    stack = [os.dup(fd)]
    try:
        while stack and total <= max_bytes:
            current = stack.pop()
            try:
                for entry in os.scandir(current):
                    entries += 1
                    if entries > MAX_ENTRIES:
                        raise RequestError(413, f"directory {requested!r} has more than {MAX_ENTRIES:,} entries",
                                           param="path", code="context_too_large")
                    info = entry.stat(follow_symlinks=False)
                    if stat.S_ISREG(info.st_mode):
                        total += info.st_size
                    elif stat.S_ISDIR(info.st_mode):
                        try:
                            stack.append(os.open(entry.name, _DIR, dir_fd=current))
                        except OSError:
                            continue
            finally:
                os.close(current)
    finally:
        for left in stack:
            os.close(left)
    return total
