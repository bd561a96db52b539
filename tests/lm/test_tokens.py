"""Offline tiktoken from the bpe-openai wheel, model fallback, and the REPL's chunk helper."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from rlm import RLM
from rlm.lm import tokens
from rlm.lm.tokens import (
    BPE_FILES,
    count_message_tokens,
    count_tokens,
    encoding_name_for,
)
from rlm.repl.helpers import chunk
from rlm.testing import ScriptedLM

# Runs in a fresh interpreter: no socket may connect, so any download attempt fails loudly.
OFFLINE_SCRIPT = textwrap.dedent("""
    import json, socket, sys
    def refuse(*args, **kwargs):
        raise OSError("network access attempted")
    socket.socket.connect = refuse
    socket.create_connection = refuse
    sys.modules["requests"] = None  # tiktoken downloads with requests
    import tiktoken
    from rlm.lm.tokens import count_tokens, get_encoding
    out = {
        "o200k": count_tokens("hello world", "gpt-5-mini"),
        "cl100k": count_tokens("hello world", "gpt-4"),
        "unknown": count_tokens("hello world", "my-local-llama"),
        # tiktoken itself now loads both with its own sha256 check
        "direct": [len(tiktoken.get_encoding(n).encode("hello world")) for n in ("o200k_base", "cl100k_base")],
    }
    print(json.dumps(out))
""")


def run_offline(cache_dir: Path) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATA_GYM_CACHE_DIR",)}
    env["TIKTOKEN_CACHE_DIR"] = str(cache_dir)
    out = subprocess.run(
        [sys.executable, "-c", OFFLINE_SCRIPT], check=False, env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_encodings_load_offline_into_an_empty_cache_and_pass_tiktokens_hash_check(tmp_path: Path) -> None:
    cache = tmp_path / "tiktoken-cache"
    result = run_offline(cache)
    assert result == {"o200k": 2, "cl100k": 2, "unknown": 2, "direct": [2, 2]}
    for url, sha256 in BPE_FILES.values():
        data = (cache / hashlib.sha1(url.encode()).hexdigest()).read_bytes()
        assert hashlib.sha256(data).hexdigest() == sha256


def test_a_corrupt_cached_file_is_replaced_not_downloaded(tmp_path: Path) -> None:
    url, _ = BPE_FILES["o200k_base"]
    tmp_path.joinpath(hashlib.sha1(url.encode()).hexdigest()).write_bytes(b"garbage")
    assert run_offline(tmp_path)["o200k"] == 2


def test_cache_disabled_by_empty_setting_gives_an_actionable_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", "")
    with pytest.raises(Exception, match="TIKTOKEN_CACHE_DIR"):
        tokens._install_bpe_file("o200k_base")


@pytest.mark.parametrize(
    ("model", "encoding"),
    [
        ("gpt-5", "o200k_base"),
        ("gpt-4o-mini-2024-07-18", "o200k_base"),
        ("openai/gpt-4.1", "o200k_base"),
        ("gpt-4", "cl100k_base"),
        ("gpt-3.5-turbo", "cl100k_base"),
        ("text-davinci-003", "o200k_base"),  # p50k is not shipped offline: fall back
        ("llama-3-70b", "o200k_base"),
        (None, "o200k_base"),
    ],
)
def test_models_map_to_encodings_with_o200k_fallback(model: str | None, encoding: str) -> None:
    assert encoding_name_for(model) == encoding


def test_message_tokens_include_chat_framing() -> None:
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello world"}]
    bare = count_tokens("be brief") + count_tokens("hello world") + count_tokens("system") + count_tokens("user")
    assert count_message_tokens(messages, "gpt-5") == bare + 2 * tokens.TOKENS_PER_MESSAGE + tokens.TOKENS_PER_REPLY
    assert count_tokens("") == 0


TEXT = "".join(
    f"Line {i}: café naïve 日本語 😀 {'lorem ipsum dolor sit amet ' * (i % 7)}\n" for i in range(400)
)


@pytest.mark.parametrize("max_tokens", [7, 50, 333, 2000])
def test_chunk_pieces_fit_and_join_back_into_the_text(max_tokens: int) -> None:
    pieces = chunk(TEXT, max_tokens=max_tokens)
    assert "".join(pieces) == TEXT
    assert len(pieces) >= count_tokens(TEXT) // max_tokens
    assert all(0 < count_tokens(p) <= max_tokens for p in pieces)


def test_chunk_prefers_line_breaks() -> None:
    pieces = chunk(TEXT, max_tokens=300)
    assert all(p.endswith("\n") for p in pieces)


def test_chunk_overlap_repeats_the_end_of_each_piece() -> None:
    pieces = chunk(TEXT, max_tokens=200, overlap=40)
    assert all(count_tokens(p) <= 200 for p in pieces)
    for a, b in itertools.pairwise(pieces):
        shared = next(n for n in range(min(len(a), len(b)), 0, -1) if a.endswith(b[:n]))
        assert 20 <= count_tokens(b[:shared]) <= 45
    # the pieces cover the whole text in order
    assert pieces[0] == TEXT[: len(pieces[0])] and TEXT.endswith(pieces[-1])


def test_chunk_lists_dicts_small_and_bad_input() -> None:
    assert chunk(["a", "b", {"c": 1}], max_tokens=100) == ['a\nb\n{"c": 1}']
    assert chunk({"k": "v", "n": [1, 2]}, max_tokens=100) == ["k: v\nn: [1, 2]"]
    assert chunk("", max_tokens=5) == []
    assert chunk("short", max_tokens=5) == ["short"]
    with pytest.raises(ValueError, match="max_tokens"):
        chunk("x", max_tokens=0)
    with pytest.raises(ValueError, match="overlap"):
        chunk("x", max_tokens=10, overlap=10)


def test_chunk_and_count_tokens_are_callable_in_the_repl() -> None:
    program = (
        "```repl\npieces = chunk(context, max_tokens=500, overlap=20)\n"
        "print(len(pieces), max(count_tokens(p) for p in pieces) <= 500)\n```"
    )
    with ScriptedLM(root=[program, "FINAL(done)"]) as lm:
        result = RLM("root", "sub", base_url=lm.base_url, api_key="k", sandbox="local").completion(TEXT, "q")
    count, fits = result.steps[0].outputs[0].stdout.split()
    assert int(count) >= count_tokens(TEXT) // 500 and fits == "True"
