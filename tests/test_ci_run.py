"""CI runs the README's test command, exactly: what a contributor runs is what CI judges."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ci_runs_the_readmes_test_command_exactly() -> None:
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"Run the tests:\s*```bash\n(.+?)\n```", readme, re.DOTALL)
    assert block, "README.md has no 'Run the tests:' bash block"
    command = block.group(1).strip()
    assert "pytest" in command and "\n" not in command
    lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert command in lines, f".ci/run does not run the README's test command: {command}"
