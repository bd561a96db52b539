"""A chat completion request, read as an RLM job: the query, the context, the answer's shape.

- The query is the last user message (its last text part); system and developer
  messages go before it as instructions.
- The context is the rest of the conversation (earlier turns as a transcript, the last
  message's other text parts), the files sent as ``file`` content parts, or a document
  path under the server's allowed roots: ``extra_body={"rlm": {"path": "reports/q3.pdf"}}``.
  A path is the whole context; it does not combine with conversation content.
- ``response_format`` (``json_object`` or ``json_schema``) becomes ``schema=``.

Anything else a request may carry is checked here, so a bad request is refused before
a run starts, with the ``param`` it is about. Generation options (``temperature``,
``max_tokens``, ``seed`` ...) and fields this server does not know are accepted and not
applied: the server's configuration decides how models are called.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import Any

from .config import ServeConfig
from .errors import RequestError
from .paths import confine
from .runs import Job, Service
from .schemas import from_response_format
from .uploads import Uploads

ROLES = ("system", "developer", "user", "assistant", "tool", "function")
#: What a request's ``rlm`` object (``extra_body``) may hold.
RLM_OPTIONS = ("path",)
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._ -]")


@dataclass
class ChatRequest:
    """What the endpoint needs from a request besides the job: how to answer it."""

    job: Job
    model: str
    stream: bool
    include_usage: bool


def parse(body: object, service: Service) -> ChatRequest:
    """Read a ``/v1/chat/completions`` body, or raise ``RequestError`` saying what is wrong.

    Blocking (a path's directory is walked): call it off the event loop. It writes
    nothing: uploaded files are written when the run is admitted (``rlm.serve.uploads``).
    """
    if not isinstance(body, dict):
        raise RequestError(400, "the request body must be a JSON object")
    route = service.route(body.get("model"))
    _check_options(body)
    stream = body.get("stream") or False
    if not isinstance(stream, bool):
        raise RequestError(400, "stream must be true or false", param="stream")
    stream_options = body.get("stream_options") or {}
    if not isinstance(stream_options, dict):
        raise RequestError(400, "stream_options must be an object", param="stream_options")
    schema = from_response_format(body.get("response_format"))
    options = body.get("rlm") or {}
    if not isinstance(options, dict) or set(options) - set(RLM_OPTIONS):
        raise RequestError(400, f"the rlm object (extra_body) may hold only {', '.join(RLM_OPTIONS)}", param="rlm")
    instructions, query, texts, files = _read_messages(body.get("messages"))
    config = service.config
    if instructions:
        query = f"{instructions}\n\n{query}"
    job = Job(route, query, schema=schema)
    if "path" in options:
        if texts or files:
            raise RequestError(400, "a document path is the whole context: send it with one user message (the "
                                    "question) and no other conversation content or files", param="rlm.path")
        job.context = confine(options["path"], config.roots, _max_bytes(config))
    else:
        job.context = Uploads(files, texts) if files else "\n\n".join(texts)
        size = job.context.size if isinstance(job.context, Uploads) else len(job.context)
        if size > config.max_context_chars:
            said = "bytes of files and characters of text" if files else "characters"
            raise RequestError(413, f"the context holds {size:,} {said}, over this server's limit of "
                                    f"{config.max_context_chars:,}", param="messages", code="context_too_large")
    return ChatRequest(job, body["model"], stream, bool(stream_options.get("include_usage")))


def _max_bytes(config: ServeConfig) -> int:
    """Documents are measured in bytes; a character of text is at least one."""
    return config.max_context_chars


def _check_options(body: dict[str, Any]) -> None:
    n = body.get("n")
    if n not in (None, 1):
        raise RequestError(400, "n must be 1: a completion here is one RLM run", param="n")
    if body.get("tools") or body.get("functions"):
        raise RequestError(400, "tools are not supported: the RLM answers from its context with its own REPL",
                           param="tools")
    if body.get("audio") is not None:
        raise RequestError(400, "audio output is not supported", param="audio")


def _read_messages(messages: object) -> tuple[str, str, list[str], list[tuple[str, bytes]]]:
    """(instructions, query, context texts, files) of a conversation."""
    if not isinstance(messages, list) or not messages:
        raise RequestError(400, "messages must be a non-empty list of message objects", param="messages")
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            raise RequestError(400, f"messages[{i}] must be an object with a role among {', '.join(ROLES)}",
                               param=f"messages[{i}]")
    last = messages[-1]
    if last["role"] != "user":
        raise RequestError(400, "the last message must be the user's question", param=f"messages[{len(messages) - 1}]")
    instructions: list[str] = []
    transcript: list[str] = []
    files: list[tuple[str, bytes]] = []
    for i, message in enumerate(messages[:-1]):
        texts, found = _parts(message.get("content"), f"messages[{i}].content")
        files += found
        text = "\n".join(texts)
        if message["role"] in ("system", "developer"):
            instructions.append(text)
        elif text:
            transcript.append(f"[{message['role']}]\n{text}")
    texts, found = _parts(last.get("content"), f"messages[{len(messages) - 1}].content")
    files += found
    if not texts or not texts[-1].strip():
        raise RequestError(400, "the last user message has no text: it is the question",
                           param=f"messages[{len(messages) - 1}].content")
    query = texts[-1]
    extra = [t for t in texts[:-1] if t.strip()]
    context = ["\n\n".join(transcript)] if transcript else []
    return "\n\n".join(t for t in instructions if t.strip()), query, context + extra, files


def _parts(content: object, where: str) -> tuple[list[str], list[tuple[str, bytes]]]:
    """A message's text parts and files (name, bytes)."""
    if content is None:
        return [], []
    if isinstance(content, str):
        return [content], []
    if not isinstance(content, list):
        raise RequestError(400, f"{where} must be a string or a list of content parts", param=where)
    texts: list[str] = []
    files: list[tuple[str, bytes]] = []
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif kind == "file" and isinstance(part.get("file"), dict):
            files.append(_file(part["file"], f"{where}[{j}].file", len(files)))
        elif kind in ("image_url", "input_audio"):
            raise RequestError(400, f"{where}[{j}]: {kind} parts are not supported; send documents as file parts "
                                    "or a path", param=f"{where}[{j}]")
        else:
            raise RequestError(400, f"{where}[{j}] is not a text or file content part", param=f"{where}[{j}]")
    return texts, files


def _file(spec: dict[str, Any], where: str, n: int) -> tuple[str, bytes]:
    if spec.get("file_id"):
        raise RequestError(400, "file_id is not supported (this server has no files API); send file_data",
                           param=f"{where}.file_id")
    data = spec.get("file_data")
    if not isinstance(data, str) or not data:
        raise RequestError(400, "a file part needs file_data: base64, or a data: URL", param=f"{where}.file_data")
    if data.startswith("data:"):
        header, _, data = data.partition(",")
        if not header.endswith(";base64"):
            raise RequestError(400, "a file's data: URL must be base64", param=f"{where}.file_data")
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise RequestError(400, "file_data is not valid base64", param=f"{where}.file_data") from None
    name = _UNSAFE_NAME.sub("_", str(spec.get("filename") or f"file-{n + 1}.txt")).strip(" .")[:120]
    return name or f"file-{n + 1}.txt", raw
