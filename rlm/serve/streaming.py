"""``stream=true``: the run's progress as reasoning deltas while it works, then the answer.

Server-sent events as OpenAI sends them: a first chunk with the role, progress lines as
``delta.reasoning_content``, the answer as ``delta.content``, a chunk with the
``finish_reason``, the usage chunk when ``stream_options.include_usage`` asks, and
``data: [DONE]``. What can be refused is refused before the stream begins, with a real
HTTP status (the model, the context: ``Service.prepare``); a failure after it began is an
``error`` event then ``[DONE]`` (the openai SDK raises it), never a second response. A
comment line every ``HEARTBEAT_S`` keeps proxies from closing a quiet stream; a client
that hangs up stops the run (its trace so far is kept).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
from typing import TYPE_CHECKING, Any

from aiohttp import web

from ..errors import RLMError
from ..trace.events import Event
from .errors import RequestError, from_result, from_run_error
from .progress import Narrator
from .runs import Finished, Service, hop
from .wire import answer_text, chunk, extension, sse, usage

if TYPE_CHECKING:
    from .chat import ChatRequest
    from .metrics import Metrics

HEARTBEAT_S = 15.0
log = logging.getLogger("rlm.serve")
#: The stream response of the request being handled, once made: after it is prepared, nobody else answers.
STARTED: contextvars.ContextVar[web.StreamResponse | None] = contextvars.ContextVar("rlm_serve_stream",
                                                                                     default=None)


async def stream_completion(request: web.Request, chat: ChatRequest, service: Service, metrics: Metrics,
                            request_id: str) -> web.StreamResponse:
    """Run ``chat``'s job, streaming as it goes; what fails once the stream began goes in-stream."""
    prepared = await service.prepare(chat.job)  # a RequestError here is still an HTTP status
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                                           "X-Accel-Buffering": "no", "x-request-id": request_id})
    STARTED.set(response)
    redact = service.redactor.value

    async def send(data: dict[str, Any]) -> None:
        await response.write(sse(redact(data)))

    events: asyncio.Queue[Event] = asyncio.Queue()
    trace = service.trace_file()
    run = asyncio.ensure_future(service.run(prepared, hop(asyncio.get_running_loop(), events.put_nowait), trace))
    try:
        await response.prepare(request)
        await send(chunk(chat, request_id, {"role": "assistant", "content": ""}))
        await _progress(run, events, Narrator(), lambda line: send(
            chunk(chat, request_id, {"reasoning_content": line + "\n"})), response)
        try:
            finished = run.result()
        except RLMError as exc:
            metrics.failed(exc)
            await send(from_run_error(exc).body())
        except RequestError as exc:
            await send(exc.body())
        except Exception:
            log.exception("the run of a stream failed (req=%s)", request_id)
            await send(RequestError(500, f"internal server error; the server log has the details (req={request_id})"
                                    ).body())
        else:
            metrics.finished(finished.result)
            await _answer(chat, request_id, finished, send)
        await response.write(sse("[DONE]"))
        await response.write_eof()
    finally:
        if not run.done():  # the client left (its handler was cancelled, or a write failed): stop the run
            run.cancel()
            with contextlib.suppress(BaseException):
                await run
        service.release(chat.job, trace)  # a run cancelled before it began never reached its own release
    return response


async def _progress(run: asyncio.Future[Finished], events: asyncio.Queue[Event], narrator: Narrator,
                    say: Any, response: web.StreamResponse) -> None:
    """Send a line per narrated event until the run ends, and a heartbeat comment when it is quiet."""
    while True:
        getter: asyncio.Future[Any] = asyncio.ensure_future(events.get())
        waited: set[asyncio.Future[Any]] = {run, getter}
        try:
            await asyncio.wait(waited, timeout=HEARTBEAT_S, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not getter.done():
                getter.cancel()  # a get cancelled before it resumes leaves its event in the queue
        if getter.done() and not getter.cancelled():
            line = narrator(getter.result())
            if line:
                await say(line)
            continue
        if run.done():
            break
        await response.write(b": keep-alive\n\n")
    while not events.empty():
        line = narrator(events.get_nowait())
        if line:
            await say(line)


async def _answer(chat: ChatRequest, request_id: str, finished: Finished, send: Any) -> None:
    result = finished.result
    refused = from_result(result.stopped, result.error)
    if refused is not None:
        await send(refused.body())
        return
    await send(chunk(chat, request_id, {"content": answer_text(result)}))
    finish = "length" if result.stopped == "cut_off" else "stop"
    await send(chunk(chat, request_id, finish=finish, rlm=extension(finished)))
    if chat.include_usage:
        await send(chunk(chat, request_id, usage=usage(result)))
