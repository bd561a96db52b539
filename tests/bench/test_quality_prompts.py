"""``rlm bench ... --prompt A --prompt B --log-dir``: both prompts on the same items, compared, resumable, browsable."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import rlm
from rlm.cli import main
from rlm.core.prompts import SYSTEM_PROMPT
from rlm.trace import Trace
from rlm.trace.runs import BenchRuns

ARGS = ["bench", "oolong", "--n", "2", "--sizes", "8k", "--seeds", "1", "--methods", "base,rlm-batch",
        "--sandbox", "local"]


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)


def _system_prompt(log: Path) -> str:
    sent = next(e for e in Trace.load(log) if e.kind == "history.sent")
    return str(sent.data["add"][0]["content"])


def test_two_prompts_run_on_the_same_items_compared_resumed_and_browsed(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], offline: None) -> None:
    (tmp_path / "A.txt").write_text(SYSTEM_PROMPT)
    (tmp_path / "B.txt").write_text(SYSTEM_PROMPT + "\nCount every record before you answer.\n")
    args = [*ARGS, "--prompt", str(tmp_path / "A.txt"), "--prompt", str(tmp_path / "B.txt"),
            "--out", str(tmp_path / "out"), "--log-dir", str(tmp_path / "out" / "logs")]
    assert main(args) == 0
    out = capsys.readouterr().out
    rows = [line.split(" | ")[0] for line in out.splitlines() if line.startswith("| ") and " 8k " in line]
    assert rows == ["| base", "| rlm-batch [A]", "| rlm-batch [B]"]
    assert "### The prompts compared, per method (A, B)" in out
    assert "| rlm-batch | A | B | 2 | 0 | 2 | 0 | 1.000 | 1.000 | +0.000 | [+0.000, +0.000] |" in out
    results = tmp_path / "out" / "oolong.jsonl"
    records = [json.loads(line) for line in results.read_text().splitlines()]
    assert sorted((r["id"][-1], r["method"], r["prompt"]) for r in records) == [
        (i, m, p) for i in "01" for m, p in (("base", None), ("rlm-batch", "A"), ("rlm-batch", "B"))]
    logged = {r["prompt"]: results.parent / r["log"] for r in records if r["prompt"]}
    assert "Count every record" in _system_prompt(logged["B"]) and "Count every record" not in _system_prompt(
        logged["A"])

    assert main(args) == 0  # everything is done: nothing runs again
    assert "6 of 6 runs already in" in capsys.readouterr().err
    (tmp_path / "B.txt").write_text(SYSTEM_PROMPT + "\nCheck twice.\n")
    assert main(args) == 0  # an edited prompt is a new prompt: its runs are made again
    assert "4 of 6 runs already in" in capsys.readouterr().err

    runs = BenchRuns(results)
    question = runs.questions()[0]
    view = runs.compare(question)
    assert view.labels == ["rlm-batch [A]", "rlm-batch [B]"]
    assert main(["view", str(results)]) == 0
    page = results.with_suffix(".html").read_text()
    assert page.count('class="rlm-cmp-question"') == 2 and "rlm-batch [B]" in page and "expected:" in page
    kept = rlm.export(results, min_score=1.0)
    assert len(kept.examples) == 6 and all(e.metadata["bench"]["expected"] is not None for e in kept.examples)
    assert [why for _, why in kept.skipped] == ["no trace log (a text method, or run without --log-dir)"] * 2


def test_a_prompt_the_loop_cannot_work_with_exits_2_before_any_run(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], offline: None) -> None:
    (tmp_path / "bad.txt").write_text("Answer the question. Use llm_query.")
    assert main([*ARGS, "--prompt", str(tmp_path / "bad.txt"), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"rlm bench oolong: --prompt {tmp_path / 'bad.txt'}: the prompt template never mentions")
    assert "FINAL_VAR(name)" in err and not (tmp_path / "oolong.jsonl").exists()
    assert main([*ARGS, "--prompt", str(tmp_path / "missing.txt"), "--out", str(tmp_path)]) == 2
    assert "does not exist" in capsys.readouterr().err
