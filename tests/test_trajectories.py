"""Real root replies from public runs of other RLM implementations, replayed through rlm's loop.

The replies live in ../shared/trajectories/ (other people's public runs: read from there,
never copied into this project). Each run whose model meant a final answer is replayed in
both sandboxes with a scripted sub-model, and the answer the model meant must come out.
Where a rule of rlm's holds back a FINAL (one written beside code, before its output was
seen), the scripted root says it again, as a real model does once it reads the note.
The runs are loaded by ``rlm.testing.trajectories`` (which ``rlm bench prompt`` replays too).
"""

from __future__ import annotations

import pytest

from rlm import RLM, Endpoint
from rlm.testing import ScriptedLM
from rlm.testing.trajectories import Run, load_runs, scripted_root, shared_dir

SHARED = shared_dir()
pytestmark = pytest.mark.skipif(
    SHARED is None, reason="../shared/trajectories/ is not beside this checkout (other projects' public runs)")
RUNS = load_runs(SHARED)


@pytest.mark.parametrize("sandbox", ["local", "kernel"])
@pytest.mark.parametrize("run", RUNS, ids=[r.name for r in RUNS])
def test_a_real_models_meant_answer_comes_out(run: Run, sandbox: str) -> None:
    with ScriptedLM(root=scripted_root(run), sub=run.sub) as lm:
        rlm = RLM("root", "sub", base_url=lm.base_url, api_key="k", sandbox=sandbox, max_iterations=12,
                  endpoint=Endpoint(retries=0))
        result = rlm.completion(run.context, run.query)
    assert result.ok, (result.stopped, result.answer[:300])
    assert run.meant(result.answer), result.answer[:500]


def test_every_file_was_read() -> None:
    assert len([r for r in RUNS if r.name.startswith("rlms")]) == 6
    assert len([r for r in RUNS if r.name.startswith("paper")]) == 2
    assert [r for r in RUNS if r.name.startswith("minrlm")] and [r for r in RUNS if r.name[:4].isdigit()]
