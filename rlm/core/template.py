"""The root's system prompt as a template a user may replace, checked for what the loop needs.

``Limits(prompt=...)`` takes the template's text, or a ``pathlib.Path`` to a file holding
it. It is filled in as ``rlm.core.prompts.SYSTEM_PROMPT`` is (``str.format``): rlm fills
``{sub_window}`` (the sub-model's window in tokens, an int: ``{sub_window:,}`` prints
128,000), ``{low}``/``{high}`` (the tokens of text one sub-call prompt should hold),
``{piece}`` (the ``max_tokens`` of the prompt's ``chunk`` example), ``{output_chars}`` (the
output a turn shows) and ``{rlm_query_line}`` (the line teaching ``rlm_query`` when
``max_depth`` > 1, else nothing); a literal brace is written ``{{`` or ``}}``. Only the
system prompt is replaced: the first message (the context's description and the query) and
the REPL's feedback stay rlm's.

The check runs when the settings are made, not at the first run, and names everything
missing at once: a template must render, and must teach the root what the loop acts
on (``context``, a fenced ``repl`` block, ``llm_query``, ``llm_batch``, ``FINAL(...)`` and
``FINAL_VAR(...)``, and ``rlm_query`` where the run may recurse).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from ..errors import ConfigError
from .prompts import system_prompt

#: What a template must mention, and why the loop needs it.
REQUIRED = (
    (re.compile(r"\bcontext\b"), "`context`", "the variable the context is loaded into"),
    (re.compile(r"```[ \t]*(?:repl|python)\b"), "a ```repl block", "the fenced code the loop runs"),
    (re.compile(r"\bllm_query\b"), "llm_query", "the sub-call"),
    (re.compile(r"\bllm_batch\b"), "llm_batch", "parallel sub-calls"),
    (re.compile(r"\bFINAL\("), "FINAL(answer)", "how the root ends the run with an answer"),
    (re.compile(r"\bFINAL_VAR\("), "FINAL_VAR(name)", "how the root answers with a REPL variable"),
)
RECURSIVE = (re.compile(r"\brlm_query\b"), "rlm_query", "recursion, which max_depth > 1 allows")


def load_prompt(source: str | os.PathLike[str]) -> str:
    """A template's text: ``source`` itself, or the file a ``Path`` names (UTF-8)."""
    if isinstance(source, str):
        return source
    if not isinstance(source, os.PathLike):
        raise ConfigError(f"prompt must be the template's text (str) or a pathlib.Path to a file, "
                          f"got {type(source).__name__}")
    path = Path(source)
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"prompt file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"prompt file {path} cannot be read as UTF-8 text: {exc}") from None


def render(template: str, *, can_recurse: bool) -> str:
    """The template filled in as a run fills it; ``ConfigError`` says what does not render."""
    try:
        return system_prompt(can_recurse=can_recurse, sub_window=128_000, template=template)
    except KeyError as exc:
        raise ConfigError(f"the prompt template has a placeholder {{{exc.args[0]}}} that rlm does not fill (it fills "
                          "{sub_window}, {low}, {high}, {piece}, {output_chars} and {rlm_query_line}); write a "
                          "literal brace as {{ or }}") from None
    except (IndexError, ValueError) as exc:
        raise ConfigError(f"the prompt template does not render with str.format ({exc}); write a literal brace "
                          "as {{ or }}") from None


def check_prompt(template: str, *, can_recurse: bool = False) -> str:
    """``template`` if it renders and teaches what the loop needs, else ``ConfigError`` naming what is missing.

    ``can_recurse``: the RLM's ``max_depth`` > 1, so the prompt must teach ``rlm_query`` too.
    """
    if not isinstance(template, str) or not template.strip():
        raise ConfigError("the prompt template is empty; start from rlm.core.prompts.SYSTEM_PROMPT")
    text = render(template, can_recurse=can_recurse)
    wanted = [*REQUIRED, RECURSIVE] if can_recurse else list(REQUIRED)
    missing = [f"{name} ({why})" for pattern, name, why in wanted if not pattern.search(text)]
    if missing:
        hint = " (or put {rlm_query_line} where the helpers are listed)" if can_recurse and any(
            m.startswith("rlm_query") for m in missing) else ""
        raise ConfigError(f"the prompt template never mentions {'; '.join(missing)}{hint}: the loop acts on each, so "
                          "a root never told of them cannot finish; start from rlm.core.prompts.SYSTEM_PROMPT")
    return template
