"""``response_format`` as a type rlm's typed answers take (``schema=``).

rlm validates answers with pydantic, which takes types; a client sends a JSON Schema.
``schema_type`` makes a small class that describes itself with the client's schema (so
the root is shown exactly that schema) and validates with ``jsonschema`` (so the answer
is checked against exactly that schema, not a translation of it).
"""

from __future__ import annotations

import re
from typing import Any

from .errors import RequestError

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
#: ``{"type": "json_object"}``: any JSON object.
ANY_OBJECT: dict[str, Any] = {"type": "object"}


def from_response_format(value: object) -> type | None:
    """The type for a request's ``response_format`` (None for text), or ``RequestError(400)``."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise RequestError(400, "response_format must be an object", param="response_format")
    kind = value.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return schema_type("json_object", ANY_OBJECT)
    if kind != "json_schema":
        raise RequestError(400, f"response_format.type {kind!r} is not supported; use text, json_object or "
                                "json_schema", param="response_format.type")
    spec = value.get("json_schema")
    if not isinstance(spec, dict) or not isinstance(spec.get("schema", {}), dict):
        raise RequestError(400, "response_format.json_schema must be an object with a name and a schema object",
                           param="response_format.json_schema")
    name = spec.get("name", "answer")
    if not isinstance(name, str) or not _NAME.match(name):
        raise RequestError(400, "response_format.json_schema.name must be 1-64 letters, digits, _ or -",
                           param="response_format.json_schema.name")
    return schema_type(name, spec.get("schema") or ANY_OBJECT)


def schema_type(name: str, schema: dict[str, Any]) -> type:
    """A class named ``name`` that pydantic describes as ``schema`` and validates with jsonschema."""
    try:
        import jsonschema
        from pydantic_core import core_schema
    except ImportError:
        raise RequestError(400, "structured output needs jsonschema on the server: pip install 'rlm[serve]'",
                           param="response_format") from None
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise RequestError(400, f"response_format's schema is not a valid JSON Schema: {exc.message}",
                           param="response_format.json_schema.schema") from None
    validator = jsonschema.Draft202012Validator(schema)

    def validate(value: Any) -> Any:
        problems = sorted(validator.iter_errors(value), key=lambda e: list(e.path))
        if problems:
            where = "/".join(str(p) for p in problems[0].path) or "the answer"
            raise ValueError(f"{where}: {problems[0].message}")
        return value

    def core(cls: type, source: Any, handler: Any) -> Any:
        return core_schema.no_info_plain_validator_function(validate)

    def described(cls: type, core: Any, handler: Any) -> dict[str, Any]:
        return dict(schema)

    return type(name, (), {"__get_pydantic_core_schema__": classmethod(core),
                           "__get_pydantic_json_schema__": classmethod(described)})
