"""``rlm bench prompt`` measures what the root reads, offline, and holds issue 23's targets."""

from __future__ import annotations

import pytest

from rlm.bench.prompt import TARGETS, scripted
from rlm.cli import main
from rlm.testing.trajectories import shared_dir


def test_the_worst_cases_stay_within_their_targets() -> None:
    seven, ten = scripted("local")
    assert seven.root_calls == 2 and seven.largest_feedback_tokens <= TARGETS["seven_blocks_feedback_tokens"]
    assert seven.largest_feedback_chars > 10_000  # the budget was spent, not skipped: the output is there
    assert ten.root_calls == 11 and ten.root_tokens <= TARGETS["ten_turns_root_tokens"]
    assert seven.meant and ten.meant


@pytest.mark.skipif(shared_dir() is None, reason="../shared/trajectories/ is not beside this checkout")
def test_the_command_prints_every_run_and_meets_its_targets(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "prompt"]) == 0
    out = capsys.readouterr().out
    assert "| paper-B2-qwen3-coder | 2 |" in out and "NOT FOUND" not in out and "MISSED" not in out
    assert "system prompt, every line on: " in out
