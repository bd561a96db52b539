"""``rlm.map(prompts, via="batch")``: the provider's Batch API through the real openai SDK, resumable, half price."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from rlm import RLM, BatchAPI, Budget, ConfigError, Endpoint, FailedCall, Pricing, ProgressModel, Usage
from rlm.checkpoint import Checkpoint, input_hash
from rlm.runtime import run
from rlm.testing import Fault, ScriptedLM

FAST = BatchAPI(poll_s=0.02)


def make(lm: ScriptedLM, **kwargs: object) -> RLM:
    kwargs.setdefault("endpoint", Endpoint(retries=0))
    return RLM("root", "gpt-5-mini", base_url=lm.base_url, api_key="k", sandbox="local", **kwargs)  # type: ignore[arg-type]


def test_a_batch_map_answers_in_order_at_half_price_and_reports_its_polls(tmp_path: Path) -> None:
    prompts = [f"item {i}" for i in range(50)]
    snapshots: list[str] = []
    with ScriptedLM(sub=lambda r: r.prompt.upper(), latency=0.002) as lm:
        lm.batches.validating_s = 0.5  # the first poll (after 0.02 s) must see it, even on a loaded machine
        answers = make(lm).map(prompts, checkpoint=tmp_path / "b.sqlite", via=FAST,
                               subscribers=[ProgressModel(lambda p: snapshots.append(p.waiting))])
        served = lm.stats
    assert answers == [p.upper() for p in prompts] and answers.resumed == 0
    assert served["requests"] == 0  # no single call: every prompt went in the batch
    assert served["batches"]["files_uploaded"] == 1 and served["batches"]["batches_created"] == 1
    assert served["batches"]["lines_answered"] == 50
    tokens = answers.usage.total
    listed = Pricing().cost("gpt-5-mini", Usage(1, tokens.prompt_tokens, tokens.completion_tokens))
    assert tokens.calls == 50 and tokens.cost_usd == pytest.approx(listed / 2)
    polls = [e.data for e in answers.trace if e.kind == "batch.poll"]
    assert polls[0]["status"] == "validating" and polls[-1] == {**polls[-1], "status": "completed", "completed": 50,
                                                                 "total": 50}
    assert any(s.startswith("batch in_progress ") for s in snapshots) and snapshots[-1] == ""
    with Checkpoint(tmp_path / "b.sqlite") as cp:
        (record,) = cp.batches()
        rows = list(cp.rows())
    assert record.status == "completed" and sorted(record.items) == list(range(50))
    assert all(r.extra == {"batch": record.batch_id} for r in rows)


@pytest.mark.parametrize("in_output", [False, True], ids=["error-file", "output-file"])
def test_failed_lines_become_failed_calls_and_a_rerun_sends_only_them(tmp_path: Path, in_output: bool) -> None:
    prompts = [f"p{i}" for i in range(12)]
    store = tmp_path / "f.sqlite"
    with ScriptedLM(sub=lambda r: "ok " + r.prompt) as lm:
        lm.batches.errors_in_output = in_output
        lm.fail(Fault.http(500, "overloaded"), when=lambda r: r.prompt in ("p3", "p8"), times=2)
        first = make(lm).map(prompts, checkpoint=store, via=FAST)
        assert [i for i, a in enumerate(first) if isinstance(a, FailedCall)] == [3, 8]
        assert "HTTP 500" in first[3] and "overloaded" in first[3] and first.usage.calls == 10
        second = make(lm).map(prompts, checkpoint=store, via=FAST)
        served = lm.stats["batches"]
    assert second == [f"ok p{i}" for i in range(12)] and second.resumed == 10
    assert served["batches_created"] == 2 and served["lines_answered"] == 14  # the rerun's batch held only the two


def test_an_expired_batch_keeps_what_it_answered_and_a_rerun_sends_the_rest(tmp_path: Path) -> None:
    prompts = [f"q{i}" for i in range(30)]
    store = tmp_path / "e.sqlite"
    with ScriptedLM(sub=lambda r: r.prompt * 2) as lm:
        lm.batches.expire_after = 18
        first = make(lm).map(prompts, checkpoint=store, via=FAST)
        assert first[:18] == [p * 2 for p in prompts[:18]]
        assert all(isinstance(a, FailedCall) and "expired" in a for a in first[18:])
        lm.batches.expire_after = None
        second = make(lm).map(prompts, checkpoint=store, via=FAST)
        served = lm.stats["batches"]
    assert second == [p * 2 for p in prompts] and second.resumed == 18 and served["lines_answered"] == 30
    with Checkpoint(store) as cp:
        assert [b.status for b in cp.batches()] == ["expired", "completed"]


def test_a_changed_prompt_is_refused_not_mixed_and_bad_settings_say_what_to_do(tmp_path: Path) -> None:
    store = tmp_path / "c.sqlite"
    with ScriptedLM() as lm:
        make(lm).map(["a", "b"], checkpoint=store, via=FAST)
        with pytest.raises(ConfigError, match="item 1's input changed"):
            make(lm).map(["a", "B"], checkpoint=store, via=FAST)
        with pytest.raises(ConfigError, match="via='nope' is not available"):
            make(lm).map(["a"], via="nope")
        with pytest.raises(ConfigError, match="Budget cannot stop a provider batch"):
            make(lm, budget=Budget(max_calls=3)).map(["a"], via="batch")
        with pytest.raises(ConfigError, match="poll_s"):
            BatchAPI(poll_s=0)
        assert lm.stats["batches"]["batches_created"] == 1


async def _uploaded(lm: ScriptedLM, prompts: list[str], create: bool) -> tuple[str, str | None]:
    """What a run killed after uploading (and maybe creating) a batch leaves at the provider: its file and batch."""
    from rlm.lm.batches import BatchClient, request_line

    client = BatchClient(api_key="k", base_url=lm.base_url)
    lines = b"".join(request_line(f"item-{i}", "gpt-5-mini", [{"role": "user", "content": p}], {}, lm.base_url)
                     for i, p in enumerate(prompts))
    file_id = await client.upload(lines, "killed.jsonl")
    batch = await client.create(file_id, "24h", {}) if create else None
    await client.aclose()
    return file_id, batch.id if batch else None


def test_a_file_uploaded_by_a_killed_run_is_not_uploaded_again(tmp_path: Path) -> None:
    """Killed after the upload: a rerun creates the batch from that file, or adopts the one already made from it."""
    for create in (False, True):
        store = tmp_path / f"u{create}.sqlite"
        with ScriptedLM(sub=lambda r: r.prompt + "!") as lm:
            file_id, _ = run(_uploaded(lm, ["x", "y"], create))
            with Checkpoint(store) as cp:
                cp.add_batch(file_id, {0: input_hash("x"), 1: input_hash("y")})
            answers = make(lm).map(["x", "y"], checkpoint=store, via=FAST)
            served = lm.stats["batches"]
        assert answers == ["x!", "y!"]
        assert served["files_uploaded"] == 1 and served["batches_created"] == 1


def test_an_open_batch_over_items_the_rerun_dropped_is_still_collected(tmp_path: Path) -> None:
    store = tmp_path / "shrunk.sqlite"
    with ScriptedLM(sub=lambda r: r.prompt + "!") as lm:
        file_id, batch_id = run(_uploaded(lm, ["x", "y", "z"], create=True))
        assert batch_id is not None
        with Checkpoint(store) as cp:
            cp.add_batch(file_id, {i: input_hash(p) for i, p in enumerate(["x", "y", "z"])})
            cp.set_batch(file_id, batch_id)
        answers = make(lm).map(["x"], checkpoint=store, via=FAST)
        assert lm.stats["batches"]["batches_created"] == 1
    assert answers == ["x!"]
    with Checkpoint(store) as cp:
        assert [(r.index, r.answer) for r in cp.rows()] == [(0, "x!"), (1, "y!"), (2, "z!")]


SCRIPT = """
import sys
from rlm import RLM, BatchAPI, Endpoint
rlm = RLM("root", "gpt-5-mini", base_url=sys.argv[1], api_key="k", sandbox="local", endpoint=Endpoint(retries=0))
prompts = [f"item {i}" for i in range(50)]
if len(sys.argv) > 3:
    prompts[7] = "changed"
answers = rlm.map(prompts, checkpoint=sys.argv[2], via=BatchAPI(poll_s=0.05))
print(len(answers), answers.resumed, sum(a == "answer " + p for a, p in zip(answers, prompts)), flush=True)
"""


def test_a_batch_map_killed_while_waiting_polls_the_same_batch_when_rerun(tmp_path: Path) -> None:
    store = tmp_path / "killed.sqlite"
    script = tmp_path / "batch_map.py"
    script.write_text(textwrap.dedent(SCRIPT))
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).parents[1]), env.get("PYTHONPATH", "")])
    with ScriptedLM(sub=lambda r: "answer " + r.prompt, latency=0.04) as lm:  # 50 lines: about 2 s
        child = subprocess.Popen([sys.executable, str(script), lm.base_url, str(store)], env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while lm.stats["batches"]["polls"] < 2:  # the child polls only once the batch is in its checkpoint
            assert time.monotonic() < deadline and child.poll() is None, child.stderr and child.stderr.read()
            time.sleep(0.01)
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=10)
        killed_at = lm.stats["batches"]
        assert killed_at["lines_answered"] < 50, "the batch finished before the kill: the test proved nothing"
        with Checkpoint(store) as cp:
            (record,) = cp.batches()
            assert record.open and record.batch_id is not None and cp.status()["answered"] == 0
        changed = subprocess.run([sys.executable, str(script), lm.base_url, str(store), "changed"], env=env,
                                 capture_output=True, text=True, timeout=120, check=False)
        assert changed.returncode != 0 and "item 7's input changed since it was sent in batch" in changed.stderr
        rerun = subprocess.run([sys.executable, str(script), lm.base_url, str(store)], env=env,
                               capture_output=True, text=True, timeout=120, check=True)
        served = lm.stats["batches"]
    assert rerun.stdout.split() == ["50", "0", "50"]
    assert served["files_uploaded"] == 1 and served["batches_created"] == 1 and served["lines_answered"] == 50
    with Checkpoint(store) as cp:
        rows = list(cp.rows())
        assert [b.status for b in cp.batches()] == ["completed"]
    assert [r.index for r in rows] == list(range(50)) and all(r.answer == f"answer item {r.index}" for r in rows)


async def test_amap_via_batch_is_the_same_map_awaited() -> None:
    with ScriptedLM(sub=lambda r: r.prompt[::-1]) as lm:
        answers = await make(lm).amap(["abc", "de"], via=FAST)
        assert answers == ["cba", "ed"] and lm.stats["batches"]["batches_created"] == 1


def test_a_map_bigger_than_one_batch_is_sent_as_several_waited_on_together(tmp_path: Path) -> None:
    with ScriptedLM(sub=lambda r: r.prompt + "?") as lm:
        answers = make(lm).map([f"x{i}" for i in range(45)], checkpoint=tmp_path / "s.sqlite",
                               via=BatchAPI(poll_s=0.02, max_requests=20))
        served = lm.stats["batches"]
    assert answers == [f"x{i}?" for i in range(45)] and served["batches_created"] == 3
    with Checkpoint(tmp_path / "s.sqlite") as cp:
        assert [len(b.items) for b in cp.batches()] == [20, 20, 5]


def test_a_map_of_calls_over_a_checkpoint_with_an_open_batch_warns_that_it_pays_twice(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = tmp_path / "w.sqlite"
    with Checkpoint(store) as cp:
        cp.add_batch("file-x", {})
    with ScriptedLM() as lm, caplog.at_level("WARNING", logger="rlm"):
        make(lm).map(["a"], checkpoint=store)
    assert "provider batches still open" in caplog.text
