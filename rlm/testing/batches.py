"""The OpenAI Batch API of a ``ScriptedLM``: ``/v1/files`` and ``/v1/batches``, answered by the same script.

Why: batch maps must be tested against the real ``openai`` SDK end to end, killed and
resumed, without a provider. A batch goes validating -> in_progress -> finalizing ->
completed (or failed, expired, cancelled) as a real one does, answering one line at a
time with the server's ``latency`` per line, so a test can kill a run while it waits.
The server's fault rules apply per line: a ``Fault.http`` or ``Fault.rate_limit`` line
is written to the error file (or, with ``errors_in_output``, to the output file) with
its status, as OpenAI does.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from rlm.testing import wire
from rlm.testing.faults import Fault
from rlm.testing.script import ScriptedRequest

#: The endpoints a batch line may call, and the one completion window OpenAI takes.
ENDPOINTS = ("/v1/chat/completions",)
WINDOWS = ("24h",)
_ids = itertools.count(1)


def _new_id(prefix: str) -> str:
    return f"{prefix}_scripted{next(_ids):06d}"


@dataclass(frozen=True)
class Script:
    """What a batch needs of its server, handed over by it: how the script answers one line, and its sleep."""

    is_root: Callable[[dict[str, Any]], bool]
    fault: Callable[[ScriptedRequest], Fault | None]
    latency: Callable[[ScriptedRequest], float]
    reply: Callable[[ScriptedRequest], str]
    #: Sleeps without blocking other requests; False once the server is stopping.
    sleep: Callable[[float], Awaitable[bool]]


class BatchService:
    """Files and batches held in memory; one task per batch answers its lines.

    Knobs (set any time): ``validating_s``, seconds a batch stays ``validating``;
    ``expire_after``, a batch expires after answering that many lines (None: never);
    ``errors_in_output``, failed lines go to the output file instead of the error file.
    """

    def __init__(self, script: Script) -> None:
        self._script = script
        self.validating_s = 0.0
        self.expire_after: int | None = None
        self.errors_in_output = False
        self._files: dict[str, tuple[dict[str, Any], bytes]] = {}
        self._batches: dict[str, dict[str, Any]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.reset()

    def reset(self) -> None:
        """Zero the counters (the files and batches stay)."""
        self._counts = {"files_uploaded": 0, "batches_created": 0, "polls": 0, "lines_answered": 0,
                        "downloads": 0, "cancels": 0}

    @property
    def stats(self) -> dict[str, int]:
        return dict(self._counts)

    def batch(self, batch_id: str) -> dict[str, Any]:
        """A batch object as the API returns it (a copy)."""
        copy: dict[str, Any] = json.loads(json.dumps(self._batches[batch_id]))
        return copy

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/files", self._upload)
        app.router.add_get("/v1/files/{id}", self._file)
        app.router.add_get("/v1/files/{id}/content", self._content)
        app.router.add_post("/v1/batches", self._create)
        app.router.add_get("/v1/batches", self._list)
        app.router.add_get("/v1/batches/{id}", self._retrieve)
        app.router.add_post("/v1/batches/{id}/cancel", self._cancel)

    # ------------------------------------------------------------------ files

    async def _upload(self, request: web.Request) -> web.Response:
        form = await request.post()
        upload, purpose = form.get("file"), form.get("purpose")
        if not isinstance(upload, web.FileField) or not isinstance(purpose, str):
            return wire.error_response(400, "ScriptedLM: a file upload needs multipart fields 'file' and 'purpose'")
        self._counts["files_uploaded"] += 1
        return web.json_response(self._store(upload.file.read(), upload.filename, purpose))

    def _store(self, data: bytes, name: str, purpose: str) -> dict[str, Any]:
        file_id = _new_id("file")
        meta = {"id": file_id, "object": "file", "bytes": len(data), "created_at": int(time.time()),
                "filename": name, "purpose": purpose, "status": "processed", "status_details": None}
        self._files[file_id] = (meta, data)
        return meta

    async def _file(self, request: web.Request) -> web.Response:
        found = self._files.get(request.match_info["id"])
        if found is None:
            return wire.error_response(404, f"No such File object: {request.match_info['id']}")
        return web.json_response(found[0])

    async def _content(self, request: web.Request) -> web.Response:
        found = self._files.get(request.match_info["id"])
        if found is None:
            return wire.error_response(404, f"No such File object: {request.match_info['id']}")
        self._counts["downloads"] += 1
        return web.Response(body=found[1], content_type="application/octet-stream")

    # ---------------------------------------------------------------- batches

    async def _create(self, request: web.Request) -> web.Response:
        try:
            body = json.loads(await request.read())
        except ValueError:
            return wire.error_response(400, "ScriptedLM: the batch request is not JSON")
        file_id, endpoint, window = body.get("input_file_id"), body.get("endpoint"), body.get("completion_window")
        if file_id not in self._files:
            return wire.error_response(400, f"ScriptedLM: no input file {file_id!r}; upload it to /v1/files first")
        if endpoint not in ENDPOINTS or window not in WINDOWS:
            return wire.error_response(400, f"ScriptedLM: endpoint must be one of {ENDPOINTS} and "
                                            f"completion_window one of {WINDOWS}; got {endpoint!r}, {window!r}")
        now = int(time.time())
        batch = {"id": _new_id("batch"), "object": "batch", "endpoint": endpoint, "errors": None,
                 "input_file_id": file_id, "completion_window": window, "status": "validating",
                 "output_file_id": None, "error_file_id": None, "created_at": now, "in_progress_at": None,
                 "expires_at": now + 86_400, "finalizing_at": None, "completed_at": None, "failed_at": None,
                 "expired_at": None, "cancelling_at": None, "cancelled_at": None,
                 "request_counts": {"total": 0, "completed": 0, "failed": 0}, "metadata": body.get("metadata")}
        self._batches[batch["id"]] = batch
        self._counts["batches_created"] += 1
        task = asyncio.get_running_loop().create_task(self._process(batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return web.json_response(batch)

    async def _list(self, request: web.Request) -> web.Response:
        limit = int(request.query.get("limit", "20"))
        data = sorted(self._batches.values(), key=lambda b: b["id"], reverse=True)[:limit]
        return web.json_response({"object": "list", "data": data, "has_more": False,
                                  "first_id": data[0]["id"] if data else None,
                                  "last_id": data[-1]["id"] if data else None})

    async def _retrieve(self, request: web.Request) -> web.Response:
        batch = self._batches.get(request.match_info["id"])
        if batch is None:
            return wire.error_response(404, f"No such Batch object: {request.match_info['id']}")
        self._counts["polls"] += 1
        return web.json_response(batch)

    async def _cancel(self, request: web.Request) -> web.Response:
        batch = self._batches.get(request.match_info["id"])
        if batch is None:
            return wire.error_response(404, f"No such Batch object: {request.match_info['id']}")
        self._counts["cancels"] += 1
        if batch["status"] in ("validating", "in_progress"):
            batch["status"], batch["cancelling_at"] = "cancelling", int(time.time())
        return web.json_response(batch)

    # ------------------------------------------------------------- processing

    async def _process(self, batch: dict[str, Any]) -> None:
        """Validate the input file, answer its lines one by one, then write the result files."""
        if self.validating_s and not await self._script.sleep(self.validating_s):
            return
        lines, problem = _requests(self._files[batch["input_file_id"]][1], batch["endpoint"])
        if problem is not None:
            at, message = problem
            batch.update(status="failed", failed_at=int(time.time()), errors={"object": "list", "data": [
                {"code": "invalid_request", "message": message, "param": None, "line": at}]})
            return
        counts = batch["request_counts"]
        counts["total"] = len(lines)
        if batch["status"] == "validating":
            batch.update(status="in_progress", in_progress_at=int(time.time()))
        outputs: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        final = "completed"
        for n, line in enumerate(lines):
            if batch["status"] == "cancelling":
                final = "cancelled"
                break
            if self.expire_after is not None and n >= self.expire_after:
                final = "expired"
                break
            result = await self._answer(n, line)
            if result is None:  # the server is stopping
                return
            ok = result["response"]["status_code"] == 200
            (outputs if ok or self.errors_in_output else errors).append(result)
            counts["completed" if ok else "failed"] += 1
            self._counts["lines_answered"] += 1
        batch.update(status="finalizing", finalizing_at=int(time.time()))
        for key, found in (("output_file_id", outputs), ("error_file_id", errors)):
            if found:
                data = "".join(json.dumps(x) + "\n" for x in found).encode()
                batch[key] = self._store(data, f"{batch['id']}_{key[:-8]}.jsonl", "batch_output")["id"]
        batch.update(status=final, **{f"{final}_at": int(time.time())})

    async def _answer(self, n: int, line: dict[str, Any]) -> dict[str, Any] | None:
        """One line's result, decided by the server's faults, latency and script as for a chat request."""
        script, body = self._script, line["body"]
        messages = body["messages"]
        prompt = next((wire.message_text(m.get("content")) for m in reversed(messages) if m.get("role") == "user"), "")
        model = str(body.get("model") or "scripted")
        role = "root" if script.is_root(body) else "sub"
        scripted = ScriptedRequest(n, body, model, messages, prompt, role, False, {}, "/v1/batches")
        status, reply = 200, None
        try:
            fault = script.fault(scripted)
            delay = script.latency(scripted)
            if delay > 0 and not await script.sleep(delay):
                return None
            if fault is not None:
                status = fault.status if fault.status != 200 else 500
                reply = {"error": {"message": fault.message, "type": "server_error", "param": None, "code": None}}
            else:
                content, finish = wire.cap_reply(script.reply(scripted), body)
                reply = json.loads(wire.completion(f"chatcmpl-batch-{n}", model, messages, content,
                                                   finish_reason=finish))
        except Exception as exc:  # noqa: BLE001 - a script's failure is that line's 500, not a dead batch
            status = 500
            reply = {"error": {"message": f"ScriptedLM script raised {type(exc).__name__}: {exc}",
                               "type": "server_error", "param": None, "code": None}}
        return {"id": _new_id("batch_req"), "custom_id": line["custom_id"],
                "response": {"status_code": status, "request_id": f"req-{n}", "body": reply}, "error": None}


def _requests(data: bytes, endpoint: str) -> tuple[list[dict[str, Any]], tuple[int, str] | None]:
    """The input file's request lines, or the first problem (line number, message) as OpenAI reports it."""
    lines: list[dict[str, Any]] = []
    seen: set[str] = set()
    for n, raw in enumerate(data.decode("utf-8", "replace").splitlines(), 1):
        if not raw.strip():
            continue
        try:
            line = json.loads(raw)
        except ValueError:
            return [], (n, "the line is not JSON")
        if not isinstance(line, dict) or not isinstance(line.get("custom_id"), str):
            return [], (n, "each line needs a custom_id string")
        if line["custom_id"] in seen:
            return [], (n, f"duplicate custom_id {line['custom_id']!r}")
        if line.get("method") != "POST" or line.get("url") != endpoint:
            return [], (n, f"method must be POST and url {endpoint!r}, as the batch's endpoint")
        body = line.get("body")
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            return [], (n, "body must be a chat request with messages")
        seen.add(line["custom_id"])
        lines.append(line)
    return lines, None if lines else (0, "the input file has no requests")
