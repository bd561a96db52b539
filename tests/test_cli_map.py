"""``rlm map``: rows in, answers out as JSONL, resumable from its checkpoint; one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from rlm.testing import ScriptedLM


def rlm_map(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    return subprocess.run([sys.executable, "-m", "rlm.cli", "map", *args], capture_output=True, text=True,
                          timeout=120, env={**base, **(env or {})}, check=False)


def test_a_jsonl_map_resumes_and_reports_its_status(tmp_path: Path) -> None:
    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(json.dumps({"text": f"t{i}"}) + "\n" for i in range(12)))
    store = str(tmp_path / "m.sqlite")
    with ScriptedLM(sub=lambda r: r.prompt[::-1]) as lm:
        args = ("--input", str(rows), "--prompt-template", "say {text}", "--checkpoint", store,
                "--base-url", lm.base_url)
        first = rlm_map(*args, env={"OPENAI_API_KEY": "k"})
        again = rlm_map(*args, env={"OPENAI_API_KEY": "k"})
        sent = lm.stats["requests"]
    assert first.returncode == 0, first.stderr
    answers = [json.loads(x)["answer"] for x in first.stdout.splitlines()]
    assert answers == [f"say t{i}"[::-1] for i in range(12)] and again.stdout == first.stdout and sent == 12
    status = rlm_map("--status", store)
    assert json.loads(status.stdout)["answered"] == 12


def test_csv_rows_with_the_simulated_model(tmp_path: Path) -> None:
    rows = tmp_path / "rows.csv"
    rows.write_text("id,text\n1,alpha\n2,beta\n")
    done = rlm_map("--input", str(rows), "--prompt-template", "{id}: {text}", "--output", str(tmp_path / "o.jsonl"))
    assert done.returncode == 0, done.stderr
    assert "SIMULATED MODE" in done.stderr
    assert len((tmp_path / "o.jsonl").read_text().splitlines()) == 2


def test_bad_input_is_one_line_and_exit_2(tmp_path: Path) -> None:
    rows = tmp_path / "rows.jsonl"
    rows.write_text('{"a": 1}\n')
    missing_field = rlm_map("--input", str(rows), "--prompt-template", "{text}")
    assert missing_field.returncode == 2 and "no field 'text'" in missing_field.stderr
    assert "Traceback" not in missing_field.stderr
    nothing = rlm_map("--input", str(tmp_path / "none.jsonl"))
    assert nothing.returncode == 2 and "Traceback" not in nothing.stderr
    assert rlm_map("--status", str(tmp_path / "none.sqlite")).returncode == 2


def test_via_batch_sends_one_batch_and_status_lists_it(tmp_path: Path) -> None:
    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(json.dumps({"text": f"t{i}"}) + "\n" for i in range(6)))
    store = str(tmp_path / "b.sqlite")
    with ScriptedLM(sub=lambda r: r.prompt.upper()) as lm:
        args = ("--input", str(rows), "--prompt-template", "say {text}", "--checkpoint", store, "--via", "batch",
                "--poll-s", "0.05", "--base-url", lm.base_url)
        done = rlm_map(*args, env={"OPENAI_API_KEY": "k"})
        served = lm.stats
    assert done.returncode == 0, done.stderr
    assert [json.loads(x)["answer"] for x in done.stdout.splitlines()] == [f"SAY T{i}" for i in range(6)]
    assert served["requests"] == 0 and served["batches"]["batches_created"] == 1
    status = json.loads(rlm_map("--status", store).stdout)
    assert status["answered"] == 6 and [b["status"] for b in status["batches"]] == ["completed"]
    bad = rlm_map("--input", str(rows), "--via", "batch", "--poll-s", "0")
    assert bad.returncode == 2 and "--poll-s must be a positive number" in bad.stderr


def test_query_runs_a_completion_per_row_and_bad_combinations_are_one_line(tmp_path: Path) -> None:
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps({"text": "The merger closed in May."}) + "\n" + json.dumps({"text": "No news."}) + "\n")
    done = rlm_map("--input", str(rows), "--prompt-template", "{text}", "--query", "When did the merger close?",
                   "--sandbox", "local")
    assert done.returncode == 0, done.stderr
    answers = [json.loads(x)["answer"] for x in done.stdout.splitlines()]
    assert len(answers) == 2 and "May" in answers[0]
    for flags, says in ((("--via", "batch", "--query", "q"), "--via batch sends one prompt per row"),
                        (("--executor", "ray"), "--executor ray runs completions (--query Q)")):
        bad = rlm_map("--input", str(rows), *flags)
        assert bad.returncode == 2 and says in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
