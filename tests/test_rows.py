"""JSONL rows and template prompts, as rlm map and rlm mcp's map read them: typed errors that say where."""

from __future__ import annotations

import pytest

from rlm import RLMError
from rlm.datasets.rows import RowError, jsonl_rows, prompts_of


def test_rows_and_prompts() -> None:
    rows = jsonl_rows('{"text": "a", "n": 1}\n\n"plain"\n', "rows.jsonl")
    assert rows == [{"text": "a", "n": 1}, {"prompt": "plain"}]
    assert prompts_of([{"text": "a"}], "Label: {text}") == ["Label: a"]


def test_bad_rows_and_templates_are_typed_errors_naming_the_place() -> None:
    with pytest.raises(RowError, match=r"rows.jsonl:2 is not JSON") as caught:
        jsonl_rows('{"a": 1}\n{not json\n', "rows.jsonl")
    assert caught.value.about == "rows" and isinstance(caught.value, (RLMError, ValueError))
    with pytest.raises(RowError, match=r"row 1 has no field 'text' that prompt_template names; its fields: x") as c:
        prompts_of([{"text": "a"}, {"x": 1}], "{text}", option="prompt_template")
    assert c.value.about == "template"
    with pytest.raises(RowError, match="--prompt-template is not a format string"):
        prompts_of([{"a": 1}], "{a")
