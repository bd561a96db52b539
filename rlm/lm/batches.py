"""The provider's Batch API (``/v1/files`` and ``/v1/batches``), through the openai SDK.

Why: work that can wait costs half (``pricing.BATCH_DISCOUNT``). A batch is one uploaded
JSONL file of chat requests, each with a ``custom_id``; within its completion window the
provider writes the answers to an output file, and failed lines to an error file. This
module knows only that wire format; ``rlm.datasets.provider_batch`` keeps the checkpoint and the trace.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

from ..errors import LMError, LMResponseError
from .endpoint import resolve_endpoint, wire_options
from .failures import translate_error
from .stream import parse_completion
from .types import Completion, Message

#: The endpoint every line of an rlm batch calls.
CHAT_PATH = "/v1/chat/completions"
#: Statuses after which a batch changes no more.
FINISHED = frozenset({"completed", "failed", "expired", "cancelled"})
#: How many recent batches ``find`` looks through for one made from a given file.
_FIND_LIMIT = 100


@dataclass(frozen=True, slots=True)
class BatchStatus:
    """One poll of a batch: its status, the provider's request counts, and its result files."""

    id: str
    status: str
    completed: int
    failed: int
    total: int
    output_file_id: str | None
    error_file_id: str | None
    #: The batch's own errors (a file that failed validation), joined; "" when none.
    errors: str = ""
    #: When the provider created the batch (Unix seconds).
    created_at: float = 0.0

    @property
    def finished(self) -> bool:
        return self.status in FINISHED


@dataclass(frozen=True, slots=True)
class LineResult:
    """One answered line of an output or error file: a completion, or the error in its place."""

    custom_id: str
    completion: Completion | None
    error: LMError | None


def request_line(custom_id: str, model: str, messages: list[Message], options: dict[str, Any],
                 base_url: str | None) -> bytes:
    """One line of a batch input file: the same body a single call would send."""
    body = {"model": model, "messages": messages, **wire_options(options, base_url)}
    line = {"custom_id": custom_id, "method": "POST", "url": CHAT_PATH, "body": body}
    return json.dumps(line, ensure_ascii=False).encode("utf-8", "surrogatepass") + b"\n"


def parse_line(line: dict[str, Any], model: str) -> LineResult:
    """A line of an output or error file; a non-200 status or an ``error`` is that item's ``LMResponseError``."""
    custom_id = str(line.get("custom_id"))
    response: dict[str, Any] = line["response"] if isinstance(line.get("response"), dict) else {}
    status, body = response.get("status_code"), response.get("body")
    error = line.get("error")
    if error or status != 200:
        detail = error if error else body.get("error", body) if isinstance(body, dict) else body
        message = detail.get("message", detail) if isinstance(detail, dict) else detail
        return LineResult(custom_id, None, LMResponseError(
            f"batch request {custom_id} for {model} failed (HTTP {status}): {message}",
            status=status if isinstance(status, int) else None, body=body if body is not None else error, model=model))
    try:
        return LineResult(custom_id, parse_completion(json.dumps(body).encode(), model, 0.0), None)
    except LMResponseError as exc:
        return LineResult(custom_id, None, exc)


def _status(batch: Any) -> BatchStatus:
    counts = batch.request_counts
    errors = batch.errors.data if batch.errors is not None and batch.errors.data else []
    return BatchStatus(
        id=batch.id, status=batch.status, completed=counts.completed if counts else 0,
        failed=counts.failed if counts else 0, total=counts.total if counts else 0,
        output_file_id=batch.output_file_id, error_file_id=batch.error_file_id,
        errors="; ".join(f"line {e.line}: {e.message}" if e.line is not None else str(e.message) for e in errors),
        created_at=float(batch.created_at or 0),
    )


class BatchClient:
    """Upload, create, poll and download batches at one OpenAI-compatible endpoint.

    The SDK retries these few control requests itself (``max_retries``): unlike chat
    calls they are cheap, idempotent reads or one-off writes that rlm records at once.

    Example::

        client = BatchClient(base_url="https://api.openai.com/v1")
        file_id = await client.upload(lines, "map.jsonl")
        status = await client.create(file_id, "24h", {"rlm": "map"})
    """

    def __init__(self, *, api_key: str | None, base_url: str | None, timeout: float = 120.0,
                 max_retries: int = 3) -> None:
        import openai  # here, not at import: `import rlm` stays light

        key, url = resolve_endpoint(api_key, base_url)
        self.base_url = url
        self._client = openai.AsyncOpenAI(api_key=key, base_url=url, timeout=timeout, max_retries=max_retries)
        # What the SDK raises (a bad JSON body passes through as ValueError); anything else is a bug, not the endpoint.
        self._errors: tuple[type[Exception], ...] = (openai.OpenAIError, ValueError)

    async def upload(self, data: bytes, name: str) -> str:
        """Upload a batch input file; its id."""
        uploaded = await self._call("upload the batch file", self._client.files.create(
            file=(name, data, "application/jsonl"), purpose="batch"))
        return str(uploaded.id)

    async def create(self, file_id: str, window: str, metadata: dict[str, str]) -> BatchStatus:
        """Start a batch over an uploaded file."""
        return _status(await self._call("create the batch", self._client.batches.create(
            input_file_id=file_id, endpoint=CHAT_PATH, completion_window=window,  # type: ignore[arg-type]
            metadata=metadata)))

    async def find(self, file_id: str) -> BatchStatus | None:
        """A batch already made from ``file_id``: a run killed between creating it and recording it."""
        page = await self._call("list batches", self._client.batches.list(limit=_FIND_LIMIT))
        return next((_status(b) for b in page.data if b.input_file_id == file_id), None)

    async def status(self, batch_id: str) -> BatchStatus:
        """Poll one batch."""
        return _status(await self._call(f"poll batch {batch_id}", self._client.batches.retrieve(batch_id)))

    async def lines(self, file_id: str) -> list[dict[str, Any]]:
        """The JSON lines of an output or error file; a line that is not JSON is skipped."""
        content = await self._call(f"download batch file {file_id}", self._client.files.content(file_id))
        out = []
        for raw in content.text.splitlines():
            try:
                line = json.loads(raw)
            except ValueError:
                continue
            if isinstance(line, dict):
                out.append(line)
        return out

    async def aclose(self) -> None:
        await self._client.close()

    async def _call(self, doing: str, request: Awaitable[Any]) -> Any:
        try:
            return await request
        except self._errors as exc:
            raise self._error(exc, doing) from exc

    def _error(self, exc: Exception, doing: str) -> LMError:
        """The typed error, saying so when the endpoint has no Batch API at all (vLLM, llama.cpp, Ollama)."""
        error = translate_error(exc, "batch", self.base_url)
        if isinstance(error, LMResponseError) and error.status in (404, 405):
            return LMResponseError(
                f"could not {doing}: the endpoint at {self.base_url} has no Batch API (HTTP {error.status}); "
                "use via='calls' there", status=error.status, body=error.body, model="batch")
        error.args = (f"could not {doing}: {error}",)
        return error
