"""Typed answers: ``completion(..., schema=Model)`` returns a validated instance.

The root ends as always (``FINAL_VAR(var)`` of a dict, ``SUBMIT(**fields)``, or
``FINAL(...)`` of JSON); its answer arrives as text, which is read back as JSON or as a
Python literal (what ``str()`` of a dict gives) and validated by pydantic, which also
takes dataclasses and TypedDicts. Nothing the root wrote is executed on the host.
"""

from __future__ import annotations

import ast
import json
import re
from typing import Any

from ..errors import AnswerError, ConfigError
from .result import StopReason

_FENCED = re.compile(r"^```[\w-]*\s*\n(.*?)\n?```$", re.DOTALL)
#: The most of a validation error the root is shown in its corrective round.
PROBLEM_CHARS = 2_000


class AnswerShape:
    """One schema: how it is described to the root, and how an answer is checked against it."""

    def __init__(self, schema: Any) -> None:
        from pydantic import PydanticUserError, TypeAdapter

        try:
            self._adapter: Any = TypeAdapter(schema)
            described = self._adapter.json_schema()
            self.json_schema = json.dumps(described, ensure_ascii=False)
        except (PydanticUserError, TypeError, ValueError) as exc:
            reason = str(exc).split("\n", 1)[0]  # e.g. "use typing_extensions.TypedDict on Python < 3.12"
            raise ConfigError(
                f"schema={schema!r} is not a type rlm can validate ({reason}); pass a pydantic model, "
                "a dataclass or a TypedDict"
            ) from None
        self.name = getattr(schema, "__name__", str(schema))
        fields = described.get("properties") if described.get("type") == "object" else None
        #: The one field of a one-field model, which a bare answer fills.
        self._single: str | None = next(iter(fields)) if isinstance(fields, dict) and len(fields) == 1 else None

    def prompt(self) -> str:
        """What the root is told about the answer's shape, after the query."""
        return (
            f"The answer must be a {self.name} matching this JSON schema:\n```json\n{self.json_schema}\n```\n"
            "Build it in the REPL as a dict and end with FINAL_VAR('name_of_the_dict'), or call "
            "SUBMIT(field=value, ...) with every field."
        )

    def check(self, text: str) -> tuple[Any, str | None]:
        """(the validated value, None), or (None, what is wrong) for the corrective round."""
        from pydantic import ValidationError

        data = _data_of(text)
        try:
            return self._adapter.validate_python(data), None
        except ValidationError as exc:
            problem = _described(exc)
        tries: list[Any] = [] if isinstance(data, str) else [text]  # "42" read as a number, for a str schema
        if self._single is not None and not isinstance(data, dict):  # SUBMIT(label=...) of a one-field model
            tries.append({self._single: data})
        for attempt in tries:
            try:
                return self._adapter.validate_python(attempt), None
            except ValidationError:
                pass
        if isinstance(data, str):
            problem = f"the answer is not JSON or a Python literal of a {self.name}; {problem}"
        return None, problem[:PROBLEM_CHARS]

    def plain(self, value: Any) -> Any:
        """The validated value as plain data (what a session's ``answers`` holds)."""
        return self._adapter.dump_python(value, mode="json")

    def correction(self, problem: str) -> str:
        """The corrective round's message."""
        return (
            f"Your answer does not match the {self.name} schema:\n```text\n{problem}\n```\n"
            "Fix it and answer again with FINAL_VAR('name_of_the_dict') or SUBMIT(field=value, ...)."
        )


def _described(exc: Any) -> str:
    """A validation error as the root reads it: one line per field, without pydantic's links."""
    lines = []
    for error in exc.errors(include_url=False):
        where = ".".join(str(part) for part in error.get("loc", ())) or "the answer"
        shown = repr(error.get("input"))
        lines.append(f"{where}: {error.get('msg')} (got {shown[:200]})")
    return "\n".join(lines)


def _data_of(text: str) -> Any:
    """An answer's data: JSON, else a Python literal, else the text itself (a str schema takes it)."""
    stripped = text.strip()
    fenced = _FENCED.match(stripped)
    if fenced:
        stripped = fenced.group(1).strip()
    try:
        return json.loads(stripped)
    except (ValueError, RecursionError):
        pass
    try:
        return ast.literal_eval(stripped)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return text


def forced_value(shape: AnswerShape | None, answer: str, forced: StopReason) -> Any:
    """A forced answer's typed value (None without a schema); ``AnswerError`` when it has none or does not fit."""
    if shape is None or forced == "cut_off":
        return None
    if forced == "fallback":
        raise AnswerError(f"the root gave no {shape.name} within its turns", text=answer, problem="no answer")
    value, problem = shape.check(answer)
    if problem is not None:
        raise AnswerError(f"the forced answer does not match the {shape.name} schema: {problem[:300]}", text=answer,
                          problem=problem)
    return value
