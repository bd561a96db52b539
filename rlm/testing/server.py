"""A scripted OpenAI-compatible chat server for tests, demos and benchmarks.

The server runs on its own event loop in a daemon thread, so the same object works from
sync tests, async tests and notebooks without touching the caller's loop. Every reply is
decided by Python callables or a list (``rlm.testing.script``): RLM runs are reproducible.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Callable, Collection
from typing import Any

from aiohttp import web

from rlm.testing import vision, wire
from rlm.testing.batches import BatchService, Script
from rlm.testing.faults import Fault
from rlm.testing.loop_thread import LoopThread
from rlm.testing.pacing import Pacing
from rlm.testing.prefix_cache import PrefixCache
from rlm.testing.recording import Recording
from rlm.testing.script import (
    Latency,
    Reply,
    RootScript,
    Rule,
    ScriptAnswers,
    ScriptedRequest,
    default_is_root,
    default_root,
    default_sub,
    script_error,
)

__all__ = ["ScriptedLM", "ScriptedRequest", "default_is_root"]

logger = logging.getLogger("rlm")


class ScriptedLM(ScriptAnswers, Pacing, Recording):
    """An OpenAI-compatible server whose replies come from a script.

    ``root`` is a list of replies consumed in order (assigning a new list
    rewinds) or a callable; ``sub``, ``latency`` and ``is_root`` may also be
    reassigned while the server runs. Script callables run on the server's
    event loop, so they should be quick. ``record=False`` keeps only counters,
    for long benchmarks where storing every body would grow memory. ``headers``
    gives extra headers for each successful reply, as providers send
    ``x-ratelimit-*`` headers. ``windows`` lists models in ``/v1/models`` with a
    ``max_model_len``, as vLLM reports its context window. A request with ``stream``
    is answered as server-sent events of ``stream_chars`` characters each,
    ``stream_delay`` seconds apart, ending with a usage chunk when
    ``stream_options.include_usage`` asks for one (``hold_streams`` holds their ends).
    ``prefix_cache=True`` reports cached prompt tokens as a provider's prompt cache would.
    ``batches`` serves OpenAI's Batch API (``rlm.testing.batches``) from the same script.
    Images in a request are read (``rlm.testing.vision``): a script sees them as
    ``request.images`` (format, size, hash, tokens; never pixels), usage counts their tokens,
    and a malformed one is refused as OpenAI refuses one. The models in ``refuses_images``
    take no images: a request with one gets OpenAI's HTTP 400 ``invalid_request_error``.
    """

    def __init__(
        self,
        root: RootScript | None = None,
        sub: Reply | None = None,
        latency: Latency = 0.0,
        is_root: Callable[[dict[str, Any]], bool] | None = None,
        *,
        port: int = 0,
        record: bool = True,
        headers: Callable[[ScriptedRequest], dict[str, str]] | None = None,
        windows: dict[str, int] | None = None,
        stream_chars: int = 8,
        stream_delay: float = 0.0,
        prefix_cache: bool = False,
        refuses_images: Collection[str] = (),
    ) -> None:
        self._lock = threading.Lock()
        self.refuses_images = frozenset(refuses_images)
        self.prefix_cache = PrefixCache() if prefix_cache else None
        self.headers = headers
        self.windows = dict(windows or {})
        self.root = root if root is not None else default_root
        self.sub: Reply = sub if sub is not None else default_sub
        self.latency: Latency = latency
        self.is_root: Callable[[dict[str, Any]], bool] = is_root if is_root is not None else default_is_root
        self._port = port
        self._rules: list[Rule] = []
        self._init_recording(record)
        self._server_thread: LoopThread | None = None
        self._runner: web.AppRunner | None = None
        self._init_pacing(stream_chars, stream_delay)
        self.batches = BatchService(Script(is_root=lambda body: self.is_root(body), fault=self._match_fault,
                                           latency=self._latency_for, reply=self._reply, sleep=self._sleep))

    # ----------------------------------------------------------- configuration

    @property
    def root(self) -> RootScript:
        """The root script as given."""
        return self._root

    @root.setter
    def root(self, script: RootScript) -> None:
        with self._lock:
            self._root = script
            self._root_queue = None if callable(script) else list(script)
            self._root_served = 0

    def fail(
        self,
        fault: Fault,
        when: Callable[[ScriptedRequest], bool] | None = None,
        times: int | None = None,
    ) -> None:
        """Add a fault rule; rules are tried in order and the first match wins."""
        with self._lock:
            # Copy-on-write so the server thread can iterate without the lock.
            self._rules = [*self._rules, Rule(fault, when, times)]

    def reset(self) -> None:
        """Forget recordings and counters but keep the script, fault rules and limits."""
        with self._lock:
            self._reset_counters()
        self.batches.reset()

    # -------------------------------------------------------------- inspection

    @property
    def url(self) -> str:
        """Server root, e.g. for ``/stats``."""
        if self._server_thread is None:
            raise RuntimeError("ScriptedLM is not running; call start() or use it as a context manager")
        return f"http://127.0.0.1:{self._port}"

    @property
    def base_url(self) -> str:
        """What to pass as ``base_url`` to an OpenAI client."""
        return f"{self.url}/v1"

    @property
    def port(self) -> int:
        """The bound port (the real one once started with ``port=0``)."""
        return self._port

    @property
    def stats(self) -> dict[str, Any]:
        """A consistent snapshot of the counters."""
        return {**self._counters(), "batches": self.batches.stats}

    # --------------------------------------------------------------- lifecycle

    def start(self) -> ScriptedLM:
        """Bind the port and serve from a daemon thread; a no-op when running."""
        if self._server_thread is not None:
            return self
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", self._port))
        except OSError:
            sock.close()
            raise
        self._port = sock.getsockname()[1]
        self._closing = False
        self._server_thread = LoopThread(f"ScriptedLM:{self._port}")
        try:
            self._server_thread.run(self._serve(sock), timeout=10)
        except BaseException:
            self.stop()
            sock.close()
            raise
        logger.debug("ScriptedLM serving on %s", self.base_url)
        return self

    def stop(self) -> None:
        """Wake hung requests, close the server, then end the loop and join its thread."""
        with self._lock:
            server_thread, self._server_thread = self._server_thread, None
        if server_thread is None:
            return
        try:
            server_thread.run(self._shutdown(), timeout=10)
        finally:
            server_thread.stop()

    def __enter__(self) -> ScriptedLM:
        """Start on entry so ``with ScriptedLM(...) as lm`` is ready to serve."""
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        """Always stop, so a failing test cannot leak the server thread."""
        self.stop()

    async def _serve(self, sock: socket.socket) -> None:
        """Set up the aiohttp app on the server loop."""
        app = web.Application(client_max_size=256 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self._handle_chat)
        app.router.add_get("/v1/models", self._handle_models)
        app.router.add_get("/stats", self._handle_stats)
        app.router.add_post("/reset", self._handle_reset)
        self.batches.routes(app)
        # No access log: a formatted line per request would cap benchmark throughput.
        # Handler cancellation: a client that hangs up stops counting as in flight.
        runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=1.0, handler_cancellation=True
        )
        await runner.setup()
        await web.SockSite(runner, sock, backlog=1024).start()
        self._runner = runner

    async def _shutdown(self) -> None:
        """Release sleepers first so cleanup does not wait out a ``Fault.hang``."""
        self._wake_sleepers()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # ---------------------------------------------------------------- handlers

    async def _handle_chat(self, request: web.Request) -> web.StreamResponse:
        """Record, admit, then answer; counts the final status whatever happened."""
        try:
            body = json.loads(await request.read())
            messages = body["messages"]
            if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
                raise TypeError("messages must be a list of objects")
        except (ValueError, KeyError, TypeError) as exc:
            return self._refuse(wire.error_response(400, f"ScriptedLM: invalid chat request: {exc}"))
        try:
            images = vision.request_images(messages, str(body.get("model") or "scripted"))
        except ValueError as exc:
            return self._refuse(wire.error_response(400, str(exc)))
        scripted, admitted = self._arrive(request, body, messages, images)
        if not admitted:
            headers = wire.retry_after_headers(self._admit_retry_after)
            return self._refuse(wire.error_response(429, "ScriptedLM: too many requests in flight", headers))
        try:
            response, tail = await self._answer(request, scripted)
        finally:
            self._leave()
        # Account before the last bytes leave, so a client never sees its
        # response while the counters still call it in flight.
        self._count_status(response.status)
        if tail is None:  # Fault.cut, or the server is stopping: the connection drops mid-reply
            if request.transport is not None:
                request.transport.close()
            return response
        if not response.prepared:
            await response.prepare(request)
        if tail:
            await response.write(tail)
        await response.write_eof()
        return response

    async def _answer(
        self, request: web.Request, scripted: ScriptedRequest
    ) -> tuple[web.StreamResponse, bytes | None]:
        """Apply latency and any fault, then render the reply minus its final bytes."""
        if scripted.images and scripted.model in self.refuses_images:
            return vision.refusal_response(vision.image_param(scripted.messages)), b""
        try:
            fault = self._match_fault(scripted)
            delay = self._latency_for(scripted)
        except Exception as exc:  # noqa: BLE001 - user callables: report them, don't crash the server
            return script_error(exc), b""
        if fault is not None and fault.kind == "hang":
            delay += fault.seconds
        if delay > 0 and not await self._sleep(delay):
            return wire.error_response(503, "ScriptedLM is shutting down"), b""
        if fault is not None and fault.kind == "http":
            return wire.error_response(fault.status, fault.message), b""
        if fault is not None and fault.kind == "rate_limit":
            hints = dict(fault.headers) if fault.headers is not None else wire.retry_after_headers(fault.seconds)
            return wire.error_response(429, fault.message, hints), b""
        if fault is not None and fault.kind == "malformed":
            return wire.malformed_response(scripted.stream)
        if fault is not None and fault.kind == "error_event":
            return wire.error_event_response(scripted.stream, fault.message)
        if fault is not None and fault.kind in ("empty_choices", "null_content", "tool_call"):
            return await self._rendered(request, scripted, None, has_choice=fault.kind != "empty_choices",
                                        tool_call=fault.message if fault.kind == "tool_call" else None)
        try:
            reply = self._reply(scripted)
        except Exception as exc:  # noqa: BLE001 - a script's failure becomes a loud 500
            return script_error(exc), b""
        cut = fault.after if fault is not None and fault.kind == "cut" else None
        return await self._rendered(request, scripted, reply, has_choice=True, cut_after=cut)

    async def _rendered(
        self, request: web.Request, scripted: ScriptedRequest, content: str | None, *, has_choice: bool,
        tool_call: str | None = None, cut_after: int | None = None,
    ) -> tuple[web.StreamResponse, bytes | None]:
        try:
            extra = self.headers(scripted) if self.headers is not None else {}
        except Exception as exc:  # noqa: BLE001 - a script's failure becomes a loud 500
            return script_error(exc), b""
        cached = self.prefix_cache.hit(scripted.model, scripted.messages) if self.prefix_cache is not None else 0
        return await wire.render(request, scripted.index, scripted.model, scripted.messages, scripted.body,
                                 scripted.stream, content, has_choice=has_choice, headers=extra,
                                 tool_call=tool_call, chunk_chars=self.stream_chars, pace=self._pace,
                                 cut_after=cut_after, cached=cached,
                                 images=sum(i.tokens for i in scripted.images))

    async def _handle_models(self, request: web.Request) -> web.Response:
        """List the scripted model, the ``windows`` models and every model name clients have asked for."""
        names = self._listed_models()
        data = [{"id": name, "object": "model", "created": 0, "owned_by": "rlm-testing"} for name in names]
        for entry in data:
            if entry["id"] in self.windows:
                entry["max_model_len"] = self.windows[entry["id"]]
        return web.json_response({"object": "list", "data": data})

    async def _handle_stats(self, request: web.Request) -> web.Response:
        """Counters over HTTP, for a server running in another process."""
        return web.json_response(self.stats)

    async def _handle_reset(self, request: web.Request) -> web.Response:
        """``reset()`` over HTTP, e.g. between benchmark rounds."""
        self.reset()
        return web.json_response({"ok": True})
