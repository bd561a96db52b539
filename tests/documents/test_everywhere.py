"""Documents everywhere a context goes: ``rlm ask``, ``rlm map``/``map_rlm`` over a folder, ``rlm.estimate``,
the trace and the live view, the simulated model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from sandbox_modes import MODES, sandbox_config

import rlm
from rlm import RLM
from rlm.testing import ScriptedLM
from rlm.trace.html import render_sections
from rlm.trace.state import RunState

ROOT = Path(rlm.__file__).resolve().parents[1]


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    """``rlm ...`` with no key and no URL: the simulated model."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_") and k != "RLM_SANDBOX_ISOLATION"}
    return subprocess.run([sys.executable, "-m", "rlm.cli", *args], capture_output=True, text=True, timeout=300,
                          cwd=ROOT, env=env, check=False)


@pytest.mark.parametrize("sandbox", ["local", "kernel"])
def test_ask_over_a_folder_without_a_key_answers_from_the_documents_and_cites_pages(folder: Path,
                                                                                     sandbox: str) -> None:
    done = cli("ask", "--context", str(folder), "--query", "When does the pilot boat leave, and revenue by region?",
               "--sandbox", sandbox)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "(notes.md) The pilot boat leaves at 05:30." in lines
    assert "(report.pdf, page 3) Table 1: revenue by region" in lines


def test_ask_over_one_pdf_reads_its_text_not_its_bytes(folder: Path) -> None:
    done = cli("ask", "--context", str(folder / "report.pdf"), "--query", "What happened to throughput in Q2?",
               "--json")
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)["answer"]
    assert answer == ("(page 5) Figure 2: container throughput\n"
                      "(page 5) The figure shows throughput rising in the second quarter.")


@pytest.mark.parametrize("sandbox", ["local", "kernel"])
def test_estimate_counts_the_extracted_text_not_the_file_bytes(folder: Path, sandbox: str) -> None:
    done = cli("ask", "--context", str(folder / "report.pdf"), "--query", "q", "--estimate", "--json",
               "--sandbox", sandbox)
    assert done.returncode == 0, done.stderr
    tokens = json.loads(done.stdout)["tokens"]
    size = (folder / "report.pdf").stat().st_size
    assert 800 < tokens < 2000 and tokens < size // 8  # 5,112 characters of text; the scans are bytes, not text


def test_map_over_a_folder_is_one_completion_per_document(folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "answers.jsonl"
    done = cli("map", "--input", str(folder), "--query", "What is the first thing it says?", "--sandbox", "local",
               "--output", str(out))
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["file"] for r in rows] == ["analysis.ipynb", "arrivals.xlsx", "books/keeper.epub", "data.csv",
                                         "notes.md", "plan.pptx", "report.pdf", "survey.docx", "tides.html"]
    assert cli("map", "--input", str(folder)).returncode == 2  # a folder needs --query


def test_map_rlm_takes_a_folder_and_each_completion_gets_one_document(folder: Path,
                                                                       make: Callable[..., RLM]) -> None:
    program = "```repl\nFINAL(f'{getattr(context, \"kind\", \"text\")}:{len(getattr(context, \"pages\", []))}')\n```"
    with ScriptedLM(root=lambda request: program) as lm, make(lm) as rlm:
        results = rlm.map_rlm(folder, "q", max_concurrent=2)
    assert [r.answer for r in results] == ["ipynb:4", "xlsx:2", "epub:2", "text:0", "text:0", "pptx:3", "pdf:5",
                                           "docx:0", "html:0"]


def test_the_trace_and_the_live_view_show_each_documents_format_and_pages(folder: Path,
                                                                          make: Callable[..., RLM]) -> None:
    with ScriptedLM(root=["```repl\nprint(1)\n```", "FINAL(ok)"]) as lm, make(lm) as rlm:
        result = rlm.completion(folder, "q")
    [told] = [e for e in result.trace if e.span == "run" and e.phase == "context"]
    kinds = {d["name"]: (d["kind"], d["pages"], d["unit"]) for d in told.data["documents"]}
    assert kinds["report.pdf"] == ("pdf", 5, "page") and kinds["plan.pptx"] == ("pptx", 3, "slide")
    assert told.data["chars"] > 5000 and told.data["failed"] == []
    html = render_sections(RunState(result.trace).parts(), live=False)["header"]
    assert "documents: analysis.ipynb (IPYNB, 4 cells), arrivals.xlsx (XLSX, 2 sheets)" in html
    assert "report.pdf (PDF, 5 pages)" in html


def test_a_session_question_can_bring_a_document_and_the_root_is_told_its_pages(folder: Path,
                                                                              make: Callable[..., RLM]) -> None:
    program = "```repl\nprint(context_2.page(3)[:26], context_2.page_of(len(context_2) - 1))\n```"
    with ScriptedLM(root=["FINAL(one)", program, "FINAL(two)"]) as lm, make(lm) as rlm:
        with rlm.session("a first, plain context") as session:
            session.ask("q1")
            second = session.ask("q2", context=folder / "report.pdf")
        told = lm.requests[1].messages[-1]["content"]
    assert second.steps[0].outputs[0].stdout == "Table 1: revenue by region 5\n"
    assert "loaded as the variable `context_2`:\n`context_2` is a str: the text extracted from the PDF 'report.pdf'" \
        in told
    assert "`context_2.page(n)` is the text of page n" in told and "`context_2.page_image(n)` draws page n" in told


def test_a_scanned_page_counts_in_the_estimate_as_an_image_to_look_at(folder: Path) -> None:
    from rlm.core.estimate import estimate
    from rlm.lm.pricing import Pricing

    common = {"model": "gpt-5", "sub_model": "gpt-5-mini", "pricing": Pricing(), "max_iterations": 20,
              "sandbox": "local"}
    with_scan = estimate(folder / "report.pdf", "q", **common)
    text_only = estimate(folder / "survey.docx", "q", **common)
    assert with_scan.sub_calls[0] == 2 and text_only.sub_calls[0] == 1  # page 4, a scan, is one more sub-call


@pytest.mark.parametrize("mode", MODES)
def test_each_isolation_level_reads_a_pdf_and_draws_its_pages(folder: Path, mode: str) -> None:
    """The readers' workers start inside every kind of sandbox (uid: with the system's Python and PYTHONPATH)."""
    program = "```repl\nprint(context.page(3)[:26], page_image(4)[:8])\n```"
    config = sandbox_config(mode)
    with ScriptedLM(root=[program, "FINAL(ok)"]) as lm, \
            RLM("root", base_url=lm.base_url, api_key="k", sandbox=config) as rlm:
        result = rlm.completion(folder / "report.pdf", "q")
    out = result.steps[0].outputs[0]
    assert out.error is None and out.stdout == "Table 1: revenue by region b'\\x89PNG\\r\\n\\x1a\\n'\n"
