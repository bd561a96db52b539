"""``rlm ask`` end to end: a file, a directory and stdin; JSON; the simulated model; one-line errors."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import rlm
from rlm.testing import ScriptedLM

ROOT = Path(rlm.__file__).resolve().parents[1]


def ask(*args: str, stdin: str | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_") and k != "RLM_SANDBOX_ISOLATION"}
    return subprocess.run([sys.executable, "-m", "rlm.cli", "ask", *args], input=stdin, capture_output=True,
                          text=True, timeout=120, cwd=ROOT, env={**base, **(env or {})}, check=False)


def test_a_file_with_the_simulated_model_prints_the_answer_and_says_it_is_simulated(tmp_path: Path) -> None:
    doc = tmp_path / "doc.txt"
    doc.write_text("Section 1 is about lunch.\nThe merger was approved in Section 3.\n")
    done = ask("--context", str(doc), "--query", "Which section mentions the merger?")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "The merger was approved in Section 3."
    assert "SIMULATED MODE" in done.stderr and "calls" in done.stderr  # progress goes to stderr


@pytest.mark.parametrize("sandbox", ["local", "kernel"])
def test_a_directory_becomes_a_dict_of_its_text_files(tmp_path: Path, sandbox: str) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.py").write_text("def f():\n    return 1\n")
    (tmp_path / "README.md").write_text("read me")
    (tmp_path / "blob.bin").write_bytes(b"\0\1\2")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "config").write_text("secret")
    program = "```repl\nprint(sorted(context))\n```"
    with ScriptedLM(root=[program, "FINAL(listed)"]) as lm:
        done = ask("--context", str(tmp_path), "--query", "q", "--base-url", lm.base_url, "--sandbox", sandbox,
                   "--json", env={"OPENAI_API_KEY": "k"})
        seen = lm.root_requests[1].messages[-1]["content"]
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["answer"] == "listed" and result["ok"] and result["usage"]["calls"] == 2
    assert "['README.md', 'src/a.py']" in seen


def test_stdin_is_the_context(tmp_path: Path) -> None:
    with ScriptedLM(root=["```repl\nprint(len(context))\n```", "FINAL(read it)"]) as lm:
        done = ask("--context", "-", "--query", "q", "--base-url", lm.base_url, "--sandbox", "local",
                   "--log-dir", str(tmp_path), stdin="x" * 1234, env={"OPENAI_API_KEY": "k"})
        seen = lm.root_requests[1].messages[-1]["content"]
    assert done.returncode == 0 and done.stdout == "read it\n" and "1234" in seen
    assert list(tmp_path.glob("*.jsonl"))  # --log-dir wrote the trace


def test_bad_input_exits_non_zero_with_one_line_and_no_traceback(tmp_path: Path) -> None:
    missing = ask("--context", str(tmp_path / "nope.txt"), "--query", "q")
    assert missing.returncode == 2 and "no such file" in missing.stderr and "Traceback" not in missing.stderr
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (tmp_path / "doc.txt").write_text("text")
    unreachable = ask("--context", str(tmp_path / "doc.txt"), "--query", "q", "--sandbox", "local",
                      "--base-url", f"http://127.0.0.1:{port}/v1")
    assert unreachable.returncode == 1 and "Traceback" not in unreachable.stderr
    assert f"127.0.0.1:{port}" in unreachable.stderr and "refused" in unreachable.stderr
    no_key = ask("--context", str(tmp_path / "doc.txt"), "--query", "q", "--base-url", "https://api.openai.com/v1")
    assert no_key.returncode == 2 and "OPENAI_API_KEY" in no_key.stderr and "Traceback" not in no_key.stderr


def test_version() -> None:
    done = subprocess.run([sys.executable, "-m", "rlm.cli", "--version"], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == f"rlm {rlm.__version__}"
