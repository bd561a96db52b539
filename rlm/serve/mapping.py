"""A resumable map over a folder of documents or a JSONL file, named by what it maps.

The checkpoint's name is a hash of the route, the input's identity (device, inode, size,
modification time: of the JSONL file, or of each file in the folder) and the question or
template: the same call again resumes where the last one stopped, a changed input or
question starts afresh. Answers are written as
JSONL next to the checkpoint, one line per item, in input order.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.result import RLMResult
from ..datasets.maps import MapResult
from ..datasets.rows import RowError
from ..datasets.rows import jsonl_rows as rows_of
from ..datasets.rows import prompts_of as template_prompts
from ..repl.steps import FailedCall
from .config import ModelRoute
from .errors import RequestError
from .paths import Confined

#: How many answers a map's summary quotes; the rest are in its results file.
QUOTED = 20
#: What a results file's name looks like (``map_key``'s hash); anything else is not one.
RESULTS_NAME = re.compile(r"^[0-9a-f]{24}\.jsonl$")


@dataclass(frozen=True)
class MapCall:
    """What a map tool call asks for: a folder or JSONL ``path``, and a ``question`` or a ``template``."""

    path: str
    question: str | None
    template: str | None
    model: str | None


@dataclass
class MapInput:
    """What a map runs over: documents (``Confined`` files in one folder) or prompts/rows of a JSONL file."""

    items: list[Any]
    names: list[str]
    key: str


def map_input(document: Confined, call: MapCall, limit: int, max_bytes: int) -> MapInput:
    """What a map runs over: each file of a folder, or each row of a JSONL file (blocking: it reads them)."""
    if document.is_dir:
        if call.question is None:
            raise RequestError(400, "a map over a folder runs a question per file: give question", param="question")
        return folder_items(document, limit, max_bytes)
    if document.size > max_bytes:
        raise RequestError(413, f"{call.path!r} holds {document.size:,} bytes, over this server's limit of "
                                f"{max_bytes:,}", param="path")
    rows = jsonl_rows(document, limit)
    items = [json.dumps(row, ensure_ascii=False) for row in rows] if call.question is not None else \
        prompts_of(rows, call.template or "{prompt}")
    return MapInput(items, [str(i) for i in range(len(rows))], jsonl_identity(document))


def folder_items(folder: Confined, limit: int, max_bytes: int) -> MapInput:
    """The regular files directly in ``folder`` (links and subfolders skipped), by name; none over ``max_bytes``.

    The key names each file by name, inode, size and modification time: a file edited in
    place changes no folder's time, but it changes the key, so the map starts afresh.
    """
    entries = sorted(os.scandir(folder.fd), key=lambda e: e.name)
    items: list[Any] = []
    seen: list[tuple[str, int, int, int]] = []
    for entry in entries:
        info = entry.stat(follow_symlinks=False)
        if stat.S_ISREG(info.st_mode) and not entry.name.startswith("."):
            if info.st_size > max_bytes:
                raise RequestError(413, f"{entry.name!r} holds {info.st_size:,} bytes, over this server's limit of "
                                        f"{max_bytes:,} per item", param="path")
            items.append(Confined(folder.fd, entry.name, False, info.st_size, (info.st_dev, info.st_ino),
                                  os.path.join(folder.real, entry.name)))
            seen.append((entry.name, info.st_ino, info.st_size, info.st_mtime_ns))
    _check_count(len(items), limit)
    return MapInput(items, [c.name for c in items], json.dumps([folder.identity, seen]))


def jsonl_rows(document: Confined, limit: int) -> list[dict[str, Any]]:
    """The rows of a JSONL file (``rlm.datasets.rows``), read through the checked descriptor."""
    if document.is_dir:
        raise RequestError(400, "a JSONL map takes a .jsonl file; give a folder to map over its files", param="path")
    fd = os.open(document.name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=document.fd)
    with os.fdopen(fd, "rb") as fh:
        if (os.fstat(fh.fileno()).st_dev, os.fstat(fh.fileno()).st_ino) != document.identity:
            raise RequestError(409, f"{document.name!r} was replaced while it was opened", param="path")
        text = fh.read().decode("utf-8", "replace")
    try:
        rows = rows_of(text, document.name)
    except RowError as exc:
        raise RequestError(400, str(exc), param="path") from None
    _check_count(len(rows), limit)
    return rows


def prompts_of(rows: list[dict[str, Any]], template: str) -> list[str]:
    """Each row's prompt from ``template`` (``{field}`` for the row's fields)."""
    try:
        return template_prompts(rows, template, option="prompt_template")
    except RowError as exc:
        raise RequestError(400, str(exc), param="prompt_template") from None


def _check_count(n: int, limit: int) -> None:
    if n == 0:
        raise RequestError(400, "nothing to map: no files, or no rows", param="path")
    if n > limit:
        raise RequestError(413, f"{n:,} items, over this server's limit of {limit:,} per map", param="path",
                           code="too_many_items")


def jsonl_identity(document: Confined) -> str:
    fd = os.open(document.name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=document.fd)
    try:
        info = os.fstat(fd)
    finally:
        os.close(fd)
    return json.dumps([document.identity, info.st_size, info.st_mtime_ns])


def map_key(route: ModelRoute, input_key: str, question: str | None, template: str | None) -> str:
    """The name of a map's checkpoint and results: the same arguments over the same input, the same name."""
    payload = json.dumps([route.name, route.root, route.sub, input_key, question, template])
    return hashlib.sha256(payload.encode()).hexdigest()[:24]


def summary(answers: MapResult, names: list[str], results: Path, local: bool) -> dict[str, Any]:
    """What the tool returns: counts, cost, the results (resource; ``local``: also the file) and the first answers."""
    lines: list[str] = []
    quoted: list[dict[str, Any]] = []
    failed = 0
    for name, answer in zip(names, answers, strict=True):
        error = str(answer) if isinstance(answer, FailedCall) else None
        text = answer.answer if isinstance(answer, RLMResult) else (None if error else str(answer))
        failed += error is not None
        row = {"item": name, "answer": text if isinstance(text, (str, type(None))) else json.dumps(text),
               "error": error}
        lines.append(json.dumps(row, ensure_ascii=False))
        if len(quoted) < QUOTED:
            quoted.append(row)
    fd = os.open(results, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
    found = {"total": len(answers), "failed": failed, "resumed": answers.resumed, "calls": answers.usage.calls,
             "cost_usd": answers.usage.cost_usd, "results_resource": f"rlm://maps/{results.name}",
             "first_answers": quoted}
    if local:
        found["results"] = str(results)
    return found


def read_results(state: Path, name: str) -> bytes | None:
    """A map's results file by name (as ``summary`` names it), or None; never through a link."""
    if not RESULTS_NAME.match(name):
        return None
    try:
        fd = os.open(state / "maps" / name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as fh:
        return fh.read() if stat.S_ISREG(os.fstat(fh.fileno()).st_mode) else None
