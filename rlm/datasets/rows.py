"""Rows of a JSONL file, and the prompts a template makes of them: ``rlm map`` and ``rlm mcp``'s map read them alike.

A row is a JSON object; any other JSON value on a line becomes ``{"prompt": value}``, so
a file of plain strings maps with the default template ``{prompt}``. Bad input raises
``RowError`` naming the line, the row or the field, and what the row does hold.
"""

from __future__ import annotations

import json
from typing import Any

from ..errors import RLMError


class RowError(RLMError, ValueError):
    """A line that is not JSON (``about="rows"``), or a template a row cannot fill (``about="template"``)."""

    def __init__(self, message: str, about: str) -> None:
        super().__init__(message)
        self.about = about


def jsonl_rows(text: str, source: str) -> list[dict[str, Any]]:
    """The rows of JSONL ``text`` (blank lines skipped); ``source`` names the file in errors."""
    rows: list[dict[str, Any]] = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            raise RowError(f"{source}:{n} is not JSON", "rows") from None
        rows.append(row if isinstance(row, dict) else {"prompt": row})
    return rows


def prompts_of(rows: list[dict[str, Any]], template: str, option: str = "--prompt-template") -> list[str]:
    """Each row's prompt (``{field}`` for the row's fields); ``option`` is what the caller calls the template."""
    prompts = []
    for n, row in enumerate(rows):
        try:
            prompts.append(template.format_map(row))
        except KeyError as missing:
            raise RowError(f"row {n} has no field {missing} that {option} names; "
                           f"its fields: {', '.join(map(str, row)) or 'none'}", "template") from None
        except (ValueError, IndexError) as exc:
            raise RowError(f"{option} is not a format string: {exc}", "template") from None
    return prompts
