"""The model the docs' examples talk to: a ``ScriptedLM`` root that writes a real program, then answers.

Each question gets two root turns, as a careful model's would: first a program that chunks
``context`` with ``chunk`` and asks the sub-model about every piece with ``llm_batch``
(it defines ``chunks``, ``found`` and ``answer``), then ``FINAL_VAR`` of the answer. When
the question asks for a schema (``schema=``), the program also builds ``data``, an instance
of the JSON schema the root is shown, and the answer is ``FINAL_VAR('data')``. Sub-calls are
answered extractively (``rlm.testing.simulated``): sentences of the excerpt that share a
word with the question.
"""

from __future__ import annotations

import json
import re
from typing import Any

from rlm.testing import ScriptedRequest
from rlm.testing.simulated import simulated_sub

#: The first line of the program, by which the model knows its own first turn.
MARK = "# docs model: read the context in pieces"

PROGRAM = """\
```repl
{mark}
if isinstance(context, str):
    text = context
elif isinstance(context, dict):
    text = "\\n".join(f"{{k}}: {{v}}" for k, v in context.items())
else:
    text = "\\n".join(map(str, context))
chunks = chunk(text, max_tokens=2_000)
found = llm_batch([f"Question: {{query}}\\nQuote the sentences that answer it, or reply NONE.\\n\\nExcerpt:\\n{{c}}"
                   for c in chunks])
hits = [f for f in found if not isinstance(f, FailedCall) and f.strip() != "NONE"]
answer = "\\n".join(hits) or "The context does not say."
data = {data}
print(len(chunks), "chunks;", len(hits), "relevant")
```"""

_JSON = re.compile(r"```json\n(.*?)\n```", re.S)


def root(request: ScriptedRequest) -> str:
    """The program on a question's first turn; the answer once the program's output came back."""
    replies = [m for m in request.messages if m.get("role") == "assistant"]
    if replies and MARK in str(replies[-1].get("content") or "") and request.messages[-1].get("role") == "user":
        schema = _schema_of(request.messages)
        return "FINAL_VAR('data')" if schema is not None else "FINAL_VAR('answer')"
    schema = _schema_of(request.messages)
    data = None if schema is None else example(schema, schema)
    return PROGRAM.format(mark=MARK, data=repr(data))


def sub(request: ScriptedRequest) -> str:
    return simulated_sub(request)


def _schema_of(messages: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The JSON schema of the latest question that names one (a session asks with and without)."""
    for message in reversed(messages):
        if message.get("role") != "user":
            continue
        content = str(message.get("content") or "")
        for block in reversed(_JSON.findall(content)):
            try:
                schema = json.loads(block)
            except ValueError:
                continue
            if isinstance(schema, dict) and ({"type", "properties", "$defs", "anyOf"} & set(schema)):
                return schema
        if "The query:" in content:
            return None
    return None


def example(schema: dict[str, Any], top: dict[str, Any]) -> Any:
    """A value of ``schema`` (JSON Schema as pydantic writes it): the first of each choice, one item per list."""
    if "$ref" in schema:
        return example(top["$defs"][schema["$ref"].rsplit("/", 1)[-1]], top)
    for choice in ("anyOf", "oneOf", "allOf"):
        if choice in schema:
            return example(schema[choice][0], top)
    if "enum" in schema:
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    kind = schema.get("type", "string")
    if kind == "object":
        properties = schema.get("properties", {})
        if not properties and isinstance(schema.get("additionalProperties"), dict):
            return {"key": example(schema["additionalProperties"], top)}
        return {name: example(part, top) for name, part in properties.items()}
    if kind == "array":
        items = schema.get("prefixItems") or [schema.get("items", {})]
        return [example(part, top) for part in items]
    return {"string": "Acme", "integer": 1, "number": 120.0, "boolean": True, "null": None}[kind]
