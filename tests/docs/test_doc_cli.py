"""Every command line in README.md and docs/*.md names real subcommands and options; the concrete ones run."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest
from doc_cli import RUN, CommandLine, check, command_lines
from doc_fixtures import write_files
from doc_pages import Page, pages
from doc_runner import Sandboxes, patched_rlm

from rlm import RLM
from rlm.cli import main
from rlm.testing import ScriptedLM

PAGES = [page for page in pages() if command_lines(page)]


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_the_command_lines_of_a_page_are_real(page: Page, endpoint: ScriptedLM, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)

    def result() -> object:
        return RLM("gpt-5", "gpt-5-mini", sandbox="local").completion("The merger closed.", "When?", view=False)

    write_files(tmp_path, page.path.read_text(encoding="utf-8"), result)
    findings: list[str] = []
    with patched_rlm(Sandboxes()):  # root code in-process, as for the Python examples
        for line in command_lines(page):
            found, path, runnable = check(line)
            findings += found
            if not found and runnable and ((path and path[0] in RUN) or runnable == ["rlm", "--version"]):
                findings += run(line, runnable)
    assert not findings, ("command lines in the docs that `rlm` does not take (fix the doc, or the command if the doc "
                          "is what users should have):\n" + "\n".join(findings))


def run(line: CommandLine, words: list[str]) -> list[str]:
    """Run ``rlm WORDS`` in-process against the scripted endpoint; a finding unless it exits 0."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(words[1:])
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else 1
    return [] if code == 0 else [f"{line.where}: `{line.text}` exited {code}: {err.getvalue().strip()[-500:]}"]
