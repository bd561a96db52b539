"""Every notebook in notebooks/ runs headless (nbclient), offline, and fails the test on any error."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
NAMES = ["01_quickstart", "02_long_document", "03_batch_fanout", "04_any_endpoint", "05_documents", "06_research"]

pytestmark = pytest.mark.timeout(300)


def execute(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> nbformat.NotebookNode:
    """Run a copy of the notebook in a fresh kernel with no endpoint configured (simulated mode)."""
    for var in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "RLM_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    path = tmp_path / f"{name}.ipynb"
    shutil.copy(NOTEBOOKS / f"{name}.ipynb", path)
    notebook = nbformat.read(path, as_version=4)
    NotebookClient(
        notebook, timeout=180, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    return notebook


def text_of(notebook: nbformat.NotebookNode) -> str:
    chunks = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            if output.output_type == "stream":
                chunks.append(output.text)
            elif "data" in output:
                chunks.append(output.data.get("text/plain", ""))
    return "\n".join(chunks)


def records(notebook: nbformat.NotebookNode) -> list[str]:
    """The static views left behind by finished runs."""
    return [
        o.data["text/html"] for c in notebook.cells for o in c.get("outputs", [])
        if "data" in o and 'class="rlm-view"' in o.data.get("text/html", "")
    ]


def planted(text: str, topic_sections: tuple[int, ...]) -> bool:
    named = {int(n) for n in re.findall(r"Section (\d+)", text)}
    return set(topic_sections) <= named


def test_notebooks_are_committed_without_outputs():
    for name in NAMES:
        notebook = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
        nbformat.validate(notebook)
        assert all(not c.get("outputs") for c in notebook.cells if c.cell_type == "code"), name


@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs_offline_without_errors(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    notebook = execute(name, tmp_path, monkeypatch)
    text = text_of(notebook)
    assert "SIMULATED MODE" in text
    views = records(notebook)
    assert views, "no run left its view in the notebook"
    budget_stopped = [v for v in views if '<span class="rlm-badge rlm-st-budget">budget reached</span>' in v]
    assert len(budget_stopped) == (1 if name == "03_batch_fanout" else 0)
    assert all('<span class="rlm-badge rlm-st-ok">done</span>' in v for v in views if v not in budget_stopped)
    widget_outputs = [
        o
        for c in notebook.cells
        for o in c.get("outputs", [])
        if "application/vnd.jupyter.widget-view+json" in o.get("data", {})
    ]
    assert not widget_outputs, "a live widget was left in the saved notebook instead of its record"
    assert "widgets" not in notebook.metadata, "widget state was saved beside the records"
    if name == "01_quickstart":
        assert re.search(r"sections named in the answer: (\[.*\]) \| planted: \1", text)
        assert re.search(r"page: .*\.html", text)
    elif name == "02_long_document":
        assert len(re.findall(r"named: (\[[\d, ]+\]) \| planted: \1", text)) == 2
    elif name == "03_batch_fanout":
        speedup = float(re.search(r"\(([\d.]+)x faster\)", text).group(1))
        assert speedup > 3 and "same answers in the same order: True" in text
        sub_calls = int(re.search(r"sub-calls: (\d+)", text).group(1))
        assert f"llm_batch × {sub_calls}" in views[0] and f"{sub_calls} ok" in views[0]
        assert "budget max_calls=6 reached: spent 6" in text and "calls: 6 of 6 used" in text
        first, again, cached = map(int, re.search(
            r"first run: (\d+) model calls; the re-run: (\d+) model calls, (\d+) answers from the cache; "
            r"same answer: True", text).groups())
        assert first == cached == sub_calls + 2 and again == 0
    elif name == "05_documents":  # pages cited, and the chart looked at through a vision sub-call
        assert "(annual-report.pdf, page 1) The third quarter brought 3.4 million in revenue" in text
        assert "(annual-report.pdf, page 2, as an image) I am a simulated model" in text
        assert "1 sub-call(s) looked at a page image" in text
    elif name == "04_any_endpoint":
        assert "['scripted']" in text and "discloses a lawsuit" in text
    elif name == "06_research":
        compared = [o.data["text/html"] for c in notebook.cells for o in c.get("outputs", [])
                    if "data" in o and 'class="rlm-view rlm-compare"' in o.data.get("text/html", "")]
        assert len(compared) == 2 and "one time axis for all runs" in compared[0]
        assert re.search(r"A: llm_query, one at a time: mean score 1\.00.*\nB: llm_batch: mean score 1\.00", text)
        low, high = map(float, re.search(r"B - A seconds per question: [-+\d.]+, 95% CI \[([-+\d.]+), ([-+\d.]+)\]",
                                         text).groups())
        assert low <= high < 0, "llm_batch must be faster than one llm_query at a time on every question"
        assert "Export(10 examples from 10 runs)" in text and "roles: ['system', 'user', 'assistant']" in text
        assert "### The prompts compared, per method (A, B)" in text and "| rlm-batch | A | B | 4 |" in text
