"""Runs as training data: exactly what the root was sent, in OpenAI's fine-tuning layout, with no secret."""

from __future__ import annotations

import base64
import json
import os
import typing
from pathlib import Path
from typing import Any

import pytest
from openai.types.chat import (
    ChatCompletionAssistantMessageParam,
    ChatCompletionMessageParam,
    ChatCompletionSystemMessageParam,
    ChatCompletionUserMessageParam,
)
from pydantic import TypeAdapter
from scripting import code

import rlm
from rlm import RLM, ConfigError, Endpoint, ModelInfo
from rlm.cli import main
from rlm.core.feedback import SHORT_CHARS
from rlm.testing import ScriptedLM
from rlm.testing.images import png
from rlm.trace.endings import ENDINGS
from rlm.trace.export import REDACTED, examples

STEPS = [code("parts = llm_batch([f'part {i}' for i in range(3)])", "print(parts)"),
         code("longest = max(parts, key=len)", "print(longest)"), "FINAL_VAR(longest)"]
#: The keys OpenAI's fine-tuning file accepts on a chat message (its format checker's list), by role.
PARAMS = {"system": ChatCompletionSystemMessageParam, "user": ChatCompletionUserMessageParam,
          "assistant": ChatCompletionAssistantMessageParam}
MESSAGE = TypeAdapter(ChatCompletionMessageParam)


def check_fine_tuning_line(line: dict[str, Any]) -> None:
    """One line of an OpenAI chat fine-tuning file, checked as the API checks an upload."""
    assert set(line) == {"messages"}
    messages = line["messages"]
    assert messages and any(m["role"] == "assistant" for m in messages)
    for message in messages:
        MESSAGE.validate_python(message)  # the SDK's own message types
        allowed = set(typing.get_type_hints(PARAMS[message["role"]])) | (
            {"weight"} if message["role"] == "assistant" else set())
        assert set(message) <= allowed, message.keys()
        assert isinstance(message["content"], str)
        assert message.get("weight", 1) in (0, 1)


def _rlm(lm: ScriptedLM, **kwargs: Any) -> RLM:
    kwargs.setdefault("endpoint", Endpoint(retries=0))
    return RLM("root", "sub", base_url=lm.base_url, api_key="k", sandbox="local", **kwargs)


def test_the_export_is_what_the_root_was_sent_and_round_trips_through_the_fine_tuning_shape(tmp_path: Path) -> None:
    with ScriptedLM(root=list(STEPS), sub=lambda r: r.prompt.upper()) as lm:
        result = _rlm(lm, log_dir=tmp_path / "logs").completion("alpha beta gamma", "which part is longest?")
        sent = [r.messages for r in lm.root_requests]
    (example,) = examples(result)
    assert example.kind == "root" and example.metadata["stopped"] == "final"
    assert example.messages[:-1] == sent[-1]  # the last root call's messages, exactly as sent
    assert_each_call_trained_once_as_sent([example], sent, [s.reply for s in result.steps])  # short outputs: one
    assert example.messages[-1] == {"role": "assistant", "content": "FINAL_VAR(longest)"}
    assert [m["role"] for m in example.messages] == ["system", "user", "assistant", "user", "assistant", "user",
                                                      "assistant"]
    assert example.metadata["answer"] == result.answer
    done = rlm.export(result.trace.path, tmp_path / "train.jsonl")
    lines = [json.loads(line) for line in (tmp_path / "train.jsonl").read_text().splitlines()]
    assert len(done.examples) == len(lines) == 1
    for line in lines:
        check_fine_tuning_line(line)
    assert lines[0]["messages"] == example.messages
    rlm.export(result, tmp_path / "plain.jsonl", format="messages")
    plain = json.loads((tmp_path / "plain.jsonl").read_text())
    assert plain["messages"] == example.plain() and plain["metadata"]["query"] == "which part is longest?"


def trained(found: list[Any]) -> list[tuple[list[dict[str, Any]], str]]:
    """Every weight-1 assistant message of the examples: (the messages before it, as sent, and its text)."""
    out = []
    for example in found:
        assert example.metadata["targets"] == [k for k, m in enumerate(example.messages)
                                               if m["role"] == "assistant" and m.get("weight", 1) == 1]
        assert example.messages[-1]["role"] == "assistant" and example.messages[-1].get("weight", 1) == 1
        for k in example.metadata["targets"]:
            before = [{"role": m["role"], "content": m["content"]} for m in example.messages[:k]]
            out.append((before, example.messages[k]["content"]))
    return out


def assert_each_call_trained_once_as_sent(found: list[Any], sent: list[Any], replies: list[str]) -> None:
    """Each root call is a weight-1 target exactly once, on exactly the messages it was sent."""
    targets = trained(found)
    calls = list(zip(sent, replies, strict=True))
    assert len(targets) == len(calls)
    for call in calls:
        assert targets.count(call) == calls.count(call) == 1, call[1][:60]


def test_older_outputs_shrink_so_each_call_is_trained_once_on_what_it_was_sent() -> None:
    big = "y" * (3 * SHORT_CHARS)  # over the shrink threshold: each output shrinks once the next one arrives
    script = [code(f"print('{k}' + '{big}')") for k in range(3)] + ["FINAL(done)"]
    with ScriptedLM(root=script) as lm:
        result = _rlm(lm).completion("abc", "q")
        sent = [r.messages for r in lm.root_requests]
    assert len(sent) == 4 and sent[2][3] != sent[1][3]  # turn 1's output, whole at call 2, short at call 3
    found = examples(result)
    assert_each_call_trained_once_as_sent(found, sent, [s.reply for s in result.steps])
    # Call 1 shares call 2's example; every later call saw a shrunk output its predecessor did not.
    assert [len(ex.messages) for ex in found] == [5, 7, 9]
    assert all(check_fine_tuning_line(ex.openai()) is None for ex in found)
    plain = [ex.to_dict() for ex in found]
    assert plain[-1]["metadata"]["targets"] == [8]


def test_a_compacted_history_gives_one_example_per_stretch_each_as_sent() -> None:
    big = "x" * 3_000
    script = [code(f"print('{big}')") for _ in range(4)] + ["FINAL(done)"]
    windows = {"root": ModelInfo(context_window=4_000)}
    with ScriptedLM(root=script) as lm:
        result = _rlm(lm, endpoint=Endpoint(retries=0, pricing=windows)).completion("abc", "q")
        sent = [r.messages for r in lm.root_requests]
    assert any(e.kind == "history.compact" for e in result.trace)
    found = examples(result)
    assert_each_call_trained_once_as_sent(found, sent, [s.reply for s in result.steps])
    assert all(check_fine_tuning_line(ex.openai()) is None for ex in found)


def test_a_fork_trains_only_on_the_turns_its_model_wrote(tmp_path: Path) -> None:
    with ScriptedLM(root=list(STEPS), sub=lambda r: r.prompt.upper()) as lm:
        first = _rlm(lm).completion("alpha beta gamma", "which part is longest?")
        lm.root = ["FINAL_VAR(pick)"]
        forked = first.fork(at=2, code="pick = parts[0]\nprint(pick)")
    (example,) = examples(forked)
    weights = [(m["content"][:20], m.get("weight", 1)) for m in example.messages if m["role"] == "assistant"]
    assert [w for _, w in weights] == [0, 0, 1]  # step 1 replayed, step 2 edited by hand, step 3 the model's
    check_fine_tuning_line(example.openai())
    assert examples(first)[0].messages[-1].get("weight", 1) == 1


def test_no_secret_and_no_unseen_context_goes_into_an_export(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key = "sk-test-" + "s3cr3t" * 6
    monkeypatch.setenv("OPENAI_API_KEY", key)
    unseen = "UNSEEN-MARKER-" * 3
    context = "SEEN-PREVIEW " + "filler line\n" * 1_000 + unseen + "filler line\n" * 1_000  # the middle: never shown
    leak = code("import os", "print(os.environ['OPENAI_API_KEY'])",
                "print('proxy at http://alice:hunter2pass@127.0.0.1:9/v1')")
    with ScriptedLM(root=[leak, "FINAL(done)"]) as lm:
        base_url = lm.base_url.replace("http://", "http://bob:pa55word9@")
        result = RLM("root", "sub", base_url=base_url, api_key=key, sandbox="local",
                     endpoint=Endpoint(retries=0), log_dir=tmp_path).completion(context, "what is there?")
        assert key in lm.root_requests[-1].messages[-1]["content"]  # the model did see it: the export must not
    for layout in ("openai", "messages"):
        target = tmp_path / f"{layout}.jsonl"
        rlm.export([result, result.trace.path], target, format=layout, sub_calls=True)
        text = target.read_text()
        for secret in (key, "hunter2pass", "pa55word9", "alice:"):
            assert secret not in text, (layout, secret)
        assert REDACTED in text and "SEEN-PREVIEW" in text and unseen not in text
    (asked,) = examples(result, context=True)
    assert unseen in asked.metadata["context"]
    with pytest.raises(ConfigError, match="needs the RLMResult"):
        examples(result.trace, context=True)


def test_sub_calls_and_children_are_examples_when_asked() -> None:
    script = [code("a = llm_query('say hi')", "b = rlm_query('count words', 'one two three')", "print(a, b)"),
              code("print(len(context))"), "FINAL(3)", "FINAL(done)"]
    with ScriptedLM(root=script, sub=lambda r: "hi") as lm:
        result = _rlm(lm, max_depth=2).completion("ctx", "q")
    kinds = [e.kind for e in examples(result, sub_calls=True)]
    assert kinds.count("root") == 1 and kinds.count("child") == 1 and kinds.count("sub") == 1
    sub = next(e for e in examples(result, sub_calls=True) if e.kind == "sub")
    assert sub.plain() == [{"role": "user", "content": "say hi"}, {"role": "assistant", "content": "hi"}]
    assert [e.kind for e in examples(result)] == ["root"]


def test_outcome_filters_and_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    logs = tmp_path / "logs"
    with ScriptedLM(root=list(STEPS), sub=lambda r: r.prompt.upper()) as lm:
        _rlm(lm, log_dir=logs).completion("alpha beta", "q")
        lm.root = [code("print(1)")] * 3  # code even when asked to answer: it ends with what its variables hold
        out_of_turns = _rlm(lm, log_dir=logs, max_iterations=1).completion("alpha beta", "q")
    assert out_of_turns.stopped == "fallback"
    kept = rlm.export(logs)
    assert len(kept.examples) == 1 and kept.runs == 2 and kept.skipped[0][1] == "stopped: fallback"
    assert len(rlm.export(logs, stopped=None).examples) == 2
    assert rlm.export(logs, min_score=0.5).skipped[0][1] in ("no score", "stopped: fallback")
    assert main(["export", str(logs), "-o", str(tmp_path / "t.jsonl"), "--stopped", "all"]) == 0
    err = capsys.readouterr().err
    assert "2 examples from 2 runs" in err and "left out" not in err
    assert len((tmp_path / "t.jsonl").read_text().splitlines()) == 2
    assert main(["export", str(tmp_path / "nope"), "-o", str(tmp_path / "x.jsonl")]) == 2
    assert "nope: no such file; pass" in capsys.readouterr().err
    assert main(["export", str(logs), "-o", str(tmp_path / "x.jsonl"), "--stopped", "finall"]) == 2
    assert "stopped: finall is not an ending; choose from final, max_iterations" in capsys.readouterr().err
    assert main(["export", "--help"]) == 0  # main returns argparse's exit code (rlm --help's too)
    helped = " ".join(capsys.readouterr().out.split())
    assert all(name in helped for name in ENDINGS), helped  # every ending --stopped takes, fallback too
    assert main(["export", str(logs), "-o", str(tmp_path / "y.jsonl"), "--min-score", "0.5"]) == 1
    assert "left out 1: no score" in capsys.readouterr().err
    assert os.path.getsize(tmp_path / "y.jsonl") == 0



def test_a_sub_call_with_an_image_is_not_exported_as_text_alone() -> None:
    picture = base64.b64encode(png(32, 24)).decode()
    script = [code("import base64", f"red = base64.b64decode({picture!r})",
                   "a = llm_query('what is drawn?', images=[red])", "b = llm_query('say hi')", "print(a, b)"),
              "FINAL(done)"]
    with ScriptedLM(root=script, sub=lambda r: "a square" if r.images else "hi") as lm:
        result = _rlm(lm).completion("ctx", "q")
    subs = [e for e in examples(result, sub_calls=True) if e.kind == "sub"]
    assert [e.plain()[0]["content"] for e in subs] == ["say hi"]
    done = rlm.export(result, sub_calls=True)
    assert [why for _, why in done.skipped] == ["1 sub-call(s) the trace does not keep whole (a long prompt's "
                                                "middle, or images)"]
    assert [e.kind for e in done.examples] == ["root", "sub"]
