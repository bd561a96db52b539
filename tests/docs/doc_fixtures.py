"""The names and files the docs' examples may assume without defining them.

A page's examples run like a notebook's cells: in order, in one namespace. A name an
example uses without making it comes from here, given to the page before its first block
(a block that assigns the name replaces it). Keep this list short and the values plain:
they are what a reader would have at hand.

Python names (each made only when a page uses it):

- ``context``, ``big_text``, ``report``, ``report_text``, ``text``, ``ctx``: a 60-section
  annual report (``rlm.testing.make_report``) in which three sections mention a merger.
- ``filing``: a short filing in which Acme buys Beta for 120 million dollars.
- ``query``, ``q``: ``"Which sections mention the merger?"``.
- ``prompts``: five review-labelling prompts. ``reports``: three short reports.
- ``Deal``, ``Risks``: pydantic models (``buyer``, ``price_musd``; ``risks``).
- ``search``: a host tool, ``search(query, k=5) -> list[dict]``; ``index``: the object it asks.
- ``messages``: a chat (system and user messages). ``my_callback``: a progress callback.
- ``rlm``: ``RLM("gpt-5", "gpt-5-mini")`` on the scripted endpoint (from the environment).
- ``result``: ``rlm.completion(context, query)``, finished.

Files in the page's working directory: ``report.txt`` (the report), ``rows.jsonl`` (three
rows with a ``text`` field), a real trace log of ``result`` at every ``*.jsonl`` path the
page names under ``runs/`` or ``logs/`` or as ``run.jsonl`` (and one in each of those
folders the page names), and, for a page that names
``bench-results/``, what ``rlm bench oolong --n 1 --sizes 8k --seeds 1 --methods rlm-query,rlm-batch
--log-dir bench-logs`` writes offline (its harness check): ``bench-results/oolong.jsonl`` and
the runs' logs.

REPL contexts for ``<!-- docs-test: repl context=NAME -->``: ``report`` (the default) and
``figures`` (``{"revenue.png": ..., "scan-1.png": ..., "scan-2.png": ...}``: PNG bytes).
"""

from __future__ import annotations

import atexit
import contextlib
import io
import re
import shutil
import tempfile
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from rlm.testing import make_report
from rlm.testing.images import png

QUERY = "Which sections mention the merger?"
FILING = ("Acme Corp agreed to buy Beta Ltd for 120 million dollars in cash. The board of Beta approved the deal. "
          "Closing is expected in the third quarter, subject to the regulator.")


@cache
def report_text() -> str:
    return make_report(60, sentences_per_section=6).text


class Deal(BaseModel):
    buyer: str
    price_musd: float


class Risks(BaseModel):
    risks: list[str]


class Index:
    """What a ``search`` tool asks: a few documents, found by a word they contain."""

    documents = ("The merger closed in March.", "The lawsuit was settled.", "Revenue grew 4 % in 2025.")

    def search(self, query: str, k: int = 5) -> list[dict[str, Any]]:
        words = query.lower().split()
        return [{"text": d} for d in self.documents if any(w in d.lower() for w in words)][:k]


index = Index()


def search(query: str, k: int = 5) -> list[dict[str, Any]]:
    """Search our document index."""
    return index.search(query, k)


def my_callback(progress: Any) -> None:
    """A progress callback: it is given every snapshot."""
    seen.append(progress)


seen: list[Any] = []


def values(make_rlm: Callable[[], Any]) -> dict[str, Callable[[], Any]]:
    """Every fixture name, as a factory (the ``rlm`` and ``result`` ones need the scripted endpoint)."""
    text = report_text
    made: dict[str, Any] = {}

    def rlm() -> Any:
        if "rlm" not in made:
            made["rlm"] = make_rlm()
        return made["rlm"]

    def result() -> Any:
        if "result" not in made:
            made["result"] = rlm().completion(report_text(), QUERY, view=False)
        return made["result"]

    return {
        "context": text, "big_text": text, "report": text, "report_text": text, "text": text, "ctx": text,
        "filing": lambda: FILING, "query": lambda: QUERY, "q": lambda: QUERY,
        "prompts": lambda: [f"Label this review as positive or negative: {r}" for r in
                            ("great value", "broke in a week", "does the job", "late and damaged", "love it")],
        "reports": lambda: [f"Report {n}: supply-chain risk, currency risk and a pending lawsuit." for n in range(3)],
        "Deal": lambda: Deal, "Risks": lambda: Risks, "search": lambda: search, "index": lambda: index,
        "messages": lambda: [{"role": "system", "content": "You are terse."}, {"role": "user", "content": QUERY}],
        "my_callback": lambda: my_callback, "rlm": rlm, "result": result,
    }


def repl_context(name: str) -> Any:
    """The context a ``repl`` block's REPL holds."""
    if name == "report":
        return report_text()
    if name == "figures":
        return {"revenue.png": png(640, 480), "scan-1.png": png(800, 1000, stripes=8), "scan-2.png": png(800, 1000)}
    raise KeyError(f"no REPL context {name!r}: tests/docs/doc_fixtures.py has report and figures")


@cache
def bench_results() -> Path:
    """A benchmark's results file and logs, made once per session by the real command, offline."""
    from doc_runner import Sandboxes, patched_rlm  # here: doc_runner imports this module

    from rlm.cli import main

    where = Path(tempfile.mkdtemp(prefix="rlm-docs-bench-"))
    atexit.register(shutil.rmtree, where, True)
    with pytest.MonkeyPatch.context() as env:
        env.delenv("OPENAI_API_KEY", raising=False)
        env.delenv("OPENAI_BASE_URL", raising=False)
        env.chdir(where)
        quiet = contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO())
        with quiet[0], quiet[1], patched_rlm(Sandboxes()):  # root code in-process: these are inputs, not claims
            code = main(["bench", "oolong", "--n", "1", "--sizes", "8k", "--seeds", "1",
                         "--methods", "rlm-query,rlm-batch", "--log-dir", "bench-logs"])
    assert code == 0 and (where / "bench-results" / "oolong.jsonl").exists(), "the offline oolong bench failed"
    return where


_LOG_PATH = re.compile(r"(?<![\w/.-])((?:runs|logs)/[\w.-]+\.jsonl|run\.jsonl)(?![\w/])")


def write_files(workdir: Path, page_text: str, result: Callable[[], Any]) -> None:
    """The files a page's examples and commands read, in its working directory."""
    if "bench-results/" in page_text:
        for made in bench_results().iterdir():
            shutil.copytree(made, workdir / made.name)
    (workdir / "report.txt").write_text(report_text(), encoding="utf-8")
    (workdir / "rows.jsonl").write_text("".join(f'{{"text": "review {n}: works well"}}\n' for n in range(3)))
    if "papers" in page_text:  # a folder of documents, as a reader would have one
        (workdir / "papers").mkdir(exist_ok=True)
        for n in range(2):
            (workdir / "papers" / f"paper{n}.md").write_text(f"# Paper {n}\n\nWe conclude that {n} works.\n")
    folders = [f"{d}/20261201-100000-run-1.jsonl" for d in ("runs", "logs") if f"{d}/" in page_text]
    for name in sorted(set(_LOG_PATH.findall(page_text)) | set(folders)):
        path = workdir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        result().trace.to_jsonl(path)
