"""rlm's pytest plugin: a project that installs rlm gets the ``scripted_lm`` fixture with no conftest of its own."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

USER_TEST = '''
from rlm import RLM


def test_a_completion_against_the_fixture(scripted_lm):
    scripted_lm.root = ["```repl\\nx = llm_query('hi')\\n```", "FINAL_VAR(x)"]
    scripted_lm.sub = lambda request: request.prompt.upper()
    rlm = RLM("root", "sub", base_url=scripted_lm.base_url, api_key="x", sandbox="local")
    assert rlm.completion("ctx", "q").answer == "HI"
    assert scripted_lm.stats["sub"] == 1
'''


def test_a_project_outside_the_repo_gets_scripted_lm(tmp_path: Path) -> None:
    (tmp_path / "test_user.py").write_text(USER_TEST)
    # A fresh process in a directory with no conftest: only the installed entry point can supply the fixture.
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_user.py"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "1 passed" in done.stdout
