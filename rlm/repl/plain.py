"""What crosses the bridge between the sandbox kernel and the host: the frame header and plain data.

Standard library only: the kernel sandbox copies it into each kernel's run directory as
``_rlm_plain.py``. Plain data is JSON that keeps tuples and non-string dict keys, so a
tool's arguments and a context sent with ``rlm_query`` arrive as they were sent; decoding
builds nothing but plain types, so the host may decode what the kernel sends.
"""

from __future__ import annotations

import struct
from typing import Any

#: Kernel -> host bridge frames: the 32-byte token and the body's length, checked before the body is read.
REQUEST_HEADER = struct.Struct(">32sI")
_TAG = "__rlm__"
_PLAIN = (str, int, float, bool, type(None))


def encode_plain(value: Any, what: str = "value") -> Any:
    """Plain data as JSON that keeps tuples and non-string dict keys (``decode_plain`` undoes it)."""
    try:
        return _encode(value, what)
    except RecursionError:
        raise TypeError(f"{what} is nested too deeply to send") from None


def _encode(value: Any, what: str) -> Any:
    if isinstance(value, _PLAIN):
        return value
    if isinstance(value, list):
        return [_encode(v, what) for v in value]
    if isinstance(value, tuple):
        return {_TAG: "tuple", "items": [_encode(v, what) for v in value]}
    if isinstance(value, dict):
        if all(isinstance(k, str) and k != _TAG for k in value):
            return {k: _encode(v, what) for k, v in value.items()}
        return {_TAG: "dict", "items": [[_encode(k, what), _encode(v, what)] for k, v in value.items()]}
    raise TypeError(f"{what} must be plain data (str, int, float, bool, None, list, tuple, dict), "
                    f"not {type(value).__name__}")


def decode_plain(value: Any) -> Any:
    """The value ``encode_plain`` sent; builds nothing but plain types, so the host may call it on kernel data."""
    try:
        return _decode_plain(value)
    except RecursionError:
        raise TypeError("the value is nested too deeply") from None


def _decode_plain(value: Any) -> Any:
    if isinstance(value, list):
        return [_decode_plain(v) for v in value]
    if not isinstance(value, dict):
        return value
    tag = value.get(_TAG)
    if tag is None:
        return {k: _decode_plain(v) for k, v in value.items()}
    items = value.get("items")
    if not isinstance(items, list):
        raise TypeError("a tagged value without items")
    if tag == "tuple":
        return tuple(_decode_plain(v) for v in items)
    if tag == "dict":
        out = {}
        for pair in items:
            if not isinstance(pair, list) or len(pair) != 2:
                raise TypeError("a dict item is not a [key, value] pair")
            key = _decode_plain(pair[0])
            try:
                out[key] = _decode_plain(pair[1])
            except TypeError:
                raise TypeError(f"unhashable dict key of type {type(key).__name__}") from None
        return out
    raise TypeError(f"unknown tag {tag!r}")
