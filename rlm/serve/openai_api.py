"""``rlm serve``: an OpenAI-compatible HTTP endpoint whose models are RLMs (aiohttp).

``POST /v1/chat/completions`` (whole or streamed), ``GET /v1/models``, ``GET /v1/traces/NAME``
(a run's saved trace), ``GET /health`` and ``GET /metrics`` (Prometheus text). Why aiohttp:
it is already rlm's HTTP stack (the lean client, the scripted server), it cancels a
handler whose client hangs up (which is how a disconnect stops its run), and it keeps
``rlm serve`` free of the MCP extra's dependencies (docs/architecture.md).
"""

from __future__ import annotations

import asyncio
import contextvars
import hmac
import json
import logging
import os
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Middleware

from ..errors import RLMError
from .chat import parse
from .config import ServeConfig
from .errors import RequestError, from_result, from_run_error
from .limits import Admission
from .metrics import Metrics
from .origins import guard
from .redact import scrubbed_logs
from .runs import Service, off_loop
from .streaming import STARTED, stream_completion
from .wire import completion_body

log = logging.getLogger("rlm.serve")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_SANE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
#: Paths anyone may read: a load balancer's health check carries no token.
OPEN_PATHS = frozenset({"/health"})

SERVICE = web.AppKey("service", Service)
ADMISSION = web.AppKey("admission", Admission)
METRICS = web.AppKey("metrics", Metrics)
#: The request id of the request being handled (a context variable: no request key, on any aiohttp).
REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("rlm_serve_request_id", default="")


def make_app(service: Service) -> web.Application:
    """The application: routes, bearer-token check, OpenAI-style errors, one log line per request."""
    config = service.config
    app = web.Application(client_max_size=int(config.max_body_mb * 2**20),
                          middlewares=[_logged, _errors, _guarded(config), _authorized(config)])
    app[SERVICE] = service
    app[ADMISSION] = Admission(config.max_runs, config.max_queue, config.queue_timeout_s)
    app[METRICS] = Metrics()
    app.router.add_post("/v1/chat/completions", _chat)
    app.router.add_get("/v1/models", _models)
    app.router.add_get("/v1/models/{name:.+}", _model)
    app.router.add_get("/v1/traces/{name}", _trace)
    app.router.add_get("/health", _health)
    app.router.add_get("/metrics", _metrics)
    return app


@web.middleware
async def _logged(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A request id for every request (the client's ``x-request-id`` if it sent a sane one) and one log line."""
    given = request.headers.get("x-request-id", "")
    request_id = given if _SANE_ID.match(given) else secrets.token_hex(8)
    REQUEST_ID.set(request_id)
    started = time.perf_counter()
    status = 499  # the client left before an answer
    try:
        response = await handler(request)
        status = response.status
        if not response.prepared:
            response.headers["x-request-id"] = request_id
        return response
    finally:
        request.app[METRICS].request(request.path, status)
        log.info("%s %s %d %.3fs req=%s", request.method, request.path, status, time.perf_counter() - started,
                 request_id)


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every refusal as OpenAI's error JSON: ours, aiohttp's (404, 405, 413), and the unexpected (500).

    Never once a stream has begun: a second response there would corrupt it (the stream
    sends its own error event); the exception is logged and the stream ends as it is.
    """
    STARTED.set(None)
    try:
        return await handler(request)
    except (asyncio.CancelledError, ConnectionResetError):
        raise
    except Exception as exc:
        if isinstance(exc, web.HTTPException) and exc.status < 400:
            raise
        started = STARTED.get()
        if started is not None and started.prepared:
            log.error("error after the stream began in %s %s (req=%s)", request.method, request.path,
                      REQUEST_ID.get(), exc_info=exc)
            return started
        return error_response(_refusal(exc, request), request)


def _refusal(exc: Exception, request: web.Request) -> RequestError:
    if isinstance(exc, RequestError):
        return exc
    if isinstance(exc, web.HTTPException):
        message = {413: f"the request body is over this server's limit of {request.app[SERVICE].config.max_body_mb:g}"
                        " MB", 404: f"no route {request.path}", 405: f"{request.method} is not allowed here"}
        return RequestError(exc.status, message.get(exc.status, exc.reason))
    if isinstance(exc, RLMError):
        return from_run_error(exc)
    log.error("unexpected error in %s %s (req=%s)", request.method, request.path, REQUEST_ID.get(), exc_info=exc)
    return RequestError(500, f"internal server error; the server log has the details (req={REQUEST_ID.get()})")


def _guarded(config: ServeConfig) -> Middleware:
    """Refuse requests addressed to another host name (DNS rebinding) or sent by a page not allowed (CSRF)."""
    checks = guard(config)

    @web.middleware
    async def guarded(request: web.Request, handler: Handler) -> web.StreamResponse:
        refused = checks.refusal(request.headers.get("Host"), request.headers.get("Origin"))
        if refused is not None:
            raise refused
        return await handler(request)

    return guarded


def _authorized(config: ServeConfig) -> Middleware:
    expected = f"Bearer {config.token}".encode() if config.token else None

    @web.middleware
    async def authorized(request: web.Request, handler: Handler) -> web.StreamResponse:
        if expected is not None and request.path not in OPEN_PATHS:
            given = request.headers.get("Authorization", "").encode("utf-8", "replace")
            if not hmac.compare_digest(given, expected):
                raise RequestError(401, "a valid bearer token is required (Authorization: Bearer ...)",
                                   code="invalid_api_key")
        return await handler(request)

    return authorized


def error_response(exc: RequestError, request: web.Request) -> web.Response:
    body = request.app[SERVICE].redactor.value(exc.body())
    headers = {**exc.headers(), "x-request-id": REQUEST_ID.get()}
    if exc.status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return web.json_response(body, status=exc.status, headers=headers)


async def _read_json(request: web.Request) -> Any:
    """The body as JSON; only ``application/json`` is read.

    Why refuse other types: a web page may send ``text/plain`` or a form to any address
    without the browser asking first (a CORS "simple request"); JSON it may not.
    """
    if request.content_type != "application/json":
        raise RequestError(415, f"the body must be JSON sent as Content-Type: application/json, not "
                                f"{request.headers.get('Content-Type') or 'none'!r}", code="unsupported_media_type")
    raw = await request.read()
    try:
        return await off_loop(lambda: json.loads(raw))  # up to max_body_mb: not on the loop
    except (ValueError, UnicodeDecodeError) as exc:
        raise RequestError(400, f"the body is not valid JSON: {exc}") from None


async def _chat(request: web.Request) -> web.StreamResponse:
    service, admission = request.app[SERVICE], request.app[ADMISSION]
    body = await _read_json(request)
    chat = await off_loop(lambda: parse(body, service), lambda parsed: service.release(parsed.job))
    try:
        async with admission.slot():
            if chat.stream:
                return await stream_completion(request, chat, service, request.app[METRICS], REQUEST_ID.get())
            trace = service.trace_file()
            try:
                finished = await service.complete(chat.job, trace=trace)
            except RLMError as exc:
                request.app[METRICS].failed(exc)
                raise _with_trace(from_run_error(exc), trace.path) from None
            request.app[METRICS].finished(finished.result)
            refused = from_result(finished.result.stopped, finished.result.error)
            if refused is not None:
                raise _with_trace(refused, finished.trace)
            body = completion_body(chat, finished, REQUEST_ID.get())
            return web.json_response(service.redactor.value(body), headers={"x-request-id": REQUEST_ID.get()})
    finally:
        service.release(chat.job)  # a no-op once the run released it; else it never ran (queue full, client gone)


def _with_trace(error: RequestError, path: os.PathLike[str] | None) -> RequestError:
    if path is not None:
        error.message += f" (trace: /v1/traces/{os.path.basename(path)})"
    return error


async def _models(request: web.Request) -> web.Response:
    config = request.app[SERVICE].config
    return web.json_response({"object": "list", "data": [_model_entry(r.name, r.root, r.sub) for r in config.models]})


async def _model(request: web.Request) -> web.Response:
    route = request.app[SERVICE].route(request.match_info["name"])
    return web.json_response(_model_entry(route.name, route.root, route.sub))


def _model_entry(name: str, root: str, sub: str) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": 0, "owned_by": "rlm", "rlm": {"root": root, "sub": sub}}


async def _trace(request: web.Request) -> web.StreamResponse:
    """A saved trace (JSONL, scrubbed as it was written)."""
    name = request.match_info["name"]
    data = await asyncio.to_thread(request.app[SERVICE].read_trace, name)
    if data is None:
        raise RequestError(404, f"no trace {name!r}", code="trace_not_found")
    return web.Response(body=data, content_type="application/x-ndjson")


async def _health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def _metrics(request: web.Request) -> web.Response:
    text = request.app[METRICS].render(request.app[ADMISSION])
    return web.Response(text=text, content_type="text/plain", charset="utf-8")


async def serve(service: Service, stop: asyncio.Event, grace_s: float = 30.0,
                ready: Callable[[str], None] | None = None) -> None:
    """Serve until ``stop`` is set, then let requests in flight finish for up to ``grace_s`` (then stop them)."""
    config = service.config
    # Handler cancellation: a client that hangs up cancels its handler, and so stops its run.
    runner = web.AppRunner(make_app(service), access_log=None, handle_signals=False, shutdown_timeout=grace_s,
                           handler_cancellation=True)
    with scrubbed_logs(service.redactor):
        await runner.setup()
        try:
            site = web.TCPSite(runner, config.host, config.port, backlog=1024)
            await site.start()
            if ready is not None:
                ready(_address(runner, config))
            await stop.wait()
        finally:
            await runner.cleanup()
            await service.aclose()


def _address(runner: web.AppRunner, config: ServeConfig) -> str:
    for address in runner.addresses:
        if isinstance(address, tuple):
            host = f"[{address[0]}]" if ":" in address[0] else address[0]
            return f"http://{host}:{address[1]}/v1"
    return f"http://{config.host}:{config.port}/v1"
