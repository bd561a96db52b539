"""A web page cannot use the server: no simple cross-site POST, no DNS rebinding, no foreign Origin."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from rlm.testing import ScriptedLM

QUESTION = [{"role": "user", "content": "What does it say?"}]


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    root = tmp_path / "docs"
    root.mkdir()
    (root / "private.txt").write_text("the private document's text")
    return root


def chat(running: Any, headers: dict[str, str], **body: Any) -> httpx.Response:
    import json

    payload = json.dumps({"model": "rlm/root", "messages": QUESTION, **body}).encode()
    return httpx.post(f"{running.base_url}/chat/completions", content=payload, headers=headers, timeout=30)


def test_a_cross_site_simple_request_is_refused_whatever_it_names(start, docs: Path) -> None:
    """What a page at evil.example can send without a preflight: text/plain, its own Origin, a rebound Host."""
    with ScriptedLM(root=lambda r: "FINAL(the private document's text)") as upstream:
        running = start(upstream, roots=(str(docs),))
        port = running.base_url.rsplit(":", 1)[1].split("/")[0]
        attack = chat(running, {"Content-Type": "text/plain", "Origin": "http://evil.example",
                                "Host": f"evil.example:{port}"}, rlm={"path": "private.txt"})
        assert attack.status_code in (403, 415, 421) and "private document" not in attack.text
        plain = chat(running, {"Content-Type": "text/plain"}, rlm={"path": "private.txt"})
        assert plain.status_code == 415 and plain.json()["error"]["code"] == "unsupported_media_type"
        assert upstream.stats["requests"] == 0
        ok = chat(running, {"Content-Type": "application/json; charset=utf-8"}, rlm={"path": "private.txt"})
        assert ok.status_code == 200, ok.text


def test_a_rebound_host_name_reads_nothing(start) -> None:
    with ScriptedLM(root=lambda r: "FINAL(an answer)") as upstream:
        running = start(upstream)
        port = running.base_url.rsplit(":", 1)[1].split("/")[0]
        reply = chat(running, {"Content-Type": "application/json"})
        trace = reply.json()["rlm"]["trace"]
        rebound = {"Host": f"evil.example:{port}"}
        for path in ("/v1/models", trace, "/health"):
            refused = httpx.get(f"{running.url}{path}", headers=rebound)
            assert refused.status_code == 421 and refused.json()["error"]["code"] == "host_not_allowed", path
        assert chat(running, {"Content-Type": "application/json", **rebound}).status_code == 421
        for name in ("localhost", "127.0.0.1", "[::1]"):
            assert httpx.get(f"{running.url}/v1/models", headers={"Host": f"{name}:{port}"}).status_code == 200
        assert httpx.get(f"{running.url}{trace}").status_code == 200
        assert upstream.stats["root"] == 1


def test_an_origin_outside_the_allow_list_is_refused(start) -> None:
    with ScriptedLM(root=lambda r: "FINAL(x)") as upstream:
        running = start(upstream)
        models = f"{running.base_url}/models"
        refused = httpx.get(models, headers={"Origin": "http://evil.example"})
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "origin_not_allowed"
        assert chat(running, {"Content-Type": "application/json", "Origin": "https://evil.example"}).status_code == 403
        assert httpx.get(models, headers={"Origin": "http://localhost:5173"}).status_code == 200
        assert httpx.get(models, headers={"Origin": "http://localhost.evil.example"}).status_code == 403
        assert httpx.get(models).status_code == 200  # no Origin: not a browser
        assert upstream.stats["requests"] == 0


def test_the_allow_lists_are_settings(start) -> None:
    with ScriptedLM() as upstream:
        running = start(upstream, allowed_hosts=("rlm.internal",), allowed_origins=("https://chat.example.com",))
        models = f"{running.base_url}/models"
        assert httpx.get(models, headers={"Host": "rlm.internal"}).status_code == 200
        assert httpx.get(models).status_code == 421  # the list replaces the loopback names
        assert httpx.get(models, headers={"Host": "rlm.internal",
                                          "Origin": "https://chat.example.com"}).status_code == 200
        assert httpx.get(models, headers={"Host": "rlm.internal",
                                          "Origin": "http://localhost:5173"}).status_code == 403
