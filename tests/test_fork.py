"""Forking a finished run at a step: the steps before it replayed from the record, then live."""

from __future__ import annotations

from pathlib import Path

import pytest
from scripting import code

from rlm import ConfigError
from rlm.core.fork import ForkError
from rlm.testing import ScriptedLM

STEPS = [
    code("parts = llm_batch([f'summarise {w}' for w in context.split()])", "print(parts)"),
    code("best = max(parts, key=len)", "print(best)"),
    "FINAL_VAR(best)",
]



def test_fork_at_step_2_replays_step_1_without_calls_and_reaches_the_edited_answer(make, tmp_path: Path) -> None:
    with ScriptedLM(root=list(STEPS), sub=lambda r: r.prompt.upper()) as lm:
        rlm = make(lm, log_dir=tmp_path)
        first = rlm.completion("alpha beta gamma", "which part is longest?")
        assert first.answer == "SUMMARISE ALPHA" and lm.stats["sub"] == 3
        lm.root = ["FINAL_VAR(pick)"]  # what the root says after the edited step
        forked = first.fork(at=2, code="pick = min(parts, key=len) + ' (edited)'\nprint(pick)")
        assert lm.stats["sub"] == 3  # step 1's three sub-calls came from the record
        assert forked.answer == "SUMMARISE BETA (edited)" and forked.ok
        edited_seen = lm.root_requests[-1].messages
        assert "SUMMARISE BETA (edited)" in edited_seen[-1]["content"]  # the root read the edited step's output
        assert any("summarise" in str(m["content"]).lower() or "SUMMARISE" in str(m["content"]) for m in edited_seen)
        fork_event = next(e for e in forked.trace if e.kind == "run.fork")
        origin = next(e for e in first.trace if e.kind == "run.start")
        assert fork_event.data["origin"] == origin.id and fork_event.data["at"] == 2
        assert [s.iteration for s in forked.steps] == [1, 2, 3]
        assert "forked from run" in forked.trace._repr_html_()
        # The same fork from the saved log, by path.
        lm.root = ["FINAL_VAR(pick)"]
        again = rlm.fork(first.trace.path, at=2, code="pick = parts[2]", context="alpha beta gamma")
        assert again.answer == "SUMMARISE GAMMA" and lm.stats["sub"] == 3


def test_a_replayed_step_that_asks_for_a_call_not_in_the_record_says_which(make) -> None:
    with ScriptedLM(root=list(STEPS), sub=lambda r: r.prompt.upper()) as lm:
        rlm = make(lm)
        first = rlm.completion("alpha beta gamma", "q")
        with pytest.raises(ForkError, match=r"replaying step 1 asked for a call the record does not hold.*summarise d"):
            rlm.fork(first, at=2, code="print(1)", context="delta beta gamma")  # another context
        with pytest.raises(ForkError, match=r"steps 1\.\.3"):
            first.fork(at=7, code="print(1)")
        with pytest.raises(ConfigError, match="code"):
            first.fork(at=1, code="  ")
