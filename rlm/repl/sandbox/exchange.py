"""What crosses between the host and a sandbox kernel, outside the bridge: the context going in,
each call's result coming back (a user expression of the execute request), checked field by field.
"""

from __future__ import annotations

import base64
import json
import pickle
import re
from typing import Any

from ..base import ExecResult

_SURROGATE = re.compile("[\ud800-\udfff]")
#: A base64 string's repr, and the most of it the host reads (zmq refuses bigger messages anyway).
_B64_REPR = re.compile(r"'[A-Za-z0-9+/=]*'")
_MAX_RESULT = 96 * 2**20


def encode_context(value: Any) -> tuple[str, bytes]:
    """The context as the kernel receives it: UTF-8 text, or a pickle (so tuples and int keys survive)."""
    if isinstance(value, str):
        return "str", value.encode("utf-8", "surrogatepass")
    try:
        return "pickle", pickle.dumps(value, protocol=5)
    except (pickle.PicklingError, TypeError, AttributeError) as exc:
        raise TypeError(f"the context cannot go to the sandbox kernel: it is not picklable ({exc}); "
                        "pass plain data, or use RLM(sandbox='local')") from None


def user_expression(content: dict[str, Any]) -> dict[str, Any] | None:
    """``user_expressions.rlm``: the repr of a base64 string of JSON, each layer checked."""
    expressions = content.get("user_expressions")
    entry = expressions.get("rlm") if isinstance(expressions, dict) else None
    data = entry.get("data") if isinstance(entry, dict) else None
    shown = data.get("text/plain") if isinstance(data, dict) else None
    if not isinstance(shown, str) or len(shown) > _MAX_RESULT or not _B64_REPR.fullmatch(shown):
        return None
    try:
        decoded = json.loads(base64.b64decode(shown[1:-1], validate=True))
    except (ValueError, RecursionError):
        return None
    return decoded if isinstance(decoded, dict) else None


def text_of(value: Any) -> str:
    return value if isinstance(value, str) else ""


def clean(text: str, cap: int) -> str:
    """Text from the kernel as the host keeps it: capped head and tail, no lone surrogates."""
    if len(text) > cap:
        half = cap // 2
        text = f"{text[:half]}\n... [{len(text) - 2 * half} characters omitted] ...\n{text[-half:]}"
    return _SURROGATE.sub("\ufffd", text)


def step_result(data: dict[str, Any], note: str | None, seconds: float, cap: int) -> ExecResult:
    """Untrusted data from the kernel, checked field by field and capped here, not only in the kernel."""
    def text(key: str) -> str | None:
        value = data.get(key)
        return clean(value, cap) if isinstance(value, str) else None

    error = text("error")
    if note is not None:
        error = note if error in (None, "KeyboardInterrupt") else f"{note}\n{error}"
    restored = data.get("restored")
    names = tuple(n[:100] for n in restored[:50] if isinstance(n, str)) if isinstance(restored, list) else ()
    return ExecResult(text("stdout") or "", text("stderr") or "", error, seconds, text("final"), names)
