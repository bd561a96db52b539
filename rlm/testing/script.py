"""What a ``ScriptedLM`` script sees and returns: the request, the reply callables, fault rules."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web

from rlm.testing import wire
from rlm.testing.faults import Fault

if TYPE_CHECKING:
    from rlm.testing.vision import ScriptedImage

log = logging.getLogger("rlm.testing")

_DEFAULT_ROOT_REPLY = "FINAL(ok)"
_DEFAULT_SUB_REPLY = "ok"


@dataclass(frozen=True)
class ScriptedRequest:
    """One chat request as the script sees it: enough to pick a reply or assert on."""

    index: int
    body: dict[str, Any]
    model: str
    messages: list[dict[str, Any]]
    prompt: str
    role: str
    stream: bool
    headers: dict[str, str]
    #: The request's path with its query string (``/v1/chat/completions?team=a``).
    path: str = ""
    #: Its images, as their headers describe them, in order.
    images: tuple[ScriptedImage, ...] = ()


Reply = Callable[[ScriptedRequest], str]
RootScript = Sequence[str] | Reply
Latency = float | tuple[float, float] | Callable[[ScriptedRequest], float]


class ScriptExhausted(RuntimeError):
    """The root reply list ran out; surfaced as HTTP 500 so tests fail loudly."""


@dataclass
class Rule:
    """A fault rule; ``remaining`` counts down and only the server thread touches it."""

    fault: Fault
    when: Callable[[ScriptedRequest], bool] | None
    remaining: int | None


def default_is_root(body: dict[str, Any]) -> bool:
    """Root calls carry a system prompt or a history; sub-calls are one bare user turn."""
    messages = body.get("messages") or []
    return len(messages) > 1 or (bool(messages) and messages[0].get("role") == "system")


def default_root(request: ScriptedRequest) -> str:
    """End any root loop at once, so an unconfigured server still terminates runs."""
    return _DEFAULT_ROOT_REPLY


def default_sub(request: ScriptedRequest) -> str:
    """A fixed short answer keeps unconfigured sub-calls cheap and predictable."""
    return _DEFAULT_SUB_REPLY


class ScriptAnswers:
    """What ``ScriptedLM`` answers a request with: a fault rule, a latency, the root or sub reply.

    The server half (``ScriptedLM``) holds the state these read: ``_rules``, ``_lock``,
    ``latency``, ``sub`` and the root queue.
    """

    _rules: list[Rule]
    _lock: Any
    _faults: dict[str, int]
    _root: RootScript
    _root_queue: list[str] | None
    _root_served: int
    latency: Latency
    sub: Reply

    def _match_fault(self, scripted: ScriptedRequest) -> Fault | None:
        """First live rule whose ``when`` accepts the request, consuming one use."""
        for rule in self._rules:
            if rule.remaining == 0 or (rule.when is not None and not rule.when(scripted)):
                continue
            if rule.remaining is not None:
                rule.remaining -= 1
            with self._lock:
                self._faults[rule.fault.kind] = self._faults.get(rule.fault.kind, 0) + 1
            return rule.fault
        return None

    def _latency_for(self, scripted: ScriptedRequest) -> float:
        """Resolve the latency setting for one request."""
        latency = self.latency
        if callable(latency):
            return float(latency(scripted))
        if isinstance(latency, (tuple, list)):
            low, high = latency
            return random.uniform(low, high)
        return float(latency)

    def _reply(self, scripted: ScriptedRequest) -> str:
        """Next root list entry or the matching callable's answer."""
        reply = self._next_root(scripted) if scripted.role == "root" else self.sub(scripted)
        if not isinstance(reply, str):
            raise TypeError(f"script returned {type(reply).__name__}, expected str")
        return reply

    def _next_root(self, scripted: ScriptedRequest) -> object:
        """Pop the next root reply, or ask the root callable."""
        with self._lock:
            queue, script = self._root_queue, self._root
            if queue is not None:
                if not queue:
                    raise ScriptExhausted(
                        f"ScriptedLM: the root script ran out: its list of {self._root_served} replies was all used "
                        f"(root=[...] given to ScriptedLM); this was root request {scripted.index + 1}")
                self._root_served += 1
                return queue.pop(0)
        return script(scripted)  # type: ignore[operator]


def script_error(exc: Exception) -> web.Response:
    """Turn a script failure into a loud 500 carrying the exception text, never retried.

    Retrying cannot make a script answer, so clients are told not to (``x-should-retry: false``,
    which rlm and the openai SDK honour): a test fails at once with the reason.
    """
    final = {"x-should-retry": "false"}
    if isinstance(exc, ScriptExhausted):
        return wire.error_response(500, str(exc), final)
    log.warning("ScriptedLM script raised", exc_info=exc)
    return wire.error_response(500, f"ScriptedLM script raised {type(exc).__name__}: {exc}", final)
