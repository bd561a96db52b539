"""``rlm bench oolong`` offline: announced as a harness check, resumable after a kill, every run once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rlm.cli import main

ROOT = Path(__file__).resolve().parents[2]
ARGS = ["bench", "oolong", "--n", "3", "--sizes", "8k", "--seeds", "2", "--methods", "base,program,rlm-batch",
        "--sandbox", "local"]
RUNS = 3 * 2 * 3


def _offline_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


@pytest.mark.timeout(120)
def test_a_killed_run_continues_and_every_run_is_there_once(tmp_path: Path) -> None:
    results = tmp_path / "oolong.jsonl"
    command = [sys.executable, "-m", "rlm.cli", *ARGS, "--out", str(tmp_path), "--sim-latency", "0.15"]
    first = subprocess.Popen(command, env=_offline_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while len(_lines(results)) < 4 and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    first.communicate(timeout=30)
    killed_at = len(_lines(results))
    assert 4 <= killed_at < RUNS, "the kill must land mid-run"
    with results.open("a") as fh:  # as if killed in the middle of writing a line
        fh.write('{"key": "half a li')

    command = command[:-2]  # the rest at full speed: the scripted model's latency is not part of a run's key
    second = subprocess.run(command, env=_offline_env(), capture_output=True, text=True, timeout=90)
    assert second.returncode == 0, second.stderr[-2000:]
    assert f"{killed_at} of {RUNS} runs already in" in second.stderr
    records = [json.loads(line) for line in _lines(results)]
    keys = [r["key"] for r in records]
    assert len(keys) == len(set(keys)) == RUNS
    assert {(r["seed"], r["index"], r["method"]) for r in records} == {
        (s, i, m) for s in range(2) for i in range(3) for m in ("base", "program", "rlm-batch")}
    assert all(r["score"] == 1.0 and r["error"] is None for r in records)
    third = subprocess.run(command, env=_offline_env(), capture_output=True, text=True, timeout=60)
    assert f"{RUNS} of {RUNS} runs already in" in third.stderr and len(_lines(results)) == RUNS
    assert third.stdout == second.stdout


def test_offline_it_says_harness_check_and_prints_the_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    assert main([*ARGS, "--n", "2", "--seeds", "1", "--out", str(tmp_path), "--offline-policy", "wrong"]) == 0
    out, err = capsys.readouterr()
    assert err.startswith("HARNESS CHECK, NOT MODEL QUALITY") and "wrong policy" in err
    assert "(HARNESS CHECK, wrong policy: not model quality)" in out.splitlines()[0]
    rows = [line for line in out.splitlines() if line.startswith("| ") and "8k" in line]
    assert [row.split(" | ")[0] for row in rows] == ["| base", "| program", "| rlm-batch"]
    assert all(" 2 (1) " in row and "n/a" in row for row in rows)
    assert max(float(row.split(" | ")[4].split(" ± ")[0]) for row in rows) < 0.1


def test_bad_arguments_exit_2_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "sniah", "--n", "0"]) == 2
    assert capsys.readouterr().err.strip() == "rlm bench sniah: --n must be at least 1"
    assert main(["bench", "sniah", "--needles", "0"]) == 2
    assert capsys.readouterr().err.strip() == "rlm bench sniah: --needles must be at least 1"
    assert main(["bench", "codeqa", "--source", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rlm bench codeqa: no Python files under") and "pass --source DIR" in err
    assert main(["bench", "oolong", "--methods", "base,magic"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rlm bench oolong: argument --methods: ") and err.count("\n") == 1


def test_runs_made_from_another_context_are_not_continued(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    args = ["bench", "sniah", "--n", "1", "--seeds", "1", "--sizes", "8k", "--sandbox", "local", "--out", str(tmp_path)]
    assert main([*args, "--methods", "program"]) == 0
    results = tmp_path / "sniah.jsonl"
    [record] = [json.loads(line) for line in _lines(results)]
    record["fingerprint"] = "0" * 16  # as if the generator had changed since
    results.write_text(json.dumps(record) + "\n")
    capsys.readouterr()
    assert main([*args, "--methods", "program,base"]) == 2
    err = capsys.readouterr().err
    assert "made from another context or query" in err and "pass another --out" in err
    assert _lines(results) == [json.dumps(record)]
