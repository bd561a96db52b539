"""Images for sub-calls: what counts as one, its header, and the caps; the same in the REPL and the host.

Standard library only: the kernel sandbox copies it in as ``_rlm_images.py``, so root
code hears about a bad image before anything crosses the bridge, and the host checks
every image again with the same code (it trusts nothing the kernel says). Nothing here
decodes pixels: the format and size come from the PNG ``IHDR`` chunk or the JPEG
``SOF`` segment, read by a parser that looks at a bounded number of bytes and segments.
"""

from __future__ import annotations

import base64
import binascii
import re
import struct
from typing import Any

#: The most one image may weigh (OpenAI's limit per image).
MAX_IMAGE_BYTES = 20 * 2**20
#: The most images one sub-call may carry, and their bytes together (OpenAI's per-request image bytes).
MAX_IMAGES = 64
MAX_CALL_BYTES = 50 * 2**20
#: The longest side an image may claim (JPEG cannot say more).
MAX_SIDE = 65_535
#: ``detail`` values an OpenAI-compatible endpoint takes; None sends none (the endpoint's own default).
DETAILS = ("low", "high", "auto")
#: Segments of a JPEG read before its frame header, at most (an EXIF block or two come first as a rule).
MAX_JPEG_SEGMENTS = 256

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_JPEG_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})
_JPEG_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})
_DATA_URL = re.compile(r"data:image/(png|jpeg|jpg);base64,", re.IGNORECASE)
MIME = {"png": "image/png", "jpeg": "image/jpeg"}
_HOW = ("pass PNG or JPEG bytes (e.g. page_image(n), or open(path, 'rb').read()) "
        "or a 'data:image/png;base64,...' URL")


class ImageError(ValueError):
    """An image a sub-call cannot send; the message says what is wrong and what to pass instead."""


def header(data: bytes) -> tuple[str, int, int]:
    """``(format, width, height)`` from the image's header; ``ImageError`` if it is not a PNG or JPEG."""
    if data.startswith(PNG_SIGNATURE):
        return _png(data)
    if data.startswith(b"\xff\xd8\xff"):
        return _jpeg(data)
    if data[:6] in (b"GIF87a", b"GIF89a") or (data[:4] == b"RIFF" and data[8:12] == b"WEBP"):
        raise ImageError("GIF and WebP images are not sent; convert the image to PNG or JPEG first")
    raise ImageError(f"the bytes are not a PNG or JPEG image (they start {bytes(data[:8])!r}); {_HOW}")


def _png(data: bytes) -> tuple[str, int, int]:
    if len(data) < 33 or data[8:16] != b"\x00\x00\x00\rIHDR":
        raise ImageError("a PNG whose first chunk is not a whole IHDR header: the file is truncated or corrupt")
    width, height = struct.unpack(">II", data[16:24])
    return "png", *_sides(width, height)


def _jpeg(data: bytes) -> tuple[str, int, int]:
    """Walk the JPEG's segments (by their lengths, never their contents) to its frame header."""
    i, n = 2, len(data)
    for _ in range(MAX_JPEG_SEGMENTS):
        if i >= n or data[i] != 0xFF:  # every segment starts with a marker
            break
        while i < n and data[i] == 0xFF:  # and fill bytes may come before it
            i += 1
        if i >= n:
            break
        marker = data[i]
        i += 1
        if marker in _JPEG_STANDALONE:
            continue
        if marker in (0xD9, 0xDA) or i + 2 > n:  # the image ended, or its scan began, without a frame header
            break
        (length,) = struct.unpack(">H", data[i:i + 2])
        if length < 2:
            break
        if marker in _JPEG_SOF:
            if i + 7 > n or length < 8:
                break
            height, width = struct.unpack(">HH", data[i + 3:i + 7])
            return "jpeg", *_sides(width, height)
        i += length
    raise ImageError("a JPEG without a readable frame header (SOF): the file is truncated or corrupt")


def _sides(width: int, height: int) -> tuple[int, int]:
    if not (0 < width <= MAX_SIDE and 0 < height <= MAX_SIDE):
        raise ImageError(f"the image's header says it is {width}x{height} pixels; each side must be "
                         f"1 to {MAX_SIDE:,} pixels")
    return width, height


def as_bytes(value: Any) -> bytes:
    """One image as bytes: bytes-like, or a ``data:`` URL of a PNG or JPEG; checked, never decoded."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        data = bytes(value)
    elif isinstance(value, str):
        data = _from_url(value)
    else:
        raise ImageError(f"an image must be bytes or a data: URL, not {type(value).__name__}; {_HOW}"
                         + ("; a PIL image: buf = io.BytesIO(); img.save(buf, 'PNG'); buf.getvalue()"
                            if hasattr(value, "save") else ""))
    if len(data) > MAX_IMAGE_BYTES:
        raise ImageError(f"an image of {len(data) / 2**20:.1f} MiB is over the {MAX_IMAGE_BYTES // 2**20} MiB "
                         "limit per image; render or save it smaller (fewer pixels, or JPEG)")
    header(data)
    return data


def _from_url(text: str) -> bytes:
    found = _DATA_URL.match(text)
    if found is None:
        where = "a URL (images are sent as bytes, never fetched)" if "://" in text[:12] else "a str"
        raise ImageError(f"an image must be bytes or a data: URL, got {where} {text[:40]!r}; {_HOW}")
    try:
        data = base64.b64decode(text[found.end():], validate=True)
    except (binascii.Error, ValueError):
        raise ImageError("a data: URL whose base64 is malformed") from None
    declared = "jpeg" if found.group(1).lower() in ("jpeg", "jpg") else "png"
    actual = header(data)[0]
    if actual != declared:
        raise ImageError(f"a data: URL that says image/{declared} holds a {actual.upper()}")
    return data


def check(images: Any, what: str = "llm_query(images=...)") -> list[bytes]:
    """The images of one sub-call as a list of bytes: None for none, one image, or a list of them."""
    if images is None:
        return []
    if isinstance(images, (bytes, bytearray, memoryview, str)):
        images = [images]
    elif not isinstance(images, (list, tuple)):
        raise ImageError(f"{what} takes a list of images, not {type(images).__name__}; {_HOW}")
    if len(images) > MAX_IMAGES:
        raise ImageError(f"{what}: {len(images)} images in one sub-call is over the limit of {MAX_IMAGES}; "
                         "spread them over several calls (llm_batch)")
    out: list[bytes] = []
    for k, value in enumerate(images):
        try:
            out.append(as_bytes(value))
        except ImageError as exc:
            raise ImageError(f"{what}: image {k}: {exc}") from None
    total = sum(len(d) for d in out)
    if total > MAX_CALL_BYTES:
        raise ImageError(f"{what}: {total / 2**20:.1f} MiB of images in one sub-call is over the "
                         f"{MAX_CALL_BYTES // 2**20} MiB limit; spread them over several calls")
    return out


def check_detail(detail: Any, fn: str) -> None:
    if detail is not None and detail not in DETAILS:
        raise ValueError(f"{fn}(detail=...) takes 'low', 'high', 'auto' or None, got {detail!r}")


def check_batch(images: Any, n: int) -> list[list[bytes] | ImageError] | None:
    """``llm_batch(images=...)``: one entry per prompt (None, an image or a list); a bad entry is its item's error."""
    if images is None:
        return None
    if isinstance(images, (bytes, bytearray, memoryview, str)) or not isinstance(images, (list, tuple)):
        raise TypeError("llm_batch(prompts, images=...) takes one entry per prompt, each None, an image or a list "
                        f"of images (images=[[page_image(1)], [], ...]), not {type(images).__name__}")
    if len(images) != n:
        raise TypeError(f"llm_batch(prompts, images=...): {len(images)} entries for {n} prompts; give one per "
                        "prompt, None (or []) where a prompt has no image")
    out: list[list[bytes] | ImageError] = []
    for k, entry in enumerate(images):
        try:
            out.append(check(entry, f"llm_batch(images=...) item {k}"))
        except ImageError as exc:
            out.append(exc)
    return out


# -- over the sandbox's bridge: base64 in JSON; the host decodes strictly and checks again ---------


def encode(images: list[bytes]) -> list[str]:
    return [base64.b64encode(data).decode("ascii") for data in images]


def encode_batch(entries: list[list[bytes] | ImageError]) -> list[Any]:
    """A batch's entries for the bridge: each its images, or ``{"error": why}`` for one already refused."""
    return [{"error": str(e)} if isinstance(e, ImageError) else encode(e) for e in entries]


def decode(value: Any, what: str = "llm_query(images=...)") -> list[bytes]:
    """Images as the kernel sent them: a list of base64 strings, each no longer than the caps allow."""
    longest = 4 * -(-MAX_IMAGE_BYTES // 3)
    if not isinstance(value, list) or len(value) > MAX_IMAGES:
        raise ImageError(f"{what}: not a list of at most {MAX_IMAGES} images")
    out = []
    for item in value:
        if not isinstance(item, str) or len(item) > longest:
            raise ImageError(f"{what}: an image that is not base64 of at most {MAX_IMAGE_BYTES // 2**20} MiB")
        try:
            out.append(base64.b64decode(item, validate=True))
        except (binascii.Error, ValueError):
            raise ImageError(f"{what}: an image whose base64 is malformed") from None
    return out


def decode_batch(value: Any, n: int) -> list[list[bytes] | ImageError]:
    """A batch's entries as the kernel sent them; a malformed entry is that item's error, not the batch's."""
    if not isinstance(value, list) or len(value) != n:
        raise TypeError(f"llm_batch(images=...) must have one entry per prompt ({n})")
    out: list[list[bytes] | ImageError] = []
    for k, entry in enumerate(value):
        what = f"llm_batch(images=...) item {k}"
        if isinstance(entry, dict):
            out.append(ImageError(str(entry.get("error") or "refused in the REPL")[:1000]))
            continue
        try:
            out.append(decode(entry, what))
        except ImageError as exc:
            out.append(exc)
    return out
