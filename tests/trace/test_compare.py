"""rlm.compare and rlm view a b: real runs (scripted server, real openai client) side by side."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from scripting import code

import rlm
from rlm import RLM, ConfigError, Endpoint, LMError
from rlm.cli import main
from rlm.testing import Fault, ScriptedLM
from rlm.trace.compare import Comparison

TWO_STEPS = [code("parts = llm_batch([f'part {i}' for i in range(4)])", "print(parts)"), "FINAL_VAR(parts)"]
THREE_STEPS = [code("parts = llm_batch([f'part {i}' for i in range(4)])", "print(parts)"),
               code("parts = [p.lower() for p in parts]", "print(parts)"), "FINAL_VAR(parts)"]


def _rlm(lm: ScriptedLM, **kwargs: object) -> RLM:
    return RLM("root", "sub", base_url=lm.base_url, api_key="k", sandbox="local", endpoint=Endpoint(retries=0),
               **kwargs)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """A two-step run (slow sub-calls), a three-step one (fast), a failed one, and a fork of the three-step one."""
    logs = tmp_path_factory.mktemp("logs")
    out: dict[str, object] = {}
    with ScriptedLM(root=list(TWO_STEPS), sub=lambda r: r.prompt.upper(), latency=0.15) as lm:
        rlm_ = _rlm(lm, log_dir=logs)
        out["two"] = rlm_.completion("alpha beta", "shout the parts")
        lm.latency = 0.01
        lm.root = list(THREE_STEPS)
        out["three"] = rlm_.completion("alpha beta", "shout the parts")
        lm.root = [code("print('looking')"), "never reached"]
        lm.fail(Fault.http(500, "the root's endpoint broke"), when=lambda r: r.role == "root" and len(r.messages) > 2)
        with pytest.raises(LMError) as failed:
            rlm_.completion("alpha beta", "shout the parts")
        out["failed"] = failed.value
    with ScriptedLM(root=["FINAL_VAR(picked)"], sub=lambda r: r.prompt.upper()) as lm:
        out["fork"] = _rlm(lm).fork(out["three"], at=2, code="picked = parts[:2]\nprint(picked)",
                                    context="alpha beta")
    return out


def test_runs_with_different_step_counts_line_up_by_iteration_and_say_where_the_code_differs(runs) -> None:
    view = rlm.compare(runs["two"], runs["three"], labels=["two steps", "three steps"])
    two, three = view.runs
    assert (two.iterations, three.iterations) == (2, 3)
    assert two.stopped == three.stopped == "final" and two.answer == three.answer.upper()
    assert two.sub_calls == three.sub_calls == 4 and two.root_calls == 2 and three.root_calls == 3
    assert three.prompt_tokens > two.prompt_tokens > 0 and two.seconds > three.seconds
    (where,) = view.divergences
    assert where.diverged and (where.iteration, where.block, where.base_iteration) == (2, 1, None)
    assert where.base_code is None and "p.lower()" in (where.code or "")
    assert "goes on writing code after two steps stopped, at iteration 2, block 1" in str(where)
    page = view.to_html()
    steps = page[page.index("Steps, aligned by iteration"):page.index("Latency timelines")]
    assert steps.count('<th class="rlm-cmp-n">') == 3 and steps.count('<div class="rlm-empty">–</div>') == 1
    assert "code first differs from two steps here" in steps
    assert [row["label"] for row in view.table()] == ["two steps", "three steps"]


def test_the_timelines_share_one_time_axis(runs) -> None:
    view = rlm.compare(runs["three"], runs["two"])
    page = view.to_html()
    lanes = re.findall(r'<div class="rlm-cmp-lane" data-run="(\d)">(.*?)<div class="rlm-legend">', page, re.S)
    assert len(lanes) == 2
    span = view.span_ms
    for (index, lane), parts in zip(lanes, view.parts, strict=True):
        bars = [(float(a), float(b)) for a, b in re.findall(r"left:([\d.]+)%;width:([\d.]+)%", lane)]
        right = max(left + width for left, width in bars)
        assert right == pytest.approx(100 * max(parts["calls"]["end"]) / span, abs=0.05), index
    fast_right = max(float(a) + float(b) for a, b in re.findall(r"left:([\d.]+)%;width:([\d.]+)%", lanes[0][1]))
    assert fast_right < 70, "the faster run must end well before the slower one on the shared axis"


def test_a_failed_run_and_a_forked_run_compare_with_the_run_they_came_from(runs) -> None:
    view = rlm.compare({"three": runs["three"], "failed": runs["failed"], "fork": runs["fork"]})
    three, failed, fork = view.runs
    assert three.stopped == "final" and three.iterations == 3
    assert failed.stopped == "error" and failed.answer is None and failed.iterations == 2
    assert fork.forked is not None and fork.forked.endswith("at step 2") and fork.stopped == "final"
    fork_where = view.divergences[1]
    assert (fork_where.iteration, fork_where.base_iteration) == (2, 2) and "parts[:2]" in (fork_where.code or "")
    assert "first differs from three at iteration 2, block 1" in str(fork_where)
    page = view.to_html()
    assert "forked from" in page and 'rlm-badge rlm-st-error">failed' in page
    assert "replayed from the record" in page and "the fork's edited code" in page
    assert 'data-key="2.0" open>' in page  # the differing step's code is shown open


def test_two_to_eight_runs_and_clear_errors(runs) -> None:
    eight = rlm.compare(*[runs["two"]] * 8)
    assert isinstance(eight, Comparison) and eight.labels == list("ABCDEFGH")
    assert all(not d.diverged for d in eight.divergences)
    with pytest.raises(ConfigError, match="2 to 8 runs, got 1"):
        rlm.compare(runs["two"])
    with pytest.raises(ConfigError, match="2 to 8 runs, got 9"):
        rlm.compare(*[runs["two"]] * 9)
    with pytest.raises(ConfigError, match="run 2: expected a Trace"):
        rlm.compare(runs["two"], 42)
    with pytest.raises(ConfigError, match="2 labels for 3 runs"):
        rlm.compare(runs["two"], runs["two"], runs["two"], labels=["a", "b"])
    assert rlm.compare(runs["two"], runs["two"], labels=["x", "x"]).labels == ["x (1)", "x (2)"]


def test_rlm_view_of_two_logs_writes_one_self_contained_page(runs, tmp_path: Path, capsys) -> None:
    a, b = runs["two"].trace.path, runs["three"].trace.path
    assert main(["view", str(a), str(b), "-o", str(tmp_path / "ab.html")]) == 0
    page = (tmp_path / "ab.html").read_text()
    assert capsys.readouterr().out.strip() == str(tmp_path / "ab.html")
    assert page.startswith("<!DOCTYPE html>") and "2 runs side by side" in page
    assert a.stem in page and b.stem in page and "Latency timelines" in page
    assert "<script" not in page and not re.search(r"""(src|href)=["']?(https?:)?//""", page)
    assert main(["view", str(a), str(b)]) == 0
    assert a.with_name(f"{a.stem}-compare.html").exists()
    assert main(["view", str(a), str(tmp_path / "missing.jsonl")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["view", *[str(a)] * 9]) == 2
    assert "at most 8" in capsys.readouterr().err
