"""Images in requests to ``ScriptedLM``: read as a vision endpoint reads them, refused as a text model refuses them.

A request's ``image_url`` parts are decoded and their headers read (``rlm.lm.images``),
so a script sees each image's format, size and hash (``ScriptedRequest.images``) and
usage counts their tokens by OpenAI's rule. A malformed image is answered as OpenAI
answers one; a model scripted as taking no images answers as OpenAI's text models do.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from rlm.lm.images import ImageError, header
from rlm.lm.vision import image_tokens

#: What OpenAI answers a text-only model sent an image (HTTP 400, ``invalid_request_error``).
REFUSAL = "Invalid content type. image_url is only supported by certain models."
#: What OpenAI answers an image it cannot read (HTTP 400).
UNREADABLE = ("You uploaded an unsupported image. Please make sure your image is below 20 MB in size and is of one "
              "the following formats: ['png', 'jpeg', 'gif', 'webp'].")
_DATA_URL = re.compile(r"data:image/[a-z]+;base64,", re.IGNORECASE)


@dataclass(frozen=True)
class ScriptedImage:
    """One image of a request, as its header says: what a script may look at (never its pixels)."""

    format: str
    width: int
    height: int
    size: int
    sha256: str
    detail: str | None
    #: Its prompt tokens, as OpenAI counts them for the request's model.
    tokens: int


def _image_parts(messages: list[dict[str, Any]]) -> list[tuple[str, Any]]:
    """``(param, part)`` for each ``image_url`` part, ``param`` as OpenAI names it in an error."""
    return [(f"messages.[{m}].content.[{p}].type", part)
            for m, message in enumerate(messages) if isinstance(message.get("content"), list)
            for p, part in enumerate(message["content"]) if isinstance(part, dict) and part.get("type") == "image_url"]


def request_images(messages: list[dict[str, Any]], model: str) -> tuple[ScriptedImage, ...]:
    """The request's images, in order; ``ValueError`` (OpenAI's wording) for one that cannot be read."""
    return tuple(_image(part.get("image_url"), model) for _, part in _image_parts(messages))


def image_param(messages: list[dict[str, Any]]) -> str | None:
    """Where the first image is, as OpenAI's error says (``messages.[0].content.[1].type``)."""
    parts = _image_parts(messages)
    return parts[0][0] if parts else None


def _image(spec: Any, model: str) -> ScriptedImage:
    url = spec.get("url") if isinstance(spec, dict) else None
    if not isinstance(url, str):
        raise ValueError("Invalid 'image_url': expected an object with a 'url' string.")
    prefix = _DATA_URL.match(url)
    if prefix is None:
        raise ValueError("ScriptedLM fetches no image URLs (it runs offline); send a base64 data: URL.")
    try:
        data = base64.b64decode(url[prefix.end():], validate=True)
        fmt, width, height = header(data)
    except (binascii.Error, ValueError, ImageError):
        raise ValueError(UNREADABLE) from None
    detail = spec.get("detail")
    detail = detail if isinstance(detail, str) else None
    return ScriptedImage(fmt, width, height, len(data), hashlib.sha256(data).hexdigest(), detail,
                         image_tokens(width, height, model=model, detail=detail))


def refusal_response(param: str | None) -> web.Response:
    """OpenAI's 400 for an image sent to a model that takes none."""
    error = {"message": REFUSAL, "type": "invalid_request_error", "param": param, "code": None}
    return web.Response(status=400, body=json.dumps({"error": error}).encode(), content_type="application/json")


def describe(images: tuple[ScriptedImage, ...]) -> str:
    """An honest answer about images from a model that cannot see them: what their headers say, nothing more."""
    lines = [f"Image {k + 1}: {i.format.upper()}, {i.width}x{i.height} pixels, {i.size:,} bytes."
             for k, i in enumerate(images)]
    return ("I am a simulated model: I cannot see what the images show. What their headers say:\n"
            + "\n".join(lines))
