"""Typed answers: ``schema=`` gives a validated instance, one corrective round, then ``AnswerError``."""

from __future__ import annotations

import dataclasses
import sys
import typing

import pytest
from pydantic import BaseModel
from scripting import code
from typing_extensions import TypedDict  # pydantic takes typing.TypedDict from Python 3.12

from rlm import AnswerError, ConfigError
from rlm.core.answers import AnswerShape
from rlm.testing import ScriptedLM


class Company(BaseModel):
    name: str
    founded: int


@dataclasses.dataclass
class Point:
    x: float
    y: float


class Pair(TypedDict):
    left: str
    right: str




def test_a_valid_answer_is_an_instance_and_the_text_is_kept(make) -> None:
    reply = code("result = {'name': 'Acme', 'founded': 1999}", "FINAL_VAR('result')")
    with ScriptedLM(root=[reply]) as lm:
        result = make(lm).completion("ctx", "Which company?", schema=Company)
        prompt = lm.root_requests[0].messages[1]["content"]
    assert result.answer == Company(name="Acme", founded=1999) and result.ok
    assert result.text == "{'name': 'Acme', 'founded': 1999}" and str(result) == result.text
    assert '"founded"' in prompt and "SUBMIT(field=value" in prompt  # the root was shown the schema


def test_an_invalid_answer_gets_one_correction_with_the_validation_error(make) -> None:
    script = [code("SUBMIT(name='Acme', founded='long ago')"), code("SUBMIT(name='Acme', founded=1999)")]
    with ScriptedLM(root=script) as lm:
        result = make(lm).completion("ctx", "q", schema=Company)
        correction = lm.root_requests[1].messages[-1]["content"]
    assert result.answer == Company(name="Acme", founded=1999) and result.iterations == 2
    assert "does not match the Company schema" in correction and "founded" in correction


def test_an_answer_invalid_twice_raises_answer_error_with_the_partial_result(make) -> None:
    with ScriptedLM(root=["FINAL(no idea)", "FINAL(still no idea)", "FINAL(never)"]) as lm:
        with pytest.raises(AnswerError) as raised:
            make(lm).completion("ctx", "q", schema=Company)
        calls = len(lm.root_requests)
    assert calls == 2
    error = raised.value
    assert error.text == "still no idea" and "Company" in str(error) and "valid dictionary" in error.problem
    assert error.partial.answer == "still no idea" and error.partial.iterations == 2


def test_the_correction_is_a_round_beyond_max_iterations(make) -> None:
    with ScriptedLM(root=["FINAL(nope)", 'FINAL({"x": 1, "y": 2.5})']) as lm:
        result = make(lm, max_iterations=1).completion("ctx", "q", schema=Point)
    assert result.answer == Point(1.0, 2.5) and result.stopped == "final"


def test_dataclasses_typeddicts_json_and_fences_are_understood() -> None:
    pair = AnswerShape(Pair)
    assert pair.check('```json\n{"left": "a", "right": "b"}\n```') == ({"left": "a", "right": "b"}, None)
    assert AnswerShape(Point).check("{'x': 1, 'y': 2}")[0] == Point(1, 2)
    assert AnswerShape(int).check("42") == (42, None)
    assert AnswerShape(str).check("42") == ("42", None)
    value, problem = AnswerShape(Company).check("__import__('os').system('true')")
    assert value is None and problem is not None and "not JSON or a Python literal" in problem
    assert AnswerShape(Company).plain(Company(name="A", founded=1)) == {"name": "A", "founded": 1}

    class Label(BaseModel):
        label: str

    assert AnswerShape(Label).check("alpha") == (Label(label="alpha"), None)  # SUBMIT(label='alpha') of one field


def test_a_schema_that_is_not_a_type_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="pydantic model, a dataclass or a TypedDict"):
        AnswerShape(object())

    class Old(typing.TypedDict):
        a: int

    if sys.version_info < (3, 12):
        with pytest.raises(ConfigError, match="typing_extensions"):
            AnswerShape(Old)


def test_a_session_takes_a_schema_per_question_and_keeps_plain_data_in_answers(make) -> None:
    script = [code("SUBMIT(name='Acme', founded=1999)"), code("print(answers[0]['founded'])"), "FINAL(done)"]
    with ScriptedLM(root=script) as lm:
        with make(lm).session("ctx") as s:
            typed = s.ask("Which company?", schema=Company)
            plain = s.ask("When?")
        seen = lm.root_requests[2].messages[-1]["content"]
    assert typed.answer == Company(name="Acme", founded=1999) and plain.answer == "done"
    assert "1999" in seen and s.answers[0] == {"name": "Acme", "founded": 1999}
