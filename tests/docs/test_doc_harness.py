"""The docs harness fails when a doc drifts, and says where and what to do: each check, fed a page that is wrong."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from doc_cli import CommandLine, check
from doc_numbers import unsourced
from doc_pages import MarkerError, Page, read
from doc_runner import ExampleFailed
from test_doc_names import findings


def page(tmp_path: Path, text: str, name: str = "drift.md") -> Page:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return read(path)


def test_a_failing_example_names_its_line_and_what_to_do(tmp_path: Path, run_examples: Callable[[Page], int]) -> None:
    broken = page(tmp_path, "# Drift\n\n```python\nfrom rlm import RLM\n\nrlm = RLM('gpt-5', budgett=None)\n```\n")
    with pytest.raises(ExampleFailed) as failed:
        run_examples(broken)
    message = str(failed.value)
    assert message.startswith("drift.md:6: ") and "budgett" in message and "docs-test: check" in message


def test_root_code_outside_a_repl_marker_is_told_to_get_one(tmp_path: Path,
                                                            run_examples: Callable[[Page], int]) -> None:
    with pytest.raises(ExampleFailed, match=r"(?s)drift.md:4: .*`llm_batch` exists only where root code runs.*repl"):
        run_examples(page(tmp_path, "# Drift\n\n```python\nanswers = llm_batch(['a', 'b'])\n```\n"))


def test_root_code_runs_in_a_repl_and_its_errors_name_the_doc_line(tmp_path: Path,
                                                                  run_examples: Callable[[Page], int]) -> None:
    fine = page(tmp_path, "<!-- docs-test: repl -->\n```python\npieces = chunk(context, max_tokens=500)\n"
                          "found = llm_batch([f'Dates in: {p}' for p in pieces])\n"
                          "assert len(found) == len(pieces)\n```\n"
                          "\n<!-- docs-test: repl -->\n```python\nprint(len(pieces), count_tokens(pieces[0]))\n```\n")
    assert run_examples(fine) == 2  # the second block sees the first one's variables
    broken = page(tmp_path, "<!-- docs-test: repl -->\n```python\nx = 1\nchunk(context, max_token=5)\n```\n", "b.md")
    with pytest.raises(ExampleFailed, match=r"(?s)b.md:4: the root-code example .*max_token"):
        run_examples(broken)


def test_a_run_that_goes_wrong_inside_an_example_fails_it(tmp_path: Path,
                                                         run_examples: Callable[[Page], int]) -> None:
    text = "```python\nfixed = result.fork(at=2, code='print(chunkz)')\n```\n"
    with pytest.raises(ExampleFailed, match=r"(?s)drift.md:1: the example ran, but .*REPL step failed.*chunkz"):
        run_examples(page(tmp_path, text))


def test_a_value_the_doc_states_in_a_comment_is_checked(tmp_path: Path, run_examples: Callable[[Page], int]) -> None:
    right = "```python\nfrom rlm.lm.tokens import count_tokens\ncount_tokens('hello world', 'gpt-5')  # 2\n```\n"
    assert run_examples(page(tmp_path, right)) == 1
    wrong = right.replace("# 2", "# 3")
    with pytest.raises(ExampleFailed, match=r"(?s)b.md:3: .*the doc says count_tokens\('hello world', 'gpt-5'\) == 3"):
        run_examples(page(tmp_path, wrong, "b.md"))
    with pytest.raises(ExampleFailed, match=r"(?s)c.md:3: the root-code example .* <= 1"):
        run_examples(page(tmp_path, "<!-- docs-test: repl -->\n```python\ncount_tokens(context)  # <= 1\n```\n",
                          "c.md"))


def test_a_name_the_page_uses_comes_from_the_fixtures_or_fails_clearly(tmp_path: Path,
                                                                       run_examples: Callable[[Page], int]) -> None:
    assert run_examples(page(tmp_path, "```python\nresult = rlm.completion(report, query)\nassert result.ok\n```\n"))
    with pytest.raises(ExampleFailed, match=r"(?s)`undefined_thing` is not defined.*doc_fixtures.py"):
        run_examples(page(tmp_path, "```python\nprint(undefined_thing)\n```\n", "b.md"))


def test_markers_are_read_or_refused_with_how_to_write_them(tmp_path: Path) -> None:
    marked = page(tmp_path, "<!-- docs-test: check (needs a GPU) -->\n```python\nx\n```\n")
    assert (marked.blocks[0].mode, marked.blocks[0].reason) == ("check", "needs a GPU")
    with pytest.raises(MarkerError, match=r"a.md:1: a check-only block says why"):
        page(tmp_path, "<!-- docs-test: check -->\n```python\nx\n```\n", "a.md")
    with pytest.raises(MarkerError, match=r"b.md:1: cannot read the marker"):
        page(tmp_path, "<!-- docs-test: skip -->\n```python\nx\n```\n", "b.md")
    assert page(tmp_path, "- fences such as\n  ```ipython, ```{python} and a bare fence run\n", "c.md").blocks == []


def test_names_keywords_and_imports_the_docs_give_are_checked(tmp_path: Path) -> None:
    wrong = page(tmp_path, "\n".join([
        "Pass `RLM(pricing={...})` or `Limits(step_timeouts=1)`; see `rlm.kernels.isolation.describe()`",
        "and `Limits.step_timeout`, `Endpoint(models=(...))`, `llm_batch(prompts, max_concurent=4)`.",
        "",
        "<!-- docs-test: check (shows names only) -->",
        "```python",
        "from rlm import RLM, Nope",
        "import rlm.nothing_here",
        "rlm2 = RLM('gpt-5')",
        "result = rlm2.completion('ctx', 'q', shema=int)",
        "found = rlm2.estimate('ctx', 'q', images=[(640, 480)])",
        "print(result.answr, never_defined)",
        "```",
        "",
        "```",
        "ConfigError: a dollar budget needs prices: pass RLM(sandbox='local', prices={...})",
        "```",
    ]))
    found = "\n".join(findings(wrong))
    for expected in ("drift.md:1: `RLM(...)`: got an unexpected keyword argument 'pricing'",
                     "drift.md:1: `Limits(...)`: got an unexpected keyword argument 'step_timeouts'",
                     "drift.md:2: `LocalREPL._llm_batch(...)`: got an unexpected keyword argument 'max_concurent'",
                     "drift.md:6: `rlm.Nope` does not exist", "drift.md:7: `import rlm.nothing_here` fails",
                     "drift.md:9: `RLM.completion(...)`: got an unexpected keyword argument 'shema'",
                     "drift.md:10: `RLM.estimate(...)`: got an unexpected keyword argument 'images'",
                     "drift.md:11: `RLMResult` has no attribute `answr`",
                     "drift.md:11: `never_defined` is not defined",
                     "drift.md:15: `RLM(...)`: got an unexpected keyword argument 'prices'"):
        assert expected in found, f"{expected!r} not in:\n{found}"
    assert "describe" not in found and "step_timeout`" not in found and "models" not in found  # those exist


def test_command_lines_name_real_commands_and_options() -> None:
    def problems(text: str) -> list[str]:
        return check(CommandLine("cli.md:3", text))[0]

    assert problems("rlm bench throughput --seq-n 0 --no-peers") == []
    assert problems("rlm map ... --via batch [--poll-s 30]") == []
    assert "`rlm bench` has no command nope" in problems("rlm bench sniah|nope --model M")[0]
    assert "`rlm ask` has no option --estimat" in problems("rlm ask ... --estimat")[0]
    assert "no module rlm.bench.nope" in problems("python -m rlm.bench.nope")[0]


def test_measured_numbers_without_a_source_are_found(tmp_path: Path) -> None:
    text = ("# Speed\n\nMeasured here, a call costs 12 ms.\n\nThe same, `rlm bench throughput`: 12 ms.\n\n"
            "At most 20 MiB an image and one call every 0.1 s.\n\n## Table\n\nOn this machine:\n\n| a | 3.5 s |\n\n"
            "## Sourced section (`rlm bench scale`)\n\n| took | 2 s |\n")
    found = unsourced(page(tmp_path, text))
    assert [u.where for u in found] == ["drift.md:3", "drift.md:13"]
