"""``rlm.estimate``: the likely cost of a run, from the context's tokens and the prices, with no model call."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from rlm import RLM, Endpoint, ModelInfo
from rlm.lm.tokens import count_tokens
from rlm.testing import ScriptedLM

TEXT = "The merger was approved in Section 3 of the filing.\n" * 4_000


def test_an_estimate_makes_no_request_and_prices_both_plans() -> None:
    pricing = {"root": ModelInfo(input_per_mtok=1.0, output_per_mtok=10.0, context_window=200_000),
               "sub": ModelInfo(input_per_mtok=0.1, output_per_mtok=1.0, context_window=20_000)}
    with ScriptedLM() as lm:
        rlm = RLM("root", "sub", base_url=lm.base_url, api_key="k", sandbox="local",
                  endpoint=Endpoint(pricing=pricing))
        found = rlm.estimate(TEXT, "Where was the merger approved?")
        served = lm.stats["requests"]
    assert served == 0
    tokens = count_tokens(TEXT, "sub")
    assert found.tokens == tokens
    # One pass at 80 % of the sub-model's 20k window, or 10k-token chunks and a second pass.
    assert found.sub_calls == (-(-tokens // 16_000), -(-tokens // 10_000) + 1)
    assert found.sub_tokens[0] >= tokens and found.sub_tokens[1] > found.sub_tokens[0]
    assert found.root_prompt_tokens > 500  # the system prompt and the context's description
    assert found.cost_usd is not None and 0 < found.cost_usd[0] < found.cost_usd[1]
    assert "no model was called" in str(found) and "sub-calls" in str(found)


def test_an_unpriced_model_has_tokens_but_no_dollars() -> None:
    rlm = RLM("my-local", base_url="http://127.0.0.1:9/v1", sandbox="local")
    found = rlm.estimate({"a.txt": "x " * 100, "b.txt": "y " * 100}, "q")
    assert found.cost_usd is None and found.tokens == 2 * count_tokens("x " * 100) and "no price known" in str(found)


def test_an_estimate_needs_no_key_and_no_endpoint(monkeypatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    rlm = RLM("gpt-5", "gpt-5-mini", sandbox="local")
    found = rlm.estimate(TEXT, "Where was the merger approved?")
    assert found.tokens == count_tokens(TEXT, "gpt-5-mini") and found.cost_usd is not None


def test_rlm_ask_estimate_needs_no_endpoint(tmp_path: Path) -> None:
    doc = tmp_path / "doc.txt"
    doc.write_text(TEXT)
    done = subprocess.run([sys.executable, "-m", "rlm.cli", "ask", "--context", str(doc), "--query", "q",
                           "--model", "gpt-5", "--sub-model", "gpt-5-mini", "--estimate", "--json"],
                          capture_output=True, text=True, timeout=60, check=False,
                          env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert found["tokens"] == count_tokens(TEXT, "gpt-5-mini") and found["cost_usd"][0] > 0


def test_every_kind_of_context_is_counted_as_root_code_would_see_it(tmp_path: Path) -> None:
    text = "The quick brown fox jumps over the lazy dog.\n" * 200
    (tmp_path / "a.txt").write_text(text)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.py").write_text(text)
    rlm = RLM("gpt-5", "gpt-5-mini", base_url="http://127.0.0.1:9/v1", api_key="k")
    one = count_tokens(text, "gpt-5-mini")
    assert rlm.estimate(tmp_path / "a.txt", "q").tokens == one
    assert rlm.estimate(tmp_path, "q").tokens == 2 * one
    assert rlm.estimate(text.encode(), "q").tokens == one


def test_the_view_shows_the_estimate_as_the_run_starts(tmp_path: Path) -> None:
    with ScriptedLM(root=lambda request: "FINAL(done)") as lm:  # asked again: a first-turn FINAL is checked once
        rlm = RLM("root", "sub", base_url=lm.base_url, api_key="k", sandbox="local")
        result = rlm.completion(TEXT, "Where was the merger approved?", view=False)
        (tmp_path / "big.txt").write_text("word " * 300_000)
        from_file = rlm.completion(tmp_path / "big.txt", "q", view=False)
    (found,) = [e for e in result.trace if e.kind == "run.estimate"]
    assert found.data["tokens"] == count_tokens(TEXT, "sub") and found.data["sub_calls"][0] >= 1
    assert "estimated before the run: " in result.trace.to_html()
    (glanced,) = [e for e in from_file.trace if e.kind == "run.estimate"]
    assert glanced.data["tokens"] == 1_500_000 // 4, "a file context is sized, not read, for the view"


def test_a_glance_counts_small_texts_exactly_and_big_ones_from_their_characters() -> None:
    from rlm.core.estimate import GLANCE_CHARS, glance_tokens

    assert glance_tokens(TEXT, "sub") == count_tokens(TEXT, "sub")
    big = "x" * (GLANCE_CHARS + 4)
    assert glance_tokens(big, "sub") == len(big) // 4
    assert glance_tokens({"a": "x " * 10, "b": ["y"]}, "sub") > 0
