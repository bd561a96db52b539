"""Files sent as content parts count against the context limit and touch the disk only once admitted."""

from __future__ import annotations

import base64
import tempfile
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from rlm.testing import ScriptedLM

from .conftest import Gate, wait_for


def with_file(data: bytes, text: str = "What is in it?") -> list[dict[str, Any]]:
    return [{"role": "user", "content": [
        {"type": "file", "file": {"filename": "big.txt", "file_data": base64.b64encode(data).decode()}},
        {"type": "text", "text": text}]}]


def post(running: Any, messages: list[dict[str, Any]]) -> httpx.Response:
    return httpx.post(f"{running.base_url}/chat/completions", json={"model": "rlm/root", "messages": messages},
                      timeout=60)


def test_files_count_against_max_context_chars_as_text_does(start) -> None:
    with ScriptedLM(root=lambda r: "FINAL(read)") as upstream:
        running = start(upstream, max_context_chars=100)
        as_text = post(running, [{"role": "user", "content": "x" * 50_000}, {"role": "user", "content": "q"}])
        assert as_text.status_code == 413
        as_file = post(running, with_file(b"x" * 50_000))
        assert as_file.status_code == 413 and as_file.json()["error"]["code"] == "context_too_large"
        assert "bytes of files" in as_file.json()["error"]["message"]
        together = post(running, [{"role": "user", "content": "y" * 60}, *with_file(b"x" * 60)])
        assert together.status_code == 413  # 60 bytes of file and 60 characters of text: 120 over 100
        assert upstream.stats["requests"] == 0
        assert post(running, with_file(b"x" * 90)).status_code == 200


def test_a_request_refused_for_a_full_server_writes_nothing(start, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    made: list[str] = []  # every directory made, even one removed at once
    real_mkdtemp = tempfile.mkdtemp

    def mkdtemp(*args: Any, **kwargs: Any) -> str:
        made.append(real_mkdtemp(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(tempfile, "mkdtemp", mkdtemp)
    gate = Gate(tmp_path)
    with ScriptedLM(root=[gate.step, "FINAL(done)"]) as upstream:
        running = start(upstream, max_runs=1, max_queue=0)
        first: list[httpx.Response] = []
        worker = threading.Thread(target=lambda: first.append(post(running, with_file(b"held " * 1000))))
        worker.start()
        try:
            gate.wait_entered()
            assert len(made) == 1 and len(list(scratch.iterdir())) == 1  # the admitted run's files
            busy = post(running, with_file(b"z" * 1_000_000))
            assert busy.status_code == 429
            assert len(made) == 1  # the refused request wrote nothing
        finally:
            gate.release()
            worker.join(60)
        assert first[0].status_code == 200, first[0].text
        wait_for(lambda: not list(scratch.iterdir()), what="the run's files to be removed")
