"""``rlm serve`` with its default sandbox: root code runs in a kernel, holding no key, over a confined document."""

from __future__ import annotations

from pathlib import Path

import openai

from rlm.testing import ScriptedLM
from tests.scripting import code

from .conftest import UPSTREAM_KEY


def test_the_kernel_reads_a_confined_document_and_sees_no_key(start, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", UPSTREAM_KEY)  # in the server's environment, as rlm serve has it
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "report.txt").write_text("The merger closed in March.")
    root = [code("import os", "seen = (os.environ.get('OPENAI_API_KEY'), context[:10], os.getpid())", "print(seen)"),
            "FINAL_VAR(seen)"]
    with ScriptedLM(root=root) as upstream:
        running = start(upstream, sandbox="kernel", allow_local=False, roots=(str(docs),))
        client = openai.OpenAI(base_url=running.base_url, api_key="unused", max_retries=0, timeout=120)
        reply = client.chat.completions.create(model="rlm/root", messages=[{"role": "user", "content": "q"}],
                                               extra_body={"rlm": {"path": "report.txt"}})
        answer = reply.choices[0].message.content
        assert answer.startswith("(None, 'The merger'")
        assert UPSTREAM_KEY not in answer


def test_two_requests_run_in_fresh_kernels(start) -> None:
    root = [code("import os", "state = globals().get('state', 0) + 1", "print(state)"), "FINAL_VAR(state)"]
    with ScriptedLM(root=root) as upstream:
        running = start(upstream, sandbox="kernel", allow_local=False)
        client = openai.OpenAI(base_url=running.base_url, api_key="unused", max_retries=0, timeout=120)
        first = client.chat.completions.create(model="rlm/root", messages=[{"role": "user", "content": "q"}])
        upstream.root = list(root)
        second = client.chat.completions.create(model="rlm/root", messages=[{"role": "user", "content": "q"}])
        assert first.choices[0].message.content == second.choices[0].message.content == "1"
