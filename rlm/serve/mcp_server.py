"""``rlm mcp``: an MCP server (the official ``mcp`` SDK) with three tools: ask, estimate, map.

Over stdio (an MCP client starts it) or streamable HTTP. Each tool call is a run of the
shared ``Service``: its trace events become MCP progress notifications, MCP cancellation
stops the run (its trace kept), and refusals are tool errors whose text says what to do.
Tool descriptions say what each costs, with this server's own limits in them.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from .. import __version__
from ..datasets.maps import Admit
from ..errors import RLMError
from ..trace.events import Event
from .config import ServeConfig
from .errors import RequestError, from_result, from_run_error
from .limits import Admission, slot_across
from .mapping import MapCall, map_input, map_key, read_results, summary
from .origins import guard
from .paths import confine
from .progress import Narrator
from .redact import scrubbed_logs
from .runs import Job, Service, hop, off_loop, private_dir

try:
    from mcp.server.mcpserver import Context, MCPServer
    from mcp.server.mcpserver.exceptions import ResourceError, ToolError
except ImportError as exc:  # pragma: no cover - the message is the point
    raise ImportError("rlm mcp needs the MCP SDK: pip install 'rlm[serve]'") from exc

#: Items one map call may cover.
MAX_MAP_ITEMS = 1000


def _limits(config: ServeConfig) -> str:
    budget = config.budget
    said = [f"{name}={value:g}" for name in ("max_cost_usd", "max_calls", "max_tokens", "max_time_s")
            if (value := getattr(budget, name)) is not None]
    return ", ".join(said) or "no per-run limit"


def build(service: Service, admission: Admission, local: bool = True) -> MCPServer[Any]:
    """The MCP server: its tools, bound to ``service``.

    ``local``: the client runs on this machine (stdio), so results may name files here
    (``file://``); over HTTP they name resources (``rlm://``) only.
    """
    config = service.config
    names = ", ".join(r.name for r in config.models) or "rlm/<model>"
    limits = _limits(config)
    roots = ", ".join(config.roots) or "none (this server takes only text)"
    server: MCPServer[Any] = MCPServer(
        "rlm", version=__version__,
        instructions=f"Recursive Language Model tools over documents too large for a prompt. Models: {names}. "
                     f"Paths must lie under: {roots}.")

    @server.tool(description=(
        "Answer a question over a document, a folder of documents, or given text, with a Recursive Language "
        "Model: a root model writes code that reads the context in a sandbox and calls a sub-model on pieces of it. "
        "COSTS model calls on the server's upstream: a few root turns plus roughly one sub-call per chunk of the "
        f"context (call `estimate` first for anything large); each run stops at {limits}. Give `path` (under: "
        f"{roots}) or `text`. Returns the answer, calls, tokens, dollars and the saved trace (a resource)."))
    async def ask(question: str, ctx: Context, path: str | None = None, text: str | None = None,
                  model: str | None = None) -> dict[str, Any]:
        job = await _job(service, question, path, text, model)
        ran = False

        async def work() -> dict[str, Any]:
            nonlocal ran
            ran = True
            return await _ask(service, job, ctx, local)

        try:
            return await _guarded(admission, service, work)
        finally:
            if not ran:
                service.release(job)

    @server.tool(description=(
        "FREE (no model is called): what `ask` with the same arguments is likely to cost: the context's tokens, "
        "a range of sub-calls, tokens and dollars (dollars when the models have known prices)."))
    async def estimate(question: str, path: str | None = None, text: str | None = None,
                       model: str | None = None) -> dict[str, Any]:
        job = await _job(service, question, path, text, model)
        try:
            found = await service.estimate(job.route, job.context, job.query)
        except RequestError as exc:
            raise ToolError(service.redactor(exc.message)) from None
        finally:
            service.release(job)
        return {"context_tokens": found.tokens, "sub_calls": list(found.sub_calls),
                "total_tokens": list(found.total_tokens),
                "cost_usd": list(found.cost_usd) if found.cost_usd is not None else None, "text": str(found)}

    @server.tool(name="map", description=(
        "A resumable map over a folder (each file in it) or a JSONL file (each row). With `question`: one full RLM "
        f"run per item (COSTS up to items x the per-run limit: {limits}). Without: one sub-call per JSONL row, the "
        "prompt made from `prompt_template` ({field} per row field; default {prompt}); COSTS one sub-call per row. "
        f"At most {MAX_MAP_ITEMS} items. Calling it again with the same arguments resumes: only missing or failed "
        "items are sent. Returns counts, cost, the results (JSONL, a resource) and the first answers."))
    async def map_items(path: str, ctx: Context, question: str | None = None, prompt_template: str | None = None,
                  model: str | None = None) -> dict[str, Any]:
        # No slot for the map itself: each completion of a question map takes its own (a prompt map runs none).
        admit = slot_across(admission, asyncio.get_running_loop())
        return await _guarded(None, service, lambda: _map(service, MapCall(path, question, prompt_template, model),
                                                            ctx, admit, local))

    _resources(server, service)
    return server


def _resources(server: MCPServer[Any], service: Service) -> None:
    """The resources tool results name (``rlm://``): a run's trace and a map's answers, from the server's state."""

    @server.resource("rlm://traces/{name}", mime_type="application/x-ndjson", description=(
        "A run's saved trace (JSONL: every step, sub-call and its cost), as `ask` names it in `trace_resource`."))
    async def trace(name: str) -> str:
        data = await asyncio.to_thread(service.read_trace, name)
        if data is None:
            raise ResourceError(f"no trace {name!r}")
        return data.decode("utf-8", "replace")

    @server.resource("rlm://maps/{name}", mime_type="application/x-ndjson", description=(
        "A map's answers (JSONL: item, answer, error per line, in input order), as `map` names it in "
        "`results_resource`."))
    async def map_results(name: str) -> str:
        data = await asyncio.to_thread(read_results, service.config.state, name)
        if data is None:
            raise ResourceError(f"no map results {name!r}")
        return data.decode("utf-8", "replace")


async def _job(service: Service, question: str, path: str | None, text: str | None, model: str | None) -> Job:
    """The run a tool call asks for, checked against the server's configuration (a path opened off the loop)."""
    config = service.config
    try:
        route = service.route(model or (config.models[0].name if config.models else None))
        if not isinstance(question, str) or not question.strip():
            raise RequestError(400, "question must be a non-empty string", param="question")
        if (path is None) == (text is None):
            raise RequestError(400, "give exactly one of path (a file or folder) and text", param="path")
        if text is not None:
            if len(text) > config.max_context_chars:
                raise RequestError(413, f"text holds {len(text):,} characters, over this server's limit of "
                                        f"{config.max_context_chars:,}", param="text")
            return Job(route, question, text)
        document = await off_loop(lambda: confine(str(path), config.roots, config.max_context_chars),
                                  lambda opened: opened.close())
        return Job(route, question, document)
    except RequestError as exc:
        raise ToolError(service.redactor(exc.message)) from None


async def _guarded(admission: Admission | None, service: Service, work: Callable[[], Awaitable[dict[str, Any]]]
                   ) -> dict[str, Any]:
    """A run slot (unless None), then the work; what it raised as a tool error with a message that holds no secret."""
    try:
        async with admission.slot() if admission is not None else contextlib.nullcontext():
            done: dict[str, Any] = service.redactor.value(await work())
            return done
    except RequestError as exc:
        raise ToolError(service.redactor(exc.message)) from None
    except RLMError as exc:
        raise ToolError(service.redactor(from_run_error(exc).message)) from None


class _Reporter:
    """Trace events -> MCP progress notifications, sent from the server's loop.

    Not throttled: the narrator speaks a few lines per root step and one per batch, never
    one per sub-call, so a run of thousands of calls sends tens of notifications.
    """

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.narrator = Narrator()
        self.count = 0
        self.sent = -1.0
        self.queue: asyncio.Queue[Event | None] = asyncio.Queue()

    async def pump(self, total: Callable[[], tuple[float, float | None]] | None = None) -> None:
        while (event := await self.queue.get()) is not None:
            line = self.narrator(event)
            if line:
                self.count += 1
                progress, of = total() if total is not None else (float(self.count), None)
                if progress <= self.sent:  # MCP: each notification's progress must be higher
                    continue
                self.sent = progress
                with contextlib.suppress(Exception):  # a client gone mid-run must not fail the run
                    await self.ctx.report_progress(progress, of, line)


async def _reported(ctx: Context, work: Callable[[Callable[[Event], None]], Awaitable[Any]],
                    total: Callable[[Narrator], tuple[float, float | None]] | None = None) -> Any:
    reporter = _Reporter(ctx)
    pump = asyncio.ensure_future(reporter.pump(None if total is None else lambda: total(reporter.narrator)))
    try:
        return await work(hop(asyncio.get_running_loop(), reporter.queue.put_nowait))
    finally:
        reporter.queue.put_nowait(None)
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(pump, 5)


async def _ask(service: Service, job: Job, ctx: Context, local: bool) -> dict[str, Any]:
    trace = service.trace_file()
    try:
        finished = await _reported(ctx, lambda listener: service.complete(job, listener, trace))
    except RLMError as exc:
        error = from_run_error(exc)
        if trace.path is not None:
            error.message += f" (trace: {trace.path if local else f'rlm://traces/{trace.path.name}'})"
        raise error from None
    result = finished.result
    refused = from_result(result.stopped, result.error)
    if refused is not None:
        raise refused
    answer = {"answer": result.answer, "stopped": result.stopped, "iterations": result.iterations,
              "calls": result.usage.calls, "prompt_tokens": result.usage.prompt_tokens,
              "completion_tokens": result.usage.completion_tokens, "cost_usd": result.usage.cost_usd,
              "seconds": round(result.seconds, 3),
              "trace_resource": f"rlm://traces/{finished.trace.name}" if finished.trace else None}
    if local:  # the client is on this machine: the files themselves, and the page a person opens
        page = await off_loop(lambda: _page(finished.trace))
        answer["trace"] = finished.trace.resolve().as_uri() if finished.trace else None
        answer["trace_html"] = page.resolve().as_uri() if page else None
    return answer


def _page(trace: Path | None) -> Path | None:
    """The trace as one HTML page beside it (``rlm view``), for a person to open."""
    if trace is None:
        return None
    from ..trace.view import write_page

    try:
        return write_page(trace)
    except (OSError, ValueError, RLMError):
        return None


async def _map(service: Service, call: MapCall, ctx: Context, admit: Admit, local: bool) -> dict[str, Any]:
    """Read the map's input off the loop, run it resumably from its checkpoint, write its results."""
    config = service.config
    route = service.route(call.model or (config.models[0].name if config.models else None))
    if call.question is not None and call.template is not None:
        raise RequestError(400, "give question (a run per item) or prompt_template (a sub-call per row), not both")
    # A folder's files are measured one by one: no limit on the folder as a whole.
    document = await off_loop(lambda: confine(call.path, config.roots, 2**62), lambda opened: opened.close())
    try:
        found = await off_loop(lambda: map_input(document, call, MAX_MAP_ITEMS, config.max_context_chars))
        checkpoint = config.state / "maps" / f"{map_key(route, found.key, call.question, call.template)}.sqlite"
        await off_loop(lambda: private_dir(checkpoint.parent))
        question = call.question

        async def work(listener: Callable[[Event], None]) -> Any:
            if question is not None:
                return await service.map_rlm(route, found.items, question, checkpoint, admit, listener)
            return await service.map(route, found.items, checkpoint, listener)

        answers = await _reported(ctx, work, _counter(len(found.items), per_run=question is not None))
    finally:
        document.close()
    return await off_loop(lambda: summary(answers, found.names, checkpoint.with_suffix(".jsonl"), local))


def _counter(total: int, per_run: bool) -> Callable[[Narrator], tuple[float, float | None]]:
    """A map's progress: items done (completions, or sub-calls) of the items."""
    def progress(narrator: Narrator) -> tuple[float, float | None]:
        return float(narrator.items_done if per_run else narrator.calls_done), float(total)

    return progress


async def run_mcp(config: ServeConfig, stop: asyncio.Event, *, http: bool = False,
                  ready: Callable[[str], None] | None = None) -> None:
    """Serve MCP over stdio (until the client closes it, or ``stop``) or streamable HTTP (until ``stop``)."""
    service = Service(config)
    server = build(service, Admission(config.max_runs, config.max_queue, config.queue_timeout_s), local=not http)
    with scrubbed_logs(service.redactor):
        try:
            main = asyncio.ensure_future(_http(server, config, ready) if http else server.run_stdio_async())
            stopped = asyncio.ensure_future(stop.wait())
            await asyncio.wait({main, stopped}, return_when=asyncio.FIRST_COMPLETED)
            for task in (main, stopped):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        finally:
            await service.aclose()


async def _http(server: MCPServer[Any], config: ServeConfig, ready: Callable[[str], None] | None) -> None:
    import uvicorn
    from mcp.server.transport_security import TransportSecuritySettings

    # The SDK's own Host/Origin check knows only its loopback lists: ours (the same lists by default, and the
    # operator's allowed_hosts/allowed_origins) guards the app instead, as it guards rlm serve.
    app = server.streamable_http_app(host=config.host, transport_security=TransportSecuritySettings(
        enable_dns_rebinding_protection=False))
    uv = uvicorn.Server(uvicorn.Config(_checked(app, config), host=config.host, port=config.port,
                                       log_level="warning", lifespan="on"))
    serving = asyncio.ensure_future(uv.serve())
    try:
        while not uv.started and not serving.done():
            await asyncio.sleep(0.02)
        if ready is not None and uv.started:
            port = uv.servers[0].sockets[0].getsockname()[1]
            ready(f"http://{config.host}:{port}/mcp")
        await serving
    finally:
        uv.should_exit = True
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(serving, 10)


def _checked(app: Any, config: ServeConfig) -> Any:
    """An ASGI wrapper: the Host/Origin guard (``rlm.serve.origins``), then the bearer token when one is set."""
    checks = guard(config)
    expected = f"Bearer {config.token}".encode() if config.token else None

    async def guarded(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            headers = dict(scope.get("headers") or [])
            refused = checks.refusal(_header(headers, b"host"), _header(headers, b"origin"))
            if refused is None and expected is not None and \
                    not hmac.compare_digest(headers.get(b"authorization", b""), expected):
                refused = RequestError(401, "a valid bearer token is required")
            if refused is not None:
                extra = [(b"www-authenticate", b"Bearer")] if refused.status == 401 else []
                await send({"type": "http.response.start", "status": refused.status,
                            "headers": [(b"content-type", b"application/json"), *extra]})
                await send({"type": "http.response.body", "body": json.dumps(refused.body()).encode()})
                return
        await app(scope, receive, send)

    return guarded


def _header(headers: dict[bytes, bytes], name: bytes) -> str | None:
    value = headers.get(name)
    return value.decode("latin-1") if value is not None else None
