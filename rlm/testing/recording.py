"""What ``ScriptedLM`` saw: the requests it recorded, the counters ``/stats`` reports, and admission.

Why a part of its own: a test asserts on what reached the server (bodies, roles, models,
statuses, the most requests in flight at once) more than on anything else the server
does, and these counters must stay consistent with each other under one lock.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from aiohttp import web

from rlm.testing import vision, wire
from rlm.testing.script import ScriptedRequest


class Recording:
    """The recorded requests and counters of ``ScriptedLM``, and its cap on requests in flight."""

    _lock: threading.Lock
    is_root: Callable[[dict[str, Any]], bool]
    #: Models listed with a context window (``ScriptedLM(windows=...)``).
    windows: dict[str, int]

    def _init_recording(self, record: bool) -> None:
        self.record = record
        self._admit_limit: int | None = None
        self._admit_retry_after = 0.5
        self._in_flight = 0
        self._reset_counters()

    def admit(self, max_in_flight: int | None, retry_after: float = 0.5) -> None:
        """Answer 429 to requests beyond ``max_in_flight`` concurrent ones (None lifts it)."""
        with self._lock:
            self._admit_limit = max_in_flight
            self._admit_retry_after = retry_after

    def _reset_counters(self) -> None:
        """Zero everything observable; the caller holds the lock (or is ``__init__``)."""
        self._requests: list[ScriptedRequest] = []
        self._seen = 0
        self._n_root = 0
        self._n_sub = 0
        self._max_in_flight = self._in_flight
        self._faults: dict[str, int] = {}
        self._status_counts: dict[int, int] = {}
        self._models: dict[str, None] = {}
        self._model_listings = 0

    @property
    def requests(self) -> list[ScriptedRequest]:
        """A snapshot of recorded requests in arrival order."""
        with self._lock:
            return list(self._requests)

    @property
    def root_requests(self) -> list[ScriptedRequest]:
        """Recorded requests routed to the root script."""
        return [r for r in self.requests if r.role == "root"]

    @property
    def sub_requests(self) -> list[ScriptedRequest]:
        """Recorded requests routed to the sub script."""
        return [r for r in self.requests if r.role == "sub"]

    def _counters(self) -> dict[str, Any]:
        """A consistent snapshot of the counters (``stats`` adds the Batch API's)."""
        with self._lock:
            return {
                "requests": self._seen,
                "root": self._n_root,
                "sub": self._n_sub,
                "in_flight": self._in_flight,
                "max_in_flight": self._max_in_flight,
                "faults": dict(self._faults),
                "status_counts": dict(self._status_counts),
                "model_listings": self._model_listings,
            }

    def _arrive(
        self, request: web.Request, body: dict[str, Any], messages: list[dict[str, Any]],
        images: tuple[vision.ScriptedImage, ...] = (),
    ) -> tuple[ScriptedRequest, bool]:
        """Build the ScriptedRequest and take an in-flight slot unless admission refuses."""
        prompt = next((wire.message_text(m.get("content")) for m in reversed(messages) if m.get("role") == "user"), "")
        role = "root" if self.is_root(body) else "sub"
        model = str(body.get("model") or "scripted")
        headers = {k.lower(): v for k, v in request.headers.items()}
        with self._lock:
            scripted = ScriptedRequest(
                self._seen, body, model, messages, prompt, role, bool(body.get("stream")), headers, request.path_qs,
                images,
            )
            self._seen += 1
            if self.record:
                self._requests.append(scripted)
            if role == "root":
                self._n_root += 1
            else:
                self._n_sub += 1
            self._models[model] = None
            if self._admit_limit is not None and self._in_flight >= self._admit_limit:
                self._faults["admit"] = self._faults.get("admit", 0) + 1
                return scripted, False
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)
            return scripted, True

    def _leave(self) -> None:
        """A request that took an in-flight slot has its answer."""
        with self._lock:
            self._in_flight -= 1

    def _listed_models(self) -> list[str]:
        """The models ``/v1/models`` lists: the scripted one, ``windows``' and every one asked for; counted."""
        with self._lock:
            self._model_listings += 1
            return list(dict.fromkeys(["scripted", *self.windows, *self._models]))

    def _refuse(self, response: web.Response) -> web.Response:
        """Count a response given before the request took an in-flight slot."""
        self._count_status(response.status)
        return response

    def _count_status(self, status: int) -> None:
        """Tally a response status for ``stats['status_counts']``."""
        with self._lock:
            self._status_counts[status] = self._status_counts.get(status, 0) + 1
