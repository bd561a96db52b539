"""``rlm serve-fake`` in a process of its own, for benchmarks.

Why a separate process: on a 2-core machine a server on the client's own loop (or
even its own thread, under the GIL) would spend the client's CPU and hide exactly
the per-call overhead the benchmark measures.
"""

from __future__ import annotations

import json
import select
import subprocess
import sys
import urllib.request
from types import TracebackType
from typing import Any

from ..errors import RLMError

_START_TIMEOUT_S = 30.0


class FakeServer:
    """Start ``python -m rlm.cli serve-fake`` on a free port and stop it on exit.

    Example::

        with FakeServer(latency=0.2, admit=16) as server:
            rlm = RLM("m", base_url=server.base_url, api_key="x")
            print(server.stats()["status_counts"])
    """

    def __init__(
        self,
        *,
        latency: float = 0.0,
        admit: int | None = None,
        admit_retry_after: float = 0.5,
        root_reply: str | None = None,
        latency_sigma: float = 0.0,
        seed: int = 0,
    ) -> None:
        self.args = ["--port", "0", "--latency", repr(latency)]
        if latency_sigma:
            self.args += ["--latency-sigma", repr(latency_sigma), "--seed", str(seed)]
        if admit is not None:
            self.args += ["--admit", str(admit), "--admit-retry-after", repr(admit_retry_after)]
        if root_reply is not None:
            self.args += ["--root-reply", root_reply]
        self.latency = latency
        self.latency_sigma = latency_sigma
        self.admit = admit
        self._proc: subprocess.Popen[str] | None = None
        self.base_url = ""

    @property
    def url(self) -> str:
        return self.base_url.removesuffix("/v1")

    def __enter__(self) -> FakeServer:
        cmd = [sys.executable, "-m", "rlm.cli", "serve-fake", *self.args]
        self._proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        assert self._proc.stdout is not None
        ready, _, _ = select.select([self._proc.stdout], [], [], _START_TIMEOUT_S)
        line = self._proc.stdout.readline() if ready else ""
        if not line.startswith("serving on "):
            self.__exit__(None, None, None)
            raise RLMError(f"rlm serve-fake did not start (said {line.strip()!r})")
        self.base_url = line.split()[2]
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()

    def stats(self) -> dict[str, Any]:
        """The server's counters (requests, status_counts, max_in_flight, ...)."""
        with urllib.request.urlopen(f"{self.url}/stats", timeout=10) as response:
            return dict(json.load(response))

    def reset(self) -> None:
        """Zero the counters between measurements."""
        request = urllib.request.Request(f"{self.url}/reset", data=b"{}", method="POST")
        with urllib.request.urlopen(request, timeout=10):
            pass
