"""Files a client sent as ``file`` content parts, written to disk only once their run is admitted.

Why not at once: a request refused for its size, or left waiting and then refused (429),
must not have written up to ``max_body_mb`` to the server's disk first. The run's context
is the one file, or a private directory of the files plus ``conversation.md`` (the
conversation's other text); the directory is removed after the run.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Uploads:
    """``files``: (safe name, bytes) in the order sent; ``texts``: the conversation's context text."""

    files: list[tuple[str, bytes]]
    texts: list[str]
    scratch: Path | None = field(default=None, repr=False)

    @property
    def size(self) -> int:
        """Bytes of the files and characters of the text: what ``max_context_chars`` bounds."""
        return sum(len(raw) for _, raw in self.files) + sum(len(text) for text in self.texts)

    def write(self) -> Path:
        """Write them to a private directory (0700); the context: the file, or the directory."""
        self.scratch = Path(tempfile.mkdtemp(prefix="rlm-serve-"))
        names: set[str] = set()
        for name, raw in self.files:
            stem, dot, suffix = name.rpartition(".")
            unique, k = name, 1
            while unique in names or unique == "conversation.md":
                k += 1
                unique = f"{stem}-{k}.{suffix}" if dot else f"{name}-{k}"
            names.add(unique)
            _write(self.scratch / unique, raw)
        if self.texts:
            _write(self.scratch / "conversation.md", "\n\n".join(self.texts).encode("utf-8"))
        if len(names) == 1 and not self.texts:
            return self.scratch / next(iter(names))
        return self.scratch

    def remove(self) -> None:
        if self.scratch is not None:
            shutil.rmtree(self.scratch, ignore_errors=True)


def _write(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
