"""A real ``rlm serve`` on 127.0.0.1 in front of a scripted upstream, for real clients to talk to."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from rlm.serve.config import ModelRoute, ServeConfig
from rlm.serve.openai_api import serve
from rlm.serve.runs import Service
from rlm.testing import ScriptedLM
from tests.scripting import code

UPSTREAM_KEY = "sk-upstream-SECRET-0123456789abcdef"
TOKEN = "serve-token-0123456789abcdef"


@dataclass
class Running:
    """A server running on its own loop thread: its URL and the ``Service`` behind it."""

    base_url: str
    service: Service
    stop: Callable[[], None]

    @property
    def url(self) -> str:
        return self.base_url.removesuffix("/v1")


def wait_for(check: Callable[[], object], seconds: float = 30.0, what: str = "the condition") -> None:
    """Poll ``check`` until it is true, failing after ``seconds``."""
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


class Gate:
    """Holds a run inside its first step until the test releases it: a deterministic run in flight.

    ``step`` is a root reply whose code (run in-process: the tests' local sandbox) says it
    entered, then waits for the release file.
    """

    def __init__(self, directory: Path) -> None:
        self.entered = directory / "gate-entered"
        self.released = directory / "gate-released"
        self.step = code("import os, time", f"open({str(self.entered)!r}, 'w').close()",
                         f"while not os.path.exists({str(self.released)!r}): time.sleep(0.01)")

    def wait_entered(self) -> None:
        wait_for(self.entered.exists, what="the held run to enter its step")

    def release(self) -> None:
        self.released.touch()


def settings(upstream: ScriptedLM, tmp_path: Any, **changes: Any) -> ServeConfig:
    """A config for tests: the local sandbox (explicitly allowed) unless told, no cache, traces in tmp_path."""
    values: dict[str, Any] = {
        "models": (ModelRoute("rlm/root", "root", "sub"),), "base_url": upstream.base_url, "api_key": UPSTREAM_KEY,
        "port": 0, "sandbox": "local", "allow_local": True, "cache": False, "trace_dir": str(tmp_path / "traces"),
    }
    values.update(changes)
    return ServeConfig(**values)


@pytest.fixture
def start(tmp_path: Any) -> Iterator[Callable[..., Running]]:
    """``start(upstream, **config changes)`` runs a server; every one started is stopped at the end."""
    started: list[Running] = []

    def run(upstream: ScriptedLM, **changes: Any) -> Running:
        service = Service(settings(upstream, tmp_path, **changes))
        ready = threading.Event()
        found: dict[str, Any] = {}

        async def main() -> None:
            found["loop"], found["stop"] = asyncio.get_running_loop(), asyncio.Event()
            await serve(service, found["stop"], 5.0, lambda url: (found.update(url=url), ready.set()))

        def thread_main() -> None:
            try:
                asyncio.run(main())
            except BaseException as exc:  # noqa: BLE001 - handed to the test thread
                found["error"] = exc
                ready.set()

        thread = threading.Thread(target=thread_main, name="rlm-serve-test", daemon=True)
        thread.start()
        if not ready.wait(30) or "error" in found:
            raise RuntimeError(f"rlm serve did not start: {found.get('error')!r}")

        def stop() -> None:
            if thread.is_alive():
                found["loop"].call_soon_threadsafe(found["stop"].set)
                thread.join(30)

        running = Running(found["url"], service, stop)
        started.append(running)
        return running

    yield run
    for running in started:
        running.stop()
