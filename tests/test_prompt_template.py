"""The root's system prompt as a user's template: Limits(prompt=...) checked at construction, sent as written."""

from __future__ import annotations

from pathlib import Path

import pytest

from rlm import RLM, ConfigError, Endpoint, Limits
from rlm.core.prompts import SYSTEM_PROMPT
from rlm.core.template import check_prompt
from rlm.testing import ScriptedLM

MINE = """You are a careful analyst. The text is in the REPL variable `context`; read it with code in
```repl
print(context[:500])
```
blocks. Ask a sub-model with llm_query(prompt), many at once with llm_batch(prompts); it reads about {sub_window}.
{rlm_query_line}End with FINAL(answer), or FINAL_VAR(name) for a variable. Literal braces: {{like this}}.
"""


def test_a_template_of_ones_own_is_what_the_root_is_sent(tmp_path: Path) -> None:
    with ScriptedLM(root=["FINAL(ok)"]) as lm:
        rlm = RLM("root", "sub", base_url=lm.base_url, api_key="k", sandbox="local", endpoint=Endpoint(retries=0),
                  limits=Limits(prompt=MINE))
        assert rlm.completion("some text", "q").answer == "ok"
        system = lm.root_requests[0].messages[0]
        (tmp_path / "mine.txt").write_text(MINE.replace("careful", "thorough"))
        from_file = RLM("root", "sub", base_url=lm.base_url, api_key="k", sandbox="local",
                        endpoint=Endpoint(retries=0), limits=Limits(prompt=tmp_path / "mine.txt"))
        lm.root = ["FINAL(ok)"]
        from_file.completion("some text", "q")
        again = lm.root_requests[1].messages[0]
    assert system["role"] == "system" and system["content"].startswith("You are a careful analyst.")
    assert "Literal braces: {like this}." in system["content"] and "{sub_window}" not in system["content"]
    assert "rlm_query" not in system["content"]  # max_depth=1: the line is left out
    assert again["content"].startswith("You are a thorough analyst.")


def test_what_the_loop_needs_is_checked_when_the_settings_are_made(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"never mentions llm_batch \(parallel sub-calls\); FINAL_VAR\(name\)"):
        Limits(prompt=MINE.replace("llm_batch(prompts)", "them").replace("FINAL_VAR(name)", "a name"))
    with pytest.raises(ConfigError, match=r"placeholder \{model\} that rlm does not fill"):
        Limits(prompt=MINE + "You are {model}.")
    with pytest.raises(ConfigError, match=r"placeholder \{'a'\} .* write a literal brace as \{\{ or \}\}"):
        Limits(prompt=MINE + "a dict: {'a': 1}")
    with pytest.raises(ConfigError, match=r"does not render with str\.format"):
        Limits(prompt=MINE + "an open brace: {")
    with pytest.raises(ConfigError, match="does not exist"):
        Limits(prompt=tmp_path / "missing.txt")
    with pytest.raises(ConfigError, match="is empty"):
        Limits(prompt="  ")
    with pytest.raises(ConfigError, match=r"pathlib\.Path"):
        Limits(prompt=42)  # type: ignore[arg-type]
    without_recursion = MINE.replace("{rlm_query_line}", "")
    Limits(prompt=without_recursion)  # fine while the run cannot recurse
    with pytest.raises(ConfigError, match=r"rlm_query .*put \{rlm_query_line\} where the helpers are listed"):
        RLM("root", sandbox="local", max_depth=2, limits=Limits(prompt=without_recursion))
    assert check_prompt(SYSTEM_PROMPT, can_recurse=True) == SYSTEM_PROMPT
