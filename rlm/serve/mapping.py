"""A resumable map over a folder of documents or a JSONL file, named by what it maps.

The checkpoint's name is a hash of the route, the input's identity (device, inode, size,
modification time) and the question or template: the same call again resumes where the
last one stopped, a changed input or question starts afresh. Answers are written as
JSONL next to the checkpoint, one line per item, in input order.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.result import RLMResult
from ..maps import MapResult
from ..repl.steps import FailedCall
from .config import ModelRoute
from .errors import RequestError
from .paths import Confined

#: How many answers a map's summary quotes; the rest are in its results file.
QUOTED = 20


@dataclass
class MapInput:
    """What a map runs over: documents (``Confined`` files in one folder) or prompts/rows of a JSONL file."""

    items: list[Any]
    names: list[str]
    key: str


def folder_items(folder: Confined, limit: int, max_bytes: int) -> MapInput:
    """The regular files directly in ``folder`` (links and subfolders skipped), by name; none over ``max_bytes``."""
    entries = sorted(os.scandir(folder.fd), key=lambda e: e.name)
    items: list[Any] = []
    for entry in entries:
        info = entry.stat(follow_symlinks=False)
        if stat.S_ISREG(info.st_mode) and not entry.name.startswith("."):
            if info.st_size > max_bytes:
                raise RequestError(413, f"{entry.name!r} holds {info.st_size:,} bytes, over this server's limit of "
                                        f"{max_bytes:,} per item", param="path")
            items.append(Confined(folder.fd, entry.name, False, info.st_size, (info.st_dev, info.st_ino),
                                  os.path.join(folder.real, entry.name)))
    _check_count(len(items), limit)
    names = [c.name for c in items]
    return MapInput(items, names, _identity(folder, names))


def jsonl_rows(document: Confined, limit: int) -> list[dict[str, Any]]:
    """The rows of a JSONL file (a non-object row becomes ``{"prompt": row}``)."""
    if document.is_dir:
        raise RequestError(400, "a JSONL map takes a .jsonl file; give a folder to map over its files", param="path")
    fd = os.open(document.name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=document.fd)
    with os.fdopen(fd, "rb") as fh:
        if (os.fstat(fh.fileno()).st_dev, os.fstat(fh.fileno()).st_ino) != document.identity:
            raise RequestError(409, f"{document.name!r} was replaced while it was opened", param="path")
        lines = fh.read().decode("utf-8", "replace").splitlines()
    rows: list[dict[str, Any]] = []
    for n, line in enumerate(lines, 1):
        if line.strip():
            try:
                row = json.loads(line)
            except ValueError:
                raise RequestError(400, f"{document.name} line {n} is not JSON", param="path") from None
            rows.append(row if isinstance(row, dict) else {"prompt": row})
    _check_count(len(rows), limit)
    return rows


def prompts_of(rows: list[dict[str, Any]], template: str) -> list[str]:
    """Each row's prompt from ``template`` (``{field}`` for the row's fields)."""
    prompts = []
    for n, row in enumerate(rows):
        try:
            prompts.append(template.format_map(row))
        except KeyError as missing:
            raise RequestError(400, f"row {n} has no field {missing} that prompt_template names; its fields: "
                                    f"{', '.join(map(str, row)) or 'none'}", param="prompt_template") from None
        except (ValueError, IndexError) as exc:
            raise RequestError(400, f"prompt_template is not a format string: {exc}",
                               param="prompt_template") from None
    return prompts


def _check_count(n: int, limit: int) -> None:
    if n == 0:
        raise RequestError(400, "nothing to map: no files, or no rows", param="path")
    if n > limit:
        raise RequestError(413, f"{n:,} items, over this server's limit of {limit:,} per map", param="path",
                           code="too_many_items")


def _identity(document: Confined, names: list[str]) -> str:
    info = os.fstat(document.fd)
    return json.dumps([document.identity, info.st_size, info.st_mtime_ns, names])


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


def summary(answers: MapResult, names: list[str], results: Path) -> dict[str, Any]:
    """What the tool returns: counts, cost, the results file and the first answers."""
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
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return {"total": len(answers), "failed": failed, "resumed": answers.resumed, "calls": answers.usage.calls,
            "cost_usd": answers.usage.cost_usd, "results": str(results), "first_answers": quoted}
