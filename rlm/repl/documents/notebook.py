"""Jupyter notebooks: each cell with its kind and number, its outputs as text, no base64.

An output's text is its ``text/plain`` (or Markdown) form, a stream's text, or an error's
name, message and traceback without terminal colours; an image output is named, with its
size, and left out. Standard library only.
"""

from __future__ import annotations

import json
import re
from typing import Any

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_TEXT_TYPES = ("text/markdown", "text/plain", "text/latex")
#: An output's text beyond this is cut in the middle (a cell that printed a whole dataset).
MAX_OUTPUT_CHARS = 20_000


def _text(value: Any) -> str:
    return "".join(value) if isinstance(value, list) else str(value or "")


def extract(data: bytes) -> dict[str, Any]:
    try:
        nb = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise ValueError(f"not a notebook: not JSON ({exc})") from None
    if not isinstance(nb, dict):
        raise ValueError("not a notebook: the JSON is not an object")
    cells = nb.get("cells")
    if cells is None and isinstance(nb.get("worksheets"), list) and nb["worksheets"]:  # nbformat 3
        cells = nb["worksheets"][0].get("cells")
    if not isinstance(cells, list):
        raise ValueError("not a notebook: it has no list of cells")
    parts, labels, headings, images = [], [], [], 0
    for n, cell in enumerate(cells, 1):
        if not isinstance(cell, dict):
            continue
        kind = str(cell.get("cell_type") or "raw")
        source = _text(cell.get("source", cell.get("input")))
        label = f"cell {n}: {kind}"
        if kind == "code" and isinstance(cell.get("execution_count", cell.get("prompt_number")), int):
            label += f" [{cell.get('execution_count', cell.get('prompt_number'))}]"
        if kind in ("markdown", "heading"):
            headings += [line.strip() for line in source.splitlines() if line.startswith("#")]
        outputs, pictures = _outputs(cell.get("outputs") or [])
        images += pictures
        parts.append(source if not outputs else f"{source}\n--- output ---\n{outputs}")
        labels.append(label)
    skipped = [f"{images} image outputs (plots, pictures): named, not included"] if images else []
    language = ((nb.get("metadata") or {}).get("language_info") or {}).get("name") if isinstance(
        nb.get("metadata"), dict) else None
    info = {"cells": len(parts), **({"language": language} if isinstance(language, str) else {})}
    return {"kind": "ipynb", "unit": "cell", "parts": parts, "labels": labels, "headings": headings,
            "skipped": skipped, "info": info}


def _outputs(outputs: list[Any]) -> tuple[str, int]:
    texts, images = [], 0
    for out in outputs:
        if not isinstance(out, dict):
            continue
        kind = out.get("output_type")
        if kind == "stream":
            texts.append(_text(out.get("text")))
        elif kind == "error":
            trace = "\n".join(_text(line) for line in out.get("traceback") or [])
            texts.append(_ANSI.sub("", trace) or f"{out.get('ename')}: {out.get('evalue')}")
        elif kind in ("execute_result", "display_data", "pyout"):
            data: dict[str, Any] = out["data"] if isinstance(out.get("data"), dict) else out
            pictures = [k for k in data if str(k).startswith("image/") or k in ("png", "jpeg", "svg")]
            for key in pictures:
                images += 1
                texts.append(f"[{key} output, {len(_text(data[key])) * 3 // 4:,} bytes: not included]")
            for key in _TEXT_TYPES:
                if key in data:
                    texts.append(_text(data[key]))
                    break
    text = _ANSI.sub("", "\n".join(t.rstrip("\n") for t in texts if t))
    if len(text) > MAX_OUTPUT_CHARS:
        half = MAX_OUTPUT_CHARS // 2
        text = f"{text[:half]}\n... [{len(text) - 2 * half:,} characters of output cut] ...\n{text[-half:]}"
    return text, images
