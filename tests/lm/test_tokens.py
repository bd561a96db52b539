"""Offline tiktoken from the bpe-openai wheel, model fallback, chat framing."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from rlm.lm import tokens
from rlm.lm.tokens import (
    BPE_FILES,
    count_message_tokens,
    count_tokens,
    encoding_name_for,
)

# Runs in a fresh interpreter: no socket may connect, so any download attempt fails loudly.
OFFLINE_SCRIPT = textwrap.dedent("""
    import json, socket, sys
    def refuse(*args, **kwargs):
        raise OSError("network access attempted")
    socket.socket.connect = refuse
    socket.create_connection = refuse
    sys.modules["requests"] = None  # tiktoken downloads with requests
    import tiktoken
    from rlm.lm.tokens import count_tokens, encoding_for
    out = {
        "o200k": len(encoding_for("gpt-5-mini").encode_ordinary("hello world")),
        "cl100k": len(encoding_for("gpt-4").encode_ordinary("hello world")),
        "unknown": len(encoding_for("my-local-llama").encode_ordinary("hello world")),
        "counted": [count_tokens("hello world", m) for m in ("gpt-5-mini", "gpt-4")],
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
    assert result == {"o200k": 2, "cl100k": 2, "unknown": 2, "counted": [2, 2], "direct": [2, 2]}
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
