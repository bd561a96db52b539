"""Traces of real runs (scripted server, real openai client): events, JSONL logs, the tree, the page."""

from __future__ import annotations

import json
import re
import stat

import pytest

from rlm import RLM, Endpoint
from rlm.cli import main
from rlm.errors import TraceFormatError
from rlm.testing import Fault, ScriptedLM
from rlm.trace import SPAN_KINDS, Event, JsonlWriter, RunState, Trace, build_tree

BATCH = """```repl
answers = llm_batch([f"item {i}" for i in range(20)], max_concurrent=5)
failed = [i for i, a in enumerate(answers) if isinstance(a, FailedCall)]
print("failed:", failed)
```"""


def item(req) -> str:
    return "<b>" + req.prompt.upper() + "</b>"


def make_rlm(lm: ScriptedLM, **kwargs) -> RLM:
    kwargs.setdefault("endpoint", Endpoint(retries=0))
    kwargs.setdefault("sandbox", "local")
    return RLM("root", "sub", base_url=lm.base_url, api_key="k", **kwargs)


@pytest.fixture(scope="module")
def run():
    """One run: a 20-item batch where item 7 fails with HTTP 500."""
    with ScriptedLM(root=[BATCH, "FINAL_VAR(answers)"], sub=item, latency=(0.01, 0.05)) as lm:
        lm.fail(Fault.http(500, "boom"), when=lambda r: r.role == "sub" and r.prompt == "item 7")
        result = make_rlm(lm).completion("some context", "shout the items")
        yield result, dict(lm.stats)


def test_result_trace_is_a_tuple_of_events_that_knows_its_run(run):
    result, _ = run
    trace = result.trace
    assert trace == tuple(trace) and trace[0].id == trace[-1].id and trace[0].parent is None  # one run's span
    assert all(isinstance(e, Event) for e in trace)
    assert len(trace) == len(list(trace)) and trace[0].kind == "run.start" and trace[-1].kind == "run.end"
    kinds = {e.span for e in trace}
    assert kinds == set(SPAN_KINDS) - {"tool"} | {"history"}  # no tool call; each root call's messages
    assert sum(e.kind == "history.sent" for e in trace) == 2
    assert sum(e.kind == "call.start" for e in trace) == 22  # 2 root turns + 20 items
    assert re.fullmatch(r"Trace\(\d+ events, 1 run, 22 calls\)", repr(trace))


def test_tree_rebuilds_run_iteration_exec_batch_call(run):
    result, _ = run
    (root,) = result.trace.tree()
    assert root.kind == "run" and root.status == "ok" and root.data["answer"] == result.answer
    assert [c.kind for c in root.children] == ["iteration", "iteration"]
    first = root.children[0]
    assert [c.kind for c in first.children] == ["call", "exec"]
    (batch,) = first.children[1].children
    assert batch.kind == "batch" and batch.data["n"] == 20 and batch.data["failed"] == 1
    assert len(batch.children) == 20 and all(c.kind == "call" for c in batch.children)
    statuses = sorted(c.status for c in batch.children)
    assert statuses == ["error"] + ["ok"] * 19
    (bad,) = [c for c in batch.children if c.status == "error"]
    assert "500" in bad.data["error"] and bad.seconds is not None and bad.seconds >= 0
    assert root.find("call")[0].data["role"] == "root"


def test_jsonl_round_trip_keeps_every_event(run, tmp_path):
    result, _ = run
    path = result.trace.to_jsonl(tmp_path / "run.jsonl")
    lines = path.read_text().splitlines()
    assert len(lines) == len(result.trace)
    assert all(set(json.loads(line)) == {"kind", "id", "parent", "ts", "data"} for line in lines)
    again = Trace.from_jsonl(path)
    assert [e.to_dict() for e in again] == [json.loads(json.dumps(e.to_dict(), default=str)) for e in result.trace]
    assert again.path == path
    assert [s.id for s in again.tree()[0].walk()] == [s.id for s in result.trace.tree()[0].walk()]


def test_reader_skips_a_cut_off_last_line_and_names_a_bad_line(run, tmp_path):
    result, _ = run
    text = result.trace.to_jsonl(tmp_path / "full.jsonl").read_text()
    cut = tmp_path / "cut.jsonl"
    cut.write_text(text[: len(text) - 40])  # the process died mid-write
    events = Trace.from_jsonl(cut)
    assert len(events) == len(result.trace) - 1
    assert events.tree()[0].status == "running"  # the run never logged its end
    broken = tmp_path / "broken.jsonl"
    lines = text.splitlines(keepends=True)
    broken.write_text("".join(lines[:3]) + "not json\n" + "".join(lines[3:]))
    with pytest.raises(TraceFormatError) as info:
        Trace.from_jsonl(broken)
    assert info.value.line == 4 and "broken.jsonl:4" in str(info.value)


def test_log_dir_writes_one_file_per_completion(tmp_path):
    with ScriptedLM(root=[BATCH, "FINAL(one)", BATCH, "FINAL(two)"], sub=item, latency=0.01) as lm:
        rlm = make_rlm(lm, log_dir=tmp_path / "logs")
        first = rlm.completion("ctx", "q1")
        second = rlm.completion("ctx", "q2")
    files = sorted((tmp_path / "logs").glob("*.jsonl"))
    assert len(files) == 2
    assert {first.trace.path, second.trace.path} == set(files)
    for result in (first, second):
        logged = Trace.from_jsonl(result.trace.path)
        assert [e.to_dict() for e in logged] == [e.to_dict() for e in result.trace]


def test_a_private_writer_makes_its_named_file_0600_new_and_never_through_a_symlink(run, tmp_path):
    result, _ = run
    folder = tmp_path / "traces"
    writer = JsonlWriter(folder, name="token.jsonl", private=True)
    for event in result.trace:
        writer(event)
    assert writer.path == folder / "token.jsonl"
    assert [e.to_dict() for e in Trace.from_jsonl(writer.path)] == [e.to_dict() for e in result.trace]
    assert stat.S_IMODE(writer.path.stat().st_mode) == 0o600 and stat.S_IMODE(folder.stat().st_mode) == 0o700
    writer(result.trace[0])  # the run it logged is over: nothing more is written
    assert len(writer.path.read_text().splitlines()) == len(result.trace)
    (folder / "link.jsonl").symlink_to(tmp_path / "elsewhere.jsonl")
    for taken in ("token.jsonl", "link.jsonl"):
        with pytest.raises(FileExistsError):
            JsonlWriter(folder, name=taken, private=True)(result.trace[0])
    assert not (tmp_path / "elsewhere.jsonl").exists()


def test_child_runs_nest_under_the_code_step_that_called_rlm_query():
    parent_program = '```repl\nnote = rlm_query("summarise the part", context="a b c")\nprint(note)\n```'

    def root(req) -> str:
        if req.model == "sub":  # the recursive child thinks with the sub-model
            return "FINAL(child says hi)"
        turns = sum(m["role"] == "assistant" for m in req.messages)
        return parent_program if turns == 0 else "FINAL_VAR(note)"

    with ScriptedLM(root=root, sub=item, latency=0.01) as lm:
        result = make_rlm(lm, max_depth=2).completion("ctx", "q")
    assert result.answer == "child says hi"
    (root_span,) = result.trace.tree()
    (step,) = root_span.find("exec")
    (child,) = [c for c in step.children if c.kind == "run"]
    assert child.data["depth"] == 1 and child.status == "ok" and child.data["answer"] == "child says hi"


def test_run_state_folds_events_into_view_parts_and_tracks_what_changed(run):
    result, _ = run
    state = RunState()
    events = list(result.trace)
    for event in events[:10]:
        state(event)
    early = state.changed()
    assert set(early) >= {"header", "tree"} and early["header"]["status"] == "running"
    assert state.changed().keys() >= {"header"}
    for event in events[10:]:
        state(event)
    parts = state.parts()
    calls = parts["calls"]
    assert len(calls["start"]) == 22 and calls["status"].count("e") == 1 and calls["status"].count("o") == 21
    assert calls["role"].count("R") == 2
    assert 1 <= parts["header"]["lanes"] <= 5  # lanes = peak concurrency, capped by max_concurrent=5
    progress = parts["header"]["progress"]
    assert progress["done"] == progress["total"] == 22 and progress["failed"] == 1 and progress["finished"]
    assert [it["status"] for it in parts["iterations"]] == ["ok", "ok"]
    assert "failed: [7]" in parts["iterations"][0]["steps"][0]["output"]


def test_static_view_is_self_contained_and_escapes_model_text(run):
    result, _ = run
    page = result.trace.to_html(standalone=True)
    assert page.startswith("<!DOCTYPE html>") and "<script" not in page
    assert not re.search(r"""(src|href)=["']?https?:""", page) and "@import" not in page
    assert '<span class="rlm-badge rlm-st-ok">done</span>' in page
    assert page.count('<div class="rlm-lanes"') == 1
    bars = re.search(r'<div class="rlm-lanes"[^>]*>(.*?)</div>', page, re.DOTALL).group(1)
    assert bars.count("<i ") == 22
    assert "llm_batch × 20" in page and "19 ok" in page and "1 error" in page
    assert "&lt;b&gt;ITEM 0&lt;/b&gt;" in page and "<b>ITEM" not in page  # model text is escaped
    assert "<details" in page and "code · 3 lines" in page
    assert result.trace._repr_html_().startswith("<style>")


def test_rlm_view_writes_one_offline_page(run, tmp_path, capsys):
    result, _ = run
    log = result.trace.to_jsonl(tmp_path / "run.jsonl")
    assert main(["view", str(log)]) == 0
    page = tmp_path / "run.html"
    assert capsys.readouterr().out.strip() == str(page)
    assert "Latency timeline" in page.read_text() and "Fan-out" in page.read_text()
    assert main(["view", str(log), "-o", str(tmp_path / "other.html")]) == 0
    assert (tmp_path / "other.html").exists()


def test_rlm_view_fails_clearly_on_a_missing_or_broken_log(tmp_path, capsys):
    assert main(["view", str(tmp_path / "nope.jsonl")]) == 2
    assert "no such file" in capsys.readouterr().err
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"kind": "run.start"}\n{}\n')
    assert main(["view", str(bad)]) == 2
    assert "bad.jsonl:1" in capsys.readouterr().err
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert main(["view", str(empty)]) == 2
    assert "empty.jsonl is empty; pass a trace log" in capsys.readouterr().err


def test_build_tree_keeps_orphans_and_point_events():
    events = [
        Event("call.start", "c1", "gone", 1.0, {"model": "m"}),
        Event("call.retry", "c1", "gone", 1.1, {"attempt": 1}),
        Event("call.end", "c1", "gone", 1.5, {"status": "ok"}),
        Event("exec.end", "e1", None, 2.0, {"error": "Traceback"}),
    ]
    orphan, ended = build_tree(events)
    assert orphan.id == "c1" and orphan.status == "ok" and orphan.seconds == pytest.approx(0.5)
    assert [n.data["attempt"] for n in orphan.notes] == [1]
    assert ended.status == "error"


async def test_a_run_stopped_while_its_estimate_is_made_still_ends_in_its_trace() -> None:
    """A Stop as the run starts (its estimate is the first thing it awaits) still gives a run.end and a partial."""
    import asyncio

    events: list[Event] = []

    def stop_at_start(event: Event) -> None:
        events.append(event)
        task = asyncio.current_task()
        if event.kind == "run.start" and task is not None:
            task.cancel()  # lands at the run's next await: the estimate

    with ScriptedLM(root=["FINAL(never)"]) as lm, make_rlm(lm) as rlm:
        with pytest.raises(asyncio.CancelledError):
            await rlm.acompletion("some context", "q", subscribers=[stop_at_start], view=False)
        assert lm.stats["root"] == 0
    ends = [e for e in events if e.kind == "run.end"]
    assert [e.data["status"] for e in ends] == ["cancelled"]
