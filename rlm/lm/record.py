"""What a call's trace events keep of its content: enough to inspect it, and to replay its reply.

Prompts can be huge (a 50,000-token chunk each), so a call keeps a preview of its
prompt (head and tail) and a hash of all of it, which is what a replayed run matches
on. Replies are short as a rule, and a fork replays them, so they are kept whole up to
``REPLY_CHARS``; a longer one is clipped and marked, and cannot be replayed.
"""

from __future__ import annotations

import hashlib
from typing import Any

from .types import Message

#: Characters of a prompt a call's events keep (head and tail).
PROMPT_CHARS = 2_000
#: Characters of a reply kept whole; beyond, head and tail and ``reply_cut``.
REPLY_CHARS = 100_000


def _text(message: Message) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def prompt_hash(messages: list[Message]) -> str:
    """A short, stable hash of a request's messages (roles, text, images): what a replay looks calls up by."""
    digest = hashlib.blake2b(digest_size=12)
    for message in messages:
        digest.update(str(message.get("role", "")).encode())
        digest.update(b"\x00")
        digest.update(_text(message).encode("utf-8", "surrogatepass"))
        for url in _image_urls(message):
            digest.update(b"\x02")
            digest.update(url.encode("ascii", "replace"))
        digest.update(b"\x01")
    return digest.hexdigest()


def _image_urls(message: Message) -> list[str]:
    content = message.get("content")
    if not isinstance(content, list):
        return []
    return [str((p.get("image_url") or {}).get("url", "")) for p in content
            if isinstance(p, dict) and p.get("type") == "image_url"]


def clipped(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]}\n... [{len(text) - 2 * half:,} characters not kept] ...\n{text[-half:]}"


def prompt_fields(messages: list[Message]) -> dict[str, Any]:
    """``call.start`` data: the last message's preview (a sub-call's prompt, a root call's latest turn) and the hash."""
    last = _text(messages[-1]) if messages else ""
    return {"prompt": clipped(last, PROMPT_CHARS), "prompt_hash": prompt_hash(messages)}


def reply_fields(text: str) -> dict[str, Any]:
    """``call.end`` data: the reply, whole when it is at most ``REPLY_CHARS``."""
    if len(text) <= REPLY_CHARS:
        return {"reply": text}
    return {"reply": clipped(text, REPLY_CHARS), "reply_cut": True}
