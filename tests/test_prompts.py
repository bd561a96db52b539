"""What the root reads: the system prompt, the first message, and the message after each reply (pure functions)."""

from __future__ import annotations

import ast
import itertools
import re

import pytest

from rlm.core.feedback import SHORT_CHARS, Turn, nudge, shares, turn_feedback
from rlm.core.parsing import find_code_blocks, prose_of
from rlm.core.prompts import NUDGE_MID_LINE, NUDGE_NO_CODE, answer_now, context_view, first_user_message, system_prompt
from rlm.core.tools import as_tools, tools_prompt
from rlm.lm.tokens import count_tokens
from rlm.repl.preview import fence, head_and_tail


@pytest.mark.parametrize(("can_recurse", "sub_window"), list(itertools.product([True, False], [None, 8_192, 200_000])))
def test_every_code_example_in_the_system_prompt_compiles(can_recurse: bool, sub_window: int | None) -> None:
    prompt = system_prompt(can_recurse=can_recurse, sub_window=sub_window)
    examples = find_code_blocks(prompt)
    assert examples, "the prompt teaches by one worked example at least"
    inline = re.findall(r"(?<!`)`([^`\n]+)`(?!`)", prose_of(prompt))
    for code in [*examples, *inline]:
        ast.parse(code)  # a SyntaxError here is what a model that copies the example gets
    calls = re.findall(r"^- ((?:\w+\([^)]*\)(?:, )?)+)", prompt, re.MULTILINE)  # each helper, as the prompt shows it
    assert len(calls) >= 6
    for call in calls:
        ast.parse(call)
    assert "{" not in prompt.replace("{}", "")  # no format field left unfilled


def test_the_system_prompt_stays_short_with_everything_on() -> None:
    prompt = system_prompt(can_recurse=True, sub_window=1_000_000, output_chars=100_000)
    tokens = count_tokens(prompt, "gpt-4o")
    assert tokens <= 800, tokens  # docs/usage.md says how many
    for taught in ("FINAL_VAR(name)", "llm_batch(", "chunk(", "SHOW_VARS()", "rlm_query(", "images=[png_bytes]",
                   "Filter with code", "Size the sub-calls", "Never retype", "confirm your answer against `context`"):
        assert taught in prompt, taught
    assert "rlm_query(" not in system_prompt(can_recurse=False)


@pytest.mark.parametrize(("window", "taught"), [(None, "5,000-50,000 tokens"), (128_000, "5,000-50,000 tokens"),
                                               (8_192, "800-4,000 tokens"), (32_768, "3,200-16,000 tokens")])
def test_the_sizing_rule_and_the_example_fit_the_sub_models_window(window: int | None, taught: str) -> None:
    prompt = system_prompt(can_recurse=False, sub_window=window)
    assert f"Size the sub-calls: {taught} of text per prompt" in prompt
    (example,) = find_code_blocks(prompt)
    piece = int(re.search(r"max_tokens=(\d+)", example)[1])  # type: ignore[index]
    assert piece * 2 <= (window or 100_000)  # the example's pieces fit with room to spare


def test_a_tool_line_follows_the_prompt_and_compiles_nothing_by_accident() -> None:
    def lookup(key: str) -> str:
        """Look a key up in the host's table."""
        return key

    prompt = system_prompt(can_recurse=False) + tools_prompt(as_tools([lookup]))
    assert "lookup(key: str)" in prompt and len(find_code_blocks(prompt)) == 1


def test_a_str_context_is_shown_by_its_size_in_tokens_and_pieces_and_by_its_head_and_tail() -> None:
    text = "START " + "middle words " * 2_000 + " END"
    view, whole = context_view(text, tokens=40_000)
    assert not whole
    lines = view.split("\n")
    assert lines[0] == f"`context` is a str of {len(text):,} characters (1 line)."
    assert lines[1] == "About 40,000 tokens: 5 pieces of chunk(context) at its default 10,000 tokens."
    assert "START" in view and "END" in view and "Its last 300 characters" in view
    assert len(view) < 1_200  # never the whole of it


def test_a_small_context_is_shown_whole_and_says_so() -> None:
    assert context_view("Pick a color.", tokens=4) == (
        "`context` is a str of 13 characters (1 line).\n"
        "About 4 tokens: 1 piece of chunk(context) at its default 10,000 tokens.\n"
        "All of it:\n```text\nPick a color.\n```", True)
    assert context_view(["a", "b"])[1] and context_view({"k": [1, 2]})[1]


def test_lists_and_dicts_show_their_first_and_last_items() -> None:
    items = [f"item {i}: " + "x" * 300 for i in range(50)]
    view, whole = context_view(items, tokens=5_000)
    assert not whole and "50 items" in view and "context[0] starts" in view and "item 0:" in view
    assert "context[-1] ends" in view and view.split("\n")[1].startswith("About 5,000 tokens")
    view, whole = context_view({f"k{i}": "y" * 500 for i in range(5)})
    assert not whole and "context['k0'] starts" in view and "context['k4'] ends" in view


def test_a_context_that_describes_itself_gets_the_size_line_after_its_first_line() -> None:
    class Document:
        def describe(self) -> str:
            return "`context` is a str: the text of report.pdf (12 pages).\n" + head_and_tail("p" * 2_000)[0]

    view, whole = context_view(Document(), tokens=500)
    assert view.split("\n")[1].startswith("About 500 tokens: 1 piece") and not whole


def test_a_preview_fence_is_never_closed_by_the_text_inside_it() -> None:
    fenced = fence("a\n```\nb")
    assert fenced.startswith("````text\n") and fenced.endswith("\n````")
    assert find_code_blocks(f"```repl\nx = 1\n```\n{fenced}") == ["x = 1"]


def test_the_first_message_keeps_the_query_where_scripts_find_it() -> None:
    message = first_user_message("`context` is a str.", "Who won?", 12)
    assert "\n\nThe query:\nWho won?\n\nStart by exploring `context`" in message and "You have 12 turns." in message


def test_shares_keep_small_blocks_whole_and_split_the_rest_evenly() -> None:
    assert shares([10, 20], 100) == [10, 20]
    assert shares([100, 5_000, 20_000], 10_000) == [100, 4_950, 4_950]
    assert sum(shares([20_000] * 7, 10_000)) <= 10_000


def test_one_budget_for_all_the_blocks_of_a_turn() -> None:
    outputs = [f"block {i} " + "x" * 20_000 for i in range(7)]
    message, short = turn_feedback(outputs, failed=False, turn=Turn(3, 20, 7), budget=10_000, notes=[])
    assert message.startswith("Turn 3 of 20. Output of 7 blocks:")
    assert all(f"Block {i}:" in message and f"block {i - 1}" in message for i in range(1, 8))
    assert 10_000 < len(message) < 11_500 and "this one printed 140,056" in message
    assert len(short) < SHORT_CHARS + 1_000 and "Print again from your variables" in short


def test_the_blocks_after_a_failure_are_named_and_empty_output_is_a_hint() -> None:
    outputs = ["", "Traceback (most recent call last):\nNameError: name 'x' is not defined"]
    message, short = turn_feedback(outputs, failed=True, turn=Turn(1, 5, 7), budget=10_000, notes=["a note"])
    assert "Block 1:\n```text\n(nothing was printed: print() what you want to see)" in message
    assert "Block 2 (failed):" in message
    assert "Blocks 3-7 were not run, because block 2 failed" in message and message.endswith("a note")
    assert short == message  # small output: nothing to shorten
    single, _ = turn_feedback(["ok"], failed=True, turn=Turn(1, 5, 2), budget=100, notes=[])
    assert "Block 2 was not run, because block 1 failed" in single


@pytest.mark.parametrize(("turn", "warned"), [(16, False), (17, True), (19, True), (20, False)])
def test_the_last_turns_carry_a_warning(turn: int, warned: bool) -> None:
    message, _ = turn_feedback(["ok"], failed=False, turn=Turn(turn, 20, 1), budget=1_000, notes=[])
    assert message.startswith(f"Turn {turn} of 20.")
    assert ("left: put your answer in a variable" in message) is warned


def test_nudges_say_what_the_reply_had() -> None:
    assert nudge("Let me think.", tool_calls=False, noted=False) == NUDGE_NO_CODE
    assert nudge("I will call FINAL(x) later.", tool_calls=False, noted=False) == NUDGE_MID_LINE
    assert "no language tag" in nudge("```\nprint(1)\n```", tool_calls=False, noted=False)
    assert "tagged ```js" in nudge("```js\nf()\n```", tool_calls=False, noted=False)
    assert "tool call" in nudge("", tool_calls=True, noted=False)
    assert "empty" in nudge("", tool_calls=False, noted=False)
    assert nudge("FINAL_VAR(missing)", tool_calls=False, noted=True) == ""  # the note says why


def test_the_forced_answer_lists_the_variables() -> None:
    message = answer_now(["final_result: str (len 120)", "counts: dict (len 6)"])
    assert "FINAL_VAR(name)" in message and "- final_result: str (len 120)" in message
    assert "Your variables" not in answer_now([])
