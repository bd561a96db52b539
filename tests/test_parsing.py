"""Tests for rlm.core.parsing: code blocks, final answers, and output truncation."""

from __future__ import annotations

import dataclasses
import time

import pytest

from rlm.core.parsing import (
    Final,
    find_code_blocks,
    find_final,
    find_trailing_final,
    mentions_final,
    truncate_output,
    unrun_fences,
)

# --------------------------------------------------------------------------- find_code_blocks


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(None, [], id="none"),
        pytest.param("", [], id="empty"),
        pytest.param("just prose, no code", [], id="no-fences"),
        pytest.param("```repl\nx = 1\n```", ["x = 1"], id="repl"),
        pytest.param("```python\nprint(1)\n```", ["print(1)"], id="python"),
        pytest.param("```py\nprint(2)\n```", ["print(2)"], id="py"),
        pytest.param("```PYTHON\nprint(3)\n```", ["print(3)"], id="uppercase-info"),
        pytest.param("```Repl   \nprint(4)\n```", ["print(4)"], id="trailing-spaces-info"),
        pytest.param("```python  title=demo\nprint(5)\n```", ["print(5)"], id="info-extra-words"),
        pytest.param("~~~repl\ny = 2\n~~~", ["y = 2"], id="tilde-fence"),
        pytest.param("```json\n{\"a\": 1}\n```", [], id="json-not-run"),
        pytest.param("```text\nprint('no')\n```", [], id="text-not-run"),
        pytest.param("```\nprint('bare')\n```", [], id="bare-fence-not-run"),
        pytest.param("```python3\nprint(6)\n```", ["print(6)"], id="python3-runs"),
        pytest.param("```repl\n\n   \n```", [], id="empty-block-dropped"),
        pytest.param(
            "```repl\nx = 1\nprint(x)\n",
            ["x = 1\nprint(x)"],
            id="unterminated-takes-rest",
        ),
        pytest.param(
            "Let me look.\n```repl\nfor i in range(3):\n    print(i)",
            ["for i in range(3):\n    print(i)"],
            id="unterminated-no-trailing-newline",
        ),
        pytest.param(
            "```repl\r\nx = 1\r\nprint(x)\r\n```\r\n",
            ["x = 1\nprint(x)"],
            id="crlf",
        ),
        pytest.param(
            "1. First:\n   ```python\n   def f():\n       return 1\n   ```\n",
            ["def f():\n    return 1"],
            id="indented-fence-dedented",
        ),
        pytest.param(
            "\t```repl\n\tif True:\n\t\tx = 1\n\t```",
            ["if True:\n\tx = 1"],
            id="tab-indented-fence",
        ),
        pytest.param(
            "````repl\ns = '''\n```\n'''\n````",
            ["s = '''\n```\n'''"],
            id="longer-fence-contains-shorter",
        ),
        pytest.param(
            "~~~repl\na = 1\n```\nb = 2\n~~~",
            ["a = 1\n```\nb = 2"],
            id="tilde-not-closed-by-backticks",
        ),
        pytest.param(
            "```python```\nprint(7)\n```",
            [],
            id="backticks-in-info-is-not-an-opening-fence",
        ),
    ],
)
def test_find_code_blocks(text: str | None, expected: list[str]) -> None:
    assert find_code_blocks(text) == expected


def test_find_code_blocks_keeps_order_and_skips_other_languages() -> None:
    reply = (
        "First:\n```repl\na = 1\n```\n"
        "Config:\n```json\n{\"k\": \"```repl\"}\n```\n"
        "Then:\n```python\nb = 2\n```\n"
        "Output looked like:\n```\nc = 3\n```\n"
        "Finally:\n~~~py\nprint(a + b)\n~~~\n"
    )
    assert find_code_blocks(reply) == ["a = 1", "b = 2", "print(a + b)"]


def test_find_code_blocks_fence_inside_json_block_is_not_opened() -> None:
    reply = "```json\n```repl\nnot_code()\n```\n```repl\nreal()\n```"
    assert find_code_blocks(reply) == ["real()"]


# --------------------------------------------------------------------------- find_final


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(None, None, id="none"),
        pytest.param("", None, id="empty"),
        pytest.param("No answer yet.", None, id="no-final"),
        pytest.param("FINAL(42)", Final("text", "42"), id="simple"),
        pytest.param("FINAL(  Paris  )", Final("text", "Paris"), id="stripped"),
        pytest.param(
            'FINAL(f(x) = (a+b) "quoted )")',
            Final("text", 'f(x) = (a+b) "quoted )"'),
            id="nested-parens-and-quoted-paren",
        ),
        pytest.param(
            "FINAL(g('(', \"\\\")\") done)",
            Final("text", "g('(', \"\\\")\") done"),
            id="escaped-quote-inside-string",
        ),
        pytest.param(
            "FINAL(It's 5 o'clock (roughly))",
            Final("text", "It's 5 o'clock (roughly)"),
            id="apostrophes-are-not-strings",
        ),
        pytest.param(
            "FINAL(Bob's pick) but Alice's differs",
            Final("text", "Bob's pick"),
            id="apostrophes-do-not-pair-into-a-string",
        ),
        pytest.param(
            "FINAL(He is 5'10\" tall (about 178 cm))",
            Final("text", "He is 5'10\" tall (about 178 cm)"),
            id="feet-inches-quotes",
        ),
        pytest.param(
            'FINAL("the answer")',
            Final("text", "the answer"),
            id="double-quoted-literal-evaluated",
        ),
        pytest.param(
            "FINAL('it\\'s here')",
            Final("text", "it's here"),
            id="single-quoted-literal-with-escape",
        ),
        pytest.param(
            "FINAL('''multi\nline ) answer''')",
            Final("text", "multi\nline ) answer"),
            id="triple-quoted-literal",
        ),
        pytest.param(
            'FINAL("a" or "b")',
            Final("text", '"a" or "b"'),
            id="expression-not-evaluated",
        ),
        pytest.param(
            'FINAL(f"{x}")',
            Final("text", 'f"{x}"'),
            id="fstring-not-evaluated",
        ),
        pytest.param(
            "Here it is:\nFINAL(Line one\nLine two (with parens)\nLine three)\n",
            Final("text", "Line one\nLine two (with parens)\nLine three"),
            id="multiline",
        ),
        pytest.param(
            "FINAL(first\r\nsecond)\r\n",
            Final("text", "first\nsecond"),
            id="crlf",
        ),
        pytest.param(
            "I will call FINAL when done.",
            None,
            id="prose-mention-no-call",
        ),
        pytest.param(
            "Once I have it, then I will call FINAL(answer) to finish.",
            None,
            id="prose-mid-sentence-call",
        ),
        pytest.param("FINAL: 42", None, id="colon-form-rejected"),
        pytest.param("Use `FINAL(x)` when done.", None, id="inline-backticks"),
        pytest.param("`FINAL(x)`", None, id="inline-backticks-line-start"),
        pytest.param("``FINAL(`x`)``", None, id="double-backtick-span"),
        pytest.param("Run:\n    `FINAL(x)` later", None, id="indented-inline-backticks"),
        pytest.param(
            "```repl\nFINAL(not the answer)\n```",
            None,
            id="inside-repl-block",
        ),
        pytest.param(
            "```text\nFINAL(example)\n```",
            None,
            id="inside-other-language-block",
        ),
        pytest.param(
            "Let me run:\n```python\nx = 1\nFINAL(x)",
            None,
            id="inside-unterminated-block",
        ),
        pytest.param("  FINAL(indented)", Final("text", "indented"), id="leading-space"),
        pytest.param("**FINAL(bold)**", Final("text", "bold"), id="bold"),
        pytest.param("> FINAL(quoted)", Final("text", "quoted"), id="blockquote"),
        pytest.param("- FINAL(item)", Final("text", "item"), id="dash-bullet"),
        pytest.param("* FINAL(star)", Final("text", "star"), id="star-bullet"),
        pytest.param("## FINAL(heading)", Final("text", "heading"), id="heading"),
        pytest.param("XFINAL(no)", None, id="prefix-word"),
        pytest.param(
            "FINAL(The answer is (partially",
            Final("text", "The answer is (partially"),
            id="unterminated-takes-rest",
        ),
        pytest.param(
            "FINAL(cut off\nafter two lines  \n",
            Final("text", "cut off\nafter two lines"),
            id="unterminated-multiline-stripped",
        ),
        pytest.param(
            "FINAL(draft)\nOn reflection:\nFINAL(revised)",
            Final("text", "revised"),
            id="last-wins",
        ),
        pytest.param(
            "FINAL(draft)\nFINAL_VAR(result)",
            Final("var", "result"),
            id="last-wins-across-kinds",
        ),
        pytest.param(
            "FINAL(oops (unbalanced\nFINAL(clean)",
            Final("text", "clean"),
            id="later-complete-call-beats-unterminated",
        ),
        pytest.param(
            "FINAL(x\nFINAL(y (z",
            Final("text", "y (z"),
            id="last-of-two-unterminated",
        ),
        pytest.param(
            "FINAL(The area is \\(\\pi r^2\\) (exactly))",
            Final("text", "The area is \\(\\pi r^2\\) (exactly)"),
            id="latex-escaped-parens",
        ),
        pytest.param(
            'FINAL({\\"name\\": \\"Bob\\"} (escaped JSON))',
            Final("text", '{\\"name\\": \\"Bob\\"} (escaped JSON)'),
            id="escaped-quotes-outside-strings",
        ),
        pytest.param(
            "FINAL(Summary:\nFINAL(x) appears in the log)",
            Final("text", "Summary:\nFINAL(x) appears in the log"),
            id="call-inside-argument-not-separate",
        ),
        pytest.param("FINAL_VAR(answer)", Final("var", "answer"), id="var"),
        pytest.param('FINAL_VAR("answer")', Final("var", "answer"), id="var-double-quotes"),
        pytest.param("FINAL_VAR( 'answer' )", Final("var", "answer"), id="var-single-quotes"),
        pytest.param("FINAL_VAR(`answer`)", Final("var", "answer"), id="var-backticks"),
        pytest.param(
            "```repl\nanswer = compute()\n```\nFINAL_VAR(answer)",
            Final("var", "answer"),
            id="var-after-code-block",
        ),
        pytest.param(
            "Done.\n```repl\nFINAL_VAR(x)\n```\nFINAL(from prose)",
            Final("text", "from prose"),
            id="prose-final-after-code-final",
        ),
        pytest.param(
            "FINAL(Use `print(x)` to see it)",
            Final("text", "Use `print(x)` to see it"),
            id="inline-code-inside-argument-kept",
        ),
    ],
)
def test_find_final(text: str | None, expected: Final | None) -> None:
    assert find_final(text) == expected


@pytest.mark.timeout(10)
def test_find_final_many_cut_off_calls_is_not_quadratic() -> None:
    reply = "FINAL(partial (\n" * 20_000 + "FINAL(done)"
    assert find_final(reply) == Final("text", "done")


#: Replies that made the old scan rescan the rest of the reply once per call (issue 25: 200,000
#: lines of "FINAL(" took 7.4 s): one unit, repeated.
SHAPES = {
    "cut-off-calls-over-many-lines": "FINAL(\n",
    "nested-open-parentheses": "FINAL(a (b (\n",
    "triple-quotes-that-pair-across-calls": "FINAL(\'\'\'\n",
    "both-triple-quotes-interleaved": "FINAL(\n\'\'\'\n\"\"\"\n",
    "unclosed-quotes": "FINAL(\"it (\n",
    "backslashes-and-escaped-parens": "FINAL(\\\\ \\( \\\" (\n",
    "fences-between-calls": "FINAL(x\n```\nFINAL(y\n```\n",
    "closed-calls-with-string-literals": "FINAL(\"(\" + \')\')\n",
}


def _cpu_seconds(*texts: str) -> list[float]:
    """The least CPU time of three parses of each text, taken in turns so that a slow spell
    of the machine falls on all of them; other processes' time does not count."""
    best = [float("inf")] * len(texts)
    for _ in range(3):
        for i, text in enumerate(texts):
            started = time.process_time()
            find_final(text)
            best[i] = min(best[i], time.process_time() - started)
    return best


@pytest.mark.parametrize("unit", SHAPES.values(), ids=SHAPES.keys())
def test_find_final_time_grows_linearly_with_the_reply(unit: str) -> None:
    small, large = _cpu_seconds(unit * 1_500, unit * 15_000)
    # Ten times the input: about ten times the time (9.8-10.5 measured). The old scan, quadratic,
    # took 25-38 times as long at these sizes (100 in the limit).
    assert large / max(small, 1e-4) < 16, (small, large)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("Final answer: FINAL(42)", Final("text", "42"), id="after-a-label"),
        pytest.param("So the answer is FINAL(42).", Final("text", "42"), id="ends-a-sentence"),
        pytest.param("**Answer: FINAL(Paris)**", Final("text", "Paris"), id="bold"),
        pytest.param('It is FINAL("a (b)")!', Final("text", "a (b)"), id="literal-with-parens"),
        pytest.param("Stored: FINAL_VAR(result).\n\n", Final("var", "result"), id="var-then-blank-lines"),
        pytest.param("FINAL(a) or rather FINAL(b).", Final("text", "b"), id="last-call"),
        pytest.param("Answer FINAL(7)\n```text\nan example\n```", Final("text", "7"), id="before-a-text-block"),
        pytest.param("I will call FINAL(x) and then check.", None, id="mid-sentence"),
        pytest.param("FINAL(7) was my guess.\nI need to check it.", None, id="not-the-last-line"),
        pytest.param("Use `FINAL(x)`.", None, id="inline-code"),
        pytest.param("The answer is FINAL(42", None, id="unclosed"),
        pytest.param("```python\nx = 1\nprint(FINAL(x))\n```", None, id="in-code"),
        pytest.param("FINALLY(3) and XFINAL(4)", None, id="other-words"),
    ],
)
def test_find_trailing_final(text: str, expected: Final | None) -> None:
    assert find_trailing_final(text) == expected


def test_mentions_final_reads_the_text_not_the_code_or_inline_code() -> None:
    assert mentions_final("Then I will call FINAL(answer).")
    assert not mentions_final("```repl\nFINAL(x)\n```\nUse `FINAL(x)` later.")


def test_unrun_fences_names_the_blocks_that_did_not_run() -> None:
    reply = "```\nprint(1)\n```\n```js\nf()\n```\n```repl\nx = 1\n```\n```text\n\n```"
    assert unrun_fences(reply) == ["", "js"]


def test_final_is_frozen_value_object() -> None:
    final = Final("text", "x")
    with pytest.raises(dataclasses.FrozenInstanceError):
        final.value = "y"  # type: ignore[misc]
    assert not hasattr(final, "__dict__")


# --------------------------------------------------------------------------- truncate_output


@pytest.mark.parametrize(
    ("text", "limit"),
    [
        pytest.param("short", 100, id="under-limit"),
        pytest.param("x" * 10, 10, id="exactly-limit"),
        pytest.param("x" * 1000, 0, id="zero-means-unlimited"),
        pytest.param("x" * 1000, -5, id="negative-means-unlimited"),
        pytest.param("", 3, id="empty"),
    ],
)
def test_truncate_output_unchanged(text: str, limit: int) -> None:
    assert truncate_output(text, limit) == text


def test_truncate_output_keeps_head_and_tail() -> None:
    text = "".join(f"line {i:04d}\n" for i in range(1000))  # 10 chars a line, 10_000 chars
    result = truncate_output(text, 100)
    marker = "\n... [9900 characters omitted] ...\n"
    assert result == text[:60] + marker + text[-40:]
    assert result.startswith("line 0000\nline 0001\n")
    assert result.endswith("line 0998\nline 0999\n")
    assert len(result) == 100 + len(marker)


@pytest.mark.parametrize(
    ("limit", "expected"),
    [
        pytest.param(10, "abcdef\n... [16 characters omitted] ...\nwxyz", id="limit-10"),
        pytest.param(1, "\n... [25 characters omitted] ...\nz", id="limit-1"),
        pytest.param(
            25, "abcdefghijklmno\n... [1 characters omitted] ...\nqrstuvwxyz", id="off-by-one"
        ),
    ],
)
def test_truncate_output_exact(limit: int, expected: str) -> None:
    assert truncate_output("abcdefghijklmnopqrstuvwxyz", limit) == expected
