"""Work that blocks (opening and measuring a document, decoding a body, writing uploads) runs off the server's loop."""

from __future__ import annotations

import base64
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

import rlm.serve.chat
import rlm.serve.uploads
from rlm.testing import ScriptedLM


def test_parsing_and_uploads_run_off_the_loop(start, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    threads: dict[str, set[str]] = {}

    def spied(name: str, real: Any) -> Any:
        def spy(*args: Any, **kwargs: Any) -> Any:
            threads.setdefault(name, set()).add(threading.current_thread().name)
            return real(*args, **kwargs)

        return spy

    monkeypatch.setattr(rlm.serve.chat, "confine", spied("confine", rlm.serve.chat.confine))
    monkeypatch.setattr(rlm.serve.uploads.Uploads, "write", spied("write", rlm.serve.uploads.Uploads.write))
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("some text")
    with ScriptedLM(root=lambda r: "FINAL(x)") as upstream:
        running = start(upstream, roots=(str(docs),))
        url = f"{running.base_url}/chat/completions"
        question = {"type": "text", "text": "q"}
        upload = {"type": "file", "file": {"filename": "b.txt", "file_data": base64.b64encode(b"data").decode()}}
        for body in ({"rlm": {"path": "a.txt"}, "messages": [{"role": "user", "content": "q"}]},
                     {"messages": [{"role": "user", "content": [upload, question]}], "stream": True}):
            assert httpx.post(url, json={"model": "rlm/root", **body}, timeout=30).status_code == 200
    assert set(threads) == {"confine", "write"}
    assert "rlm-serve-test" not in set().union(*threads.values()), threads  # the server's loop thread
