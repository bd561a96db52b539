"""What a user may pass as the context, checked once, and what the root is told about it.

``load_context`` is the one loader (the root loop, both REPLs and ``rlm ask`` use it):

- ``str`` stays itself; ``bytes``/``bytearray``/``memoryview`` of a document (PDF, DOCX,
  PPTX, XLSX, EPUB, HTML, a notebook: ``documents.formats``) are a ``DocumentContext``,
  other bytes UTF-8 text, decoded with U+FFFD for invalid sequences, as a text file is;
- ``list``, ``tuple``, ``dict`` arrive as the same objects in both sandboxes;
- a ``pandas.DataFrame`` arrives as a DataFrame (the kernel needs pandas installed);
- a ``Path`` to a document is a ``DocumentContext`` (``document_context``): its bytes go
  to where root code runs and are read there, in a bounded worker, never in this process;
- a ``Path`` to another file is a ``TextFile``: opened here, read once where root code runs
  (the kernel gets the open descriptor, never a path to follow);
- a ``Path`` to a directory is a ``DirectoryContext``: a dict of relative path -> text,
  binary and oversized files skipped, links never followed, FIFOs and devices never
  opened, and the root told what was left out; with documents in it, a ``DocumentContext``
  whose documents are read where root code runs.

Loaded values that are not plain data carry ``describe()``, the text the root reads.
"""

from __future__ import annotations

import os
import stat
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from . import reading
from .document_context import (
    MAX_DOCUMENT_BYTES,
    READ_FLAGS,
    DocumentContext,
    Source,
    document_bytes,
    document_file,
    open_regular,
    open_same,
)
from .documents import formats

SUPPORTED_CONTEXT = ("str, bytes (UTF-8 text or a document), list, tuple, dict (of picklable values, any keys), "
                     "a pandas DataFrame, or a pathlib.Path to a file (text, PDF, DOCX, PPTX, XLSX, HTML, EPUB, "
                     "ipynb) or a directory")
PREVIEW_CHARS = 500

#: Directory contexts: files over this are skipped, and reading stops at these totals.
MAX_FILE_BYTES = 2 * 2**20
MAX_TOTAL_BYTES = 256 * 2**20
MAX_FILES = 20_000
MAX_DEPTH = 64
#: Directories a code question never needs (version control, caches, environments).
SKIP_DIRS = frozenset({".git", ".hg", ".svn", "__pycache__", "node_modules", ".venv", "venv", ".mypy_cache",
                       ".ruff_cache", ".pytest_cache", ".tox"})
#: Where a Sphinx build keeps a copy of each page's source: the same text again, beside the pages.
SPHINX_SOURCES = "_sources"
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _fence(text: str) -> str:
    return f"```text\n{text}\n```"


@dataclass(frozen=True)
class TextFile:
    """A text file given as the context: read once, where root code runs, as UTF-8 with U+FFFD."""

    path: str
    size: int
    preview: str
    device: int
    inode: int

    def open(self) -> int:
        """A read-only descriptor of the same file (a FIFO or a device is never opened for good)."""
        return open_same(self.path, self.device, self.inode)

    def read(self) -> str:
        fd = self.open()
        try:
            return reading.read_text_fd(fd)
        finally:
            os.close(fd)

    def describe(self) -> str:
        return (f"`context` is a str: the text of the file {os.path.basename(self.path)!r} ({self.size:,} bytes of "
                f"UTF-8, so at most {self.size:,} characters).\nIts first {len(self.preview)} characters:\n"
                f"{_fence(self.preview)}")


@dataclass(frozen=True)
class DirectoryContext:
    """A directory's text files by relative path, and what was skipped (path, why)."""

    root: str
    files: dict[str, str]
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def describe(self) -> str:
        chars = sum(len(t) for t in self.files.values())
        names = list(self.files)
        shown = ", ".join(repr(k) for k in names[:30]) + (", ..." if len(names) > 30 else "")
        text = (f"`context` is a dict of {len(names):,} text files from the directory "
                f"{os.path.basename(self.root.rstrip('/')) or self.root!r}: relative path -> file text "
                f"({chars:,} characters in all).\nPaths: {shown}")
        if self.skipped:
            by_reason = Counter(why for _, why in self.skipped)
            parts = []
            for why, n in by_reason.most_common():
                examples = [p for p, w in self.skipped if w == why][:5]
                parts.append(f"{n:,} {why} ({', '.join(examples)}{', ...' if n > 5 else ''})")
            text += "\nNot in `context`: " + "; ".join(parts) + "."
        return text


@dataclass(frozen=True)
class FrameContext:
    """A pandas DataFrame, passed as itself."""

    frame: Any

    def describe(self) -> str:
        rows, cols = self.frame.shape
        dtypes = ", ".join(f"{name!r}: {dtype}" for name, dtype in list(self.frame.dtypes.items())[:40])
        head = self.frame.head(5).to_string(max_colwidth=60)[:2000]
        return (f"`context` is a pandas DataFrame of {rows:,} rows and {cols:,} columns ({dtypes}"
                f"{', ...' if cols > 40 else ''}).\nIts first rows:\n{_fence(head)}")


Loaded = (str | list[Any] | tuple[Any, ...] | dict[Any, Any] | TextFile | DirectoryContext | FrameContext
          | DocumentContext)


def is_dataframe(value: Any) -> bool:
    """Without importing pandas: only a DataFrame's own class says it is one."""
    cls = type(value)
    return cls.__name__ == "DataFrame" and cls.__module__.split(".")[0] == "pandas"


def load_context(context: Any) -> Loaded:
    """Check a user's context, or raise ``TypeError`` saying which types work (see the module's docstring)."""
    if isinstance(context, (str, list, tuple, dict, TextFile, DirectoryContext, FrameContext, DocumentContext)):
        return context
    if isinstance(context, (bytes, bytearray, memoryview)):
        document = document_bytes(context)
        return document if document is not None else str(context, "utf-8", "replace")
    if is_dataframe(context):
        return FrameContext(context)
    if isinstance(context, os.PathLike):
        path = os.fspath(context)
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        if os.path.isdir(path):
            return read_directory(path)
        return any_file(path)
    raise TypeError(
        f"unsupported context type {type(context).__name__}; supported: {SUPPORTED_CONTEXT}. "
        "Convert it first, e.g. context=[str(x) for x in items]."
    )


def load_value(value: Any) -> Any:
    """A session's later value: loaded as a context if it is one (a ``Path``, bytes), else as it is."""
    try:
        return load_context(value)
    except TypeError:
        return value


def value_of(loaded: Loaded) -> Any:
    """What root code sees as ``context`` in this process."""
    if isinstance(loaded, TextFile):
        return loaded.read()
    if isinstance(loaded, DirectoryContext):
        return dict(loaded.files)
    if isinstance(loaded, FrameContext):
        return loaded.frame
    if isinstance(loaded, DocumentContext):
        from .document_context import read_here

        return read_here(loaded)[0]
    return loaded


def files_in(directory: str) -> list[str]:
    """The documents and text files under ``directory``, one context each (``map_rlm`` over a folder).

    Sorted by relative path; links, binary files and the directories a directory context skips are left out.
    """
    found = []
    for top, dirs, names in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS and d != SPHINX_SOURCES
                         and not os.path.islink(os.path.join(top, d)))
        for name in sorted(names):
            path = os.path.join(top, name)
            if os.path.islink(path) or not os.path.isfile(path):
                continue
            try:
                with open(path, "rb") as fh:
                    head = fh.read(formats.HEAD_BYTES)
            except OSError:
                continue
            if formats.sniff(name, head) or not formats.is_binary(head):
                found.append(path)
    return sorted(found, key=lambda p: os.path.relpath(p, directory))


def any_file(path: str) -> TextFile | DocumentContext:
    """A document (by its name and first bytes) or a text file."""
    fd = open_regular(path)
    try:
        head = os.pread(fd, formats.HEAD_BYTES, 0)
    finally:
        os.close(fd)
    name = os.path.basename(path)
    fmt = formats.sniff(name, head)
    unread = formats.UNREAD.get(os.path.splitext(name)[1].lower())
    if fmt is None and unread is not None and formats.is_binary(head):
        raise TypeError(f"{name!r} is a {unread} document, which rlm does not read: save it as PDF, DOCX, PPTX "
                        "or XLSX and pass that")
    return document_file(path, name, fmt) if fmt else text_file(path)


def text_file(path: str) -> TextFile:
    """A ``TextFile`` for ``path``: its size, identity and first characters; the rest is not read here."""
    fd = open_regular(path)
    try:
        info = os.fstat(fd)
        head = os.pread(fd, 4 * PREVIEW_CHARS, 0)
    finally:
        os.close(fd)
    preview = head.decode("utf-8", "ignore" if len(head) == 4 * PREVIEW_CHARS else "replace")[:PREVIEW_CHARS]
    return TextFile(os.path.abspath(path), info.st_size, preview, info.st_dev, info.st_ino)


def read_directory(root: str) -> DirectoryContext | DocumentContext:
    """Every text file and document under ``root`` by relative path, read descriptor by descriptor, never through a
    link; with documents in it, a ``DocumentContext`` (the documents are read where root code runs)."""
    files: dict[str, tuple[str | None, bytes]] = {}
    skipped: list[tuple[str, str]] = []
    total = 0
    top = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)  # the user's own path: a link is theirs
    stack: list[tuple[int, str]] = [(top, "")]
    try:
        while stack:
            fd, prefix = stack.pop()
            try:
                with os.scandir(fd) as it:
                    entries = sorted(it, key=lambda e: e.name, reverse=True)
                for entry in entries:
                    rel = prefix + entry.name
                    why = _skip_reason(entry, len(files), total, prefix.count("/"))
                    if why is not None:
                        skipped.append((rel, why))
                    elif entry.is_dir(follow_symlinks=False):
                        try:
                            stack.append((os.open(entry.name, _DIR, dir_fd=fd), rel + "/"))
                        except OSError:  # replaced by a link since it was listed, say
                            skipped.append((rel, "files that could not be opened"))
                    else:
                        found, why = _read_file(fd, entry.name)
                        if found is None:
                            skipped.append((rel, why))
                        else:
                            files[rel] = found
                            total += len(found[1])
            finally:
                os.close(fd)
    finally:
        for fd, _ in stack:
            os.close(fd)
    ordered = sorted(files.items())
    if any(fmt for _, (fmt, _) in ordered):
        name = os.path.basename(os.path.abspath(root).rstrip("/")) or root
        sources = tuple(Source(rel, fmt, data=data, size=len(data)) for rel, (fmt, data) in ordered)
        return DocumentContext(name, sources, directory=True, left_out=skipped)
    loaded = DirectoryContext(os.path.abspath(root), {rel: data.decode("utf-8", "replace") for rel, (_, data)
                                                       in ordered}, skipped)
    if not files:
        raise FileNotFoundError(f"no text files in the directory {root!r}" + (
            f" ({loaded.describe().rsplit('Not in `context`: ', 1)[-1]})" if skipped else ""))
    return loaded


def _skip_reason(entry: os.DirEntry[str], files: int, total: int, depth: int) -> str | None:
    if entry.is_symlink():
        return "symbolic links (not followed)"
    if entry.is_dir(follow_symlinks=False):
        if entry.name in SKIP_DIRS:
            return "directories never read (version control, caches, environments)"
        if entry.name == SPHINX_SOURCES:
            return "Sphinx's copies of its pages' sources (the pages themselves are read)"
        return "directories deeper than 64 levels" if depth >= MAX_DEPTH else None
    if not entry.is_file(follow_symlinks=False):
        return "not regular files (FIFOs, sockets, devices)"
    if files >= MAX_FILES or total >= MAX_TOTAL_BYTES:
        return f"files past the first {MAX_FILES:,} or {MAX_TOTAL_BYTES // 2**20} MB"
    size = entry.stat(follow_symlinks=False).st_size
    if os.path.splitext(entry.name)[1].lower() in formats.EXTENSIONS:
        return f"documents over {MAX_DOCUMENT_BYTES // 2**20} MB" if size > MAX_DOCUMENT_BYTES else None
    if size > MAX_FILE_BYTES:
        return f"files over {MAX_FILE_BYTES // 2**20} MB"
    return None


def _read_file(dir_fd: int, name: str) -> tuple[tuple[str | None, bytes] | None, str]:
    """A regular file's format (None: text) and bytes, or None and why not; opened without following a link
    or blocking. A document's bytes are not parsed here."""
    try:
        fd = os.open(name, READ_FLAGS | os.O_NOFOLLOW, dir_fd=dir_fd)
    except OSError:
        return None, "files that could not be opened"
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):  # swapped for something else since it was listed
            return None, "not regular files (FIFOs, sockets, devices)"
        data = os.read(fd, MAX_FILE_BYTES + 1)
        fmt = formats.sniff(name, data[: formats.HEAD_BYTES])
        if fmt is not None and len(data) > MAX_FILE_BYTES:
            with os.fdopen(os.dup(fd), "rb") as fh:
                fh.seek(len(data))
                data += fh.read(MAX_DOCUMENT_BYTES + 1 - len(data))
    finally:
        os.close(fd)
    if fmt is not None:
        if len(data) > MAX_DOCUMENT_BYTES:
            return None, f"documents over {MAX_DOCUMENT_BYTES // 2**20} MB"
        return (fmt, data), ""
    if len(data) > MAX_FILE_BYTES:
        return None, f"files over {MAX_FILE_BYTES // 2**20} MB"
    if formats.is_binary(data):
        unread = formats.UNREAD.get(os.path.splitext(name)[1].lower())
        if unread is not None:
            return None, f"{unread} documents (not read: save them as PDF, DOCX, PPTX or XLSX)"
        return None, "binary files"
    return (None, data), ""
