"""Images in a sub-call, host side: what they cost, how they go on the wire, what the trace keeps.

An image goes to an OpenAI-compatible endpoint as an ``image_url`` content part holding a
base64 ``data:`` URL. What it costs is read from its header (``rlm.lm.images``) by the
rule OpenAI publishes for its models (``image_tokens``), so a budget can reserve it before
the call; the endpoint's reported usage settles it afterwards. The cache and the trace
know an image by the SHA-256 of its bytes, never by its base64.

Thumbnails: the host never decodes an image. A call's trace event carries, for an image
of at most ``THUMB_BYTES``, the image itself as a data URL, which the view's browser
scales down (browsers decode untrusted images in a hardened, sandboxed process every
day); each distinct image is carried once per run, and at most ``THUMBS_TOTAL`` bytes in
all. Why not make small thumbnails where root code runs: that needs an image library in
the kernel, and the thumbnail would be the kernel's word, where this way the record
shows exactly the bytes the model was sent.
"""

from __future__ import annotations

import base64
import hashlib
import math
import re
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import ImagesRefused, LMResponseError
from .images import MIME, check, header
from .types import Completion

#: Images up to this size travel in the trace whole, as their own thumbnail.
THUMB_BYTES = 192 * 2**10
#: Bytes of thumbnails one run's trace carries at most.
THUMBS_TOTAL = 3 * 2**20
#: Hex digits of an image's SHA-256 shown in the trace and the view.
SHORT_HASH = 16

#: OpenAI's published image-token rules, first match wins: ("tile", base, per 512-px tile) or
#: ("patch", multiplier of 32-px patches). A model matched by none counts as GPT-4o does.
_RULES: tuple[tuple[re.Pattern[str], tuple[str, float, float]], ...] = tuple(
    (re.compile(pattern), rule) for pattern, rule in (
        (r"gpt-4o-mini", ("tile", 2833, 5667)),
        (r"(gpt-4\.1|gpt-5[.\d]*)-nano", ("patch", 2.46, 0)),
        (r"(gpt-4\.1|gpt-5[.\d]*)-mini", ("patch", 1.62, 0)),
        (r"o4-mini", ("patch", 1.72, 0)),
        (r"gpt-5", ("tile", 70, 140)),
        (r"o[13]\b", ("tile", 75, 150)),
        (r"computer-use", ("tile", 65, 129)),
    )
)
_DEFAULT_RULE = ("tile", 85.0, 170.0)
_PATCH, _PATCHES = 32, 1536


def image_tokens(width: int, height: int, *, model: str | None = None, detail: str | None = None) -> int:
    """Prompt tokens an image of ``width`` x ``height`` pixels costs ``model``, by OpenAI's published rule.

    Tile models (GPT-4o, GPT-4.1, GPT-5, o1/o3): ``detail="low"`` is the base cost; otherwise
    the image is fitted into 2048x2048, its short side brought down to 768 px, and each
    512-px tile costs its rate on top of the base. Patch models (GPT-4.1/5 mini and nano,
    o4-mini): 32-px patches, at most 1,536 (a bigger image is scaled down to fit), times
    the model's multiplier. ``detail`` None or ``"auto"`` counts as ``"high"``: a reservation
    must not be short. Other endpoints count their own way; their reported usage settles it.

    Example: ``image_tokens(1024, 1024, model="gpt-4o")`` is 765.
    """
    kind, a, b = _rule(model)
    if kind == "patch":
        return math.ceil(_patches(width, height) * a)
    if detail == "low":
        return int(a)
    w, h = float(width), float(height)
    if max(w, h) > 2048:
        w, h = w * 2048 / max(w, h), h * 2048 / max(w, h)
    if min(w, h) > 768:
        w, h = w * 768 / min(w, h), h * 768 / min(w, h)
    return int(a + b * math.ceil(w / 512) * math.ceil(h / 512))


def _rule(model: str | None) -> tuple[str, float, float]:
    name = (model or "").rsplit("/", 1)[-1].lower()
    return next((rule for pattern, rule in _RULES if pattern.match(name)), _DEFAULT_RULE)


def _patches(width: int, height: int) -> int:
    """32-px patches covering the image, scaled down (as OpenAI does) to at most 1,536."""
    count = math.ceil(width / _PATCH) * math.ceil(height / _PATCH)
    if count <= _PATCHES:
        return count
    shrink = math.sqrt(_PATCHES * _PATCH**2 / (width * height))
    w, h = width * shrink / _PATCH, height * shrink / _PATCH
    shrink *= min(math.floor(w) / w, math.floor(h) / h)
    return min(_PATCHES, math.ceil(int(width * shrink) / _PATCH) * math.ceil(int(height * shrink) / _PATCH))


@dataclass(frozen=True, slots=True)
class Image:
    """One checked image: its bytes, format and size from its header, and the SHA-256 of its bytes."""

    data: bytes
    format: str
    width: int
    height: int
    sha256: str

    @property
    def data_url(self) -> str:
        return f"data:{MIME[self.format]};base64,{base64.b64encode(self.data).decode('ascii')}"

    def meta(self, model: str, detail: str | None) -> dict[str, Any]:
        """What the trace keeps of it: never its bytes (see ``Thumbs`` for the one exception)."""
        return {"format": self.format, "width": self.width, "height": self.height, "bytes": len(self.data),
                "sha256": self.sha256[:SHORT_HASH],
                "tokens": image_tokens(self.width, self.height, model=model, detail=detail)}


def inspect(data: bytes) -> Image:
    """An ``Image`` from bytes that passed ``rlm.lm.images.as_bytes``; ``ImageError`` if the header is bad."""
    fmt, width, height = header(data)
    return Image(data, fmt, width, height, hashlib.sha256(data).hexdigest())


def checked(raw: Any, what: str = "llm_query(images=...)") -> list[Image]:
    """Images as root code gave them, checked as the REPL checks them (count, sizes, headers), then hashed."""
    return [inspect(data) for data in check(raw, what)] if raw else []


def user_message(prompt: str, images: Sequence[Image], detail: str | None) -> dict[str, Any]:
    """A sub-call's one user message: the prompt alone, or a text part then an ``image_url`` part per image."""
    if not images:
        return {"role": "user", "content": prompt}
    parts: list[dict[str, Any]] = [{"type": "text", "text": prompt}]
    for image in images:
        url: dict[str, Any] = {"url": image.data_url}
        if detail is not None:
            url["detail"] = detail
        parts.append({"type": "image_url", "image_url": url})
    return {"role": "user", "content": parts}


def keyed(messages: list[dict[str, Any]], images: Sequence[Image]) -> list[dict[str, Any]]:
    """``messages`` as the cache keys them: each ``image_url`` part by its image's hash, not its base64."""
    hashes = iter(images)
    out = []
    for message in messages:
        content = message.get("content")
        if isinstance(content, list):
            content = [{"type": "image_url", "sha256": next(hashes).sha256, "detail": p["image_url"].get("detail")}
                       if p.get("type") == "image_url" else p for p in content]
            message = {**message, "content": content}
        out.append(message)
    return out


def total_tokens(images: Sequence[Image], model: str, detail: str | None) -> int:
    return sum(image_tokens(i.width, i.height, model=model, detail=detail) for i in images)


@dataclass(frozen=True, slots=True)
class CallImages:
    """What a call's images add: their prompt tokens, and their ``call.start`` fields (``Thumbs.fields``)."""

    tokens: int = 0
    fields: dict[str, Any] = field(default_factory=dict)


class Thumbs:
    """Which images of a run the trace carries whole (see the module docstring): each once, within a total."""

    def __init__(self, per_image: int = THUMB_BYTES, total: int = THUMBS_TOTAL) -> None:
        self.per_image, self.left = per_image, total
        self._seen: set[str] = set()

    def fields(self, images: Sequence[Image], model: str, detail: str | None) -> dict[str, Any]:
        """``call.start`` data for a call's images: their metadata, with a ``thumb`` the first time one is seen."""
        if not images:
            return {}
        metas = []
        for image in images:
            meta = image.meta(model, detail)
            size = len(image.data)
            if image.sha256 not in self._seen and size <= self.per_image and size <= self.left:
                self._seen.add(image.sha256)
                self.left -= size
                meta["thumb"] = image.data_url
            metas.append(meta)
        return {"images": metas, **({"detail": detail} if detail is not None else {})}


#: How endpoints word "this model takes no images": OpenAI's 400, vLLM serving a text model,
#: llama.cpp's server without a projector, DeepSeek's and others' schema errors, Ollama.
_REFUSALS = re.compile(
    r"only supported by certain models|not a multimodal model|at most 0 image|image input is not supported"
    r"|images? (are|is) not supported|does not support (image|vision|multimodal)|unknown variant `image_url`"
    r"|mmproj|vision is not supported|doesn't support (image|vision)|content must be a string",
    re.IGNORECASE,
)


def refusal(exc: LMResponseError, model: str) -> ImagesRefused | None:
    """``ImagesRefused`` when ``exc`` is an endpoint saying ``model`` takes no images; None otherwise."""
    if exc.status is None or exc.status == 429 or not (400 <= exc.status < 600):
        return None
    if not _REFUSALS.search(f"{exc} {exc.body}"):
        return None
    return ImagesRefused(
        f"{model!r} refused the images (HTTP {exc.status}: it does not take image input). Send images to a "
        f"vision model: llm_query(prompt, images=..., model=<a vision model the user allowed>), or the user "
        f"sets one as the sub-model (RLM(model, sub_model=...)) or allows one (Endpoint(models=[...])). "
        f"The endpoint said: {str(exc)[:300]}",
        status=exc.status, body=exc.body, model=model, headers=exc.headers,
    )


async def refused_as_typed(call: Awaitable[Completion], model: str, images: bool) -> Completion:
    """The call; an endpoint refusing a request with images as a model that takes none is ``ImagesRefused``."""
    try:
        return await call
    except LMResponseError as exc:
        typed = refusal(exc, model) if images else None
        if typed is None:
            raise
        raise typed from exc
