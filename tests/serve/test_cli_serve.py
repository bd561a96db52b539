"""``rlm serve`` as a user starts it: refusals at start, a real client, a clean stop, no key in its log."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import openai
import pytest

from rlm.testing import ScriptedLM
from tests.scripting import code

from .conftest import TOKEN, UPSTREAM_KEY


def rlm(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rlm.cli", *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})}, check=False)


@pytest.mark.parametrize(("args", "says"), [
    (["--model", "gpt-5", "--sandbox", "local"], "--allow-local-sandbox"),
    (["--model", "gpt-5", "--host", "0.0.0.0"], "bearer token"),
    ([], "no model to serve"),
    (["--any-model"], "--sub-model"),
    (["--model", "gpt-5", "--root", "/no/such/dir"], "no such directory"),
    (["--model", "gpt-5", "--max-runs", "0"], "--max-runs: expected an integer >= 1"),
    (["--model", "gpt-5", "--grace", "-1"], "--grace"),
    (["--model", "gpt-5", "--max-cost-usd", "-2"], "max_cost_usd"),
])
def test_unsafe_or_incomplete_settings_are_refused_at_start(args: list[str], says: str) -> None:
    done = rlm("serve", *args, "--port", "0", env={"RLM_SERVE_TOKEN": ""})
    assert done.returncode == 2 and says in done.stderr and "Traceback" not in done.stderr


def test_a_short_token_is_refused() -> None:
    done = rlm("serve", "--model", "gpt-5", "--host", "0.0.0.0", "--port", "0", env={"RLM_SERVE_TOKEN": "short"})
    assert done.returncode == 2 and "at least 16" in done.stderr


def test_a_config_file_with_the_key_in_it_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "serve.toml"
    config.write_text('[upstream]\napi_key = "sk-x"\n[models."rlm/a"]\nroot = "a"\n')
    done = rlm("serve", "--config", str(config), "--port", "0")
    assert done.returncode == 2 and "api_key_env" in done.stderr


def test_rlm_serve_answers_a_client_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    config = tmp_path / "serve.toml"
    peek = code("import os", "print('seen:', os.environ.get('OPENAI_API_KEY'), os.environ.get('RLM_SERVE_TOKEN'))")
    with ScriptedLM(root=[peek, "FINAL(from the CLI)"]) as upstream:
        config.write_text(f'[upstream]\nbase_url = "{upstream.base_url}"\nmax_concurrent = 4\n'
                          f'[server]\nsandbox = "local"\nallow_local_sandbox = true\ncache = false\n'
                          f'trace_dir = "{tmp_path / "traces"}"\n[limits]\nmax_time_s = 30\n'
                          '[models."rlm/small"]\nroot = "root"\nsub = "sub"\n')
        process = subprocess.Popen(
            [sys.executable, "-m", "rlm.cli", "serve", "--config", str(config), "--port", "0"],
            stderr=subprocess.PIPE, text=True,
            env={**os.environ, "OPENAI_API_KEY": UPSTREAM_KEY, "RLM_SERVE_TOKEN": TOKEN})
        try:
            assert process.stderr is not None
            line = ""
            deadline = time.monotonic() + 60
            while "serving" not in line and time.monotonic() < deadline:
                line = process.stderr.readline()
            url = line.split()[2]
            assert url.startswith("http://127.0.0.1:") and "rlm/small" in line
            client = openai.OpenAI(base_url=url, api_key=TOKEN, max_retries=0)
            reply = client.chat.completions.create(model="rlm/small", messages=[{"role": "user", "content": "q"}])
            assert reply.choices[0].message.content == "from the CLI"
            # Model code in the server's process (--allow-local-sandbox) finds neither secret in the environment.
            assert "seen: None None" in upstream.root_requests[1].messages[-1]["content"]
            assert {r.headers["authorization"] for r in upstream.requests} == {f"Bearer {UPSTREAM_KEY}"}
        finally:
            process.send_signal(signal.SIGTERM)
            rest = process.communicate(timeout=60)[1]
        assert process.returncode == 0
        assert "POST /v1/chat/completions 200" in rest
        assert UPSTREAM_KEY not in rest and TOKEN not in rest
