"""The request options of ``AsyncOpenAI().chat.completions.create``, as rlm's lean transport reads them.

Request options are read as ``AsyncOpenAI().chat.completions.create`` reads them:
body parameters go into the JSON body (``omit``/``NOT_GIVEN`` values are left out,
``None`` is sent as null); ``extra_body`` is merged over the body (an ``omit`` value
removes a key); ``extra_headers`` are merged over the default headers case-insensitively
(an ``omit`` value removes a header); ``extra_query`` becomes the query string, encoded
by the SDK's own encoder; ``timeout`` (seconds, ``None`` for none, or an httpx
``Timeout``, whose ``connect`` and ``read`` apply) replaces the client's for that call.
``OpenAI-Organization``/``OpenAI-Project`` come from ``organization=``/``project=`` or
``OPENAI_ORG_ID``/``OPENAI_PROJECT_ID``, as in the SDK. The headers, URL and timeout
for one set of options are prepared once and reused. ``check_call_options`` rejects
what the SDK's ``create()`` would not accept, so both transports refuse the same
options (``RLM`` calls it at construction).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Mapping
from typing import Any

from openai import NotGiven, Omit

from ..errors import ConfigError

# The create() arguments that shape the request rather than its JSON body.
REQUEST_OPTIONS = frozenset({"extra_headers", "extra_query", "extra_body", "timeout"})


@functools.cache
def sdk_create_options() -> frozenset[str]:
    """The keyword arguments ``AsyncOpenAI().chat.completions.create`` accepts, less ``messages``/``model``.

    Read once from the installed SDK's signature, so the check follows its version.
    """
    from openai.resources.chat.completions import AsyncCompletions

    parameters = inspect.signature(AsyncCompletions.create).parameters.values()
    names = {p.name for p in parameters if p.kind is inspect.Parameter.KEYWORD_ONLY}
    return frozenset(names - {"messages", "model"})


def check_call_options(options: Mapping[str, Any]) -> None:
    """Raise ``ConfigError`` for an option the SDK's ``create()`` would not take.

    Why: rlm's transports must send the same request, and an option one of them does not
    know would reach the server from one and fail in the other.
    """
    known = sdk_create_options()
    for key in options:
        if key in ("messages", "model"):
            raise ConfigError(
                f"call_options[{key!r}] is set by rlm for each call; choose models with RLM(model=..., sub_model=...)"
            )
        if key == "stream" and options[key]:
            raise ConfigError(
                "call_options['stream'] is not supported: rlm streams root replies itself; "
                "leave it out (Endpoint(stream=False) turns streaming off)"
            )
        if key not in known:
            raise ConfigError(
                f"call_options[{key!r}] is not an option of the openai SDK's chat.completions.create(); "
                f"put provider-specific parameters in call_options['extra_body'] (e.g. extra_body={{{key!r}: ...}})"
            )
    for key in ("extra_body", "extra_query", "extra_headers"):
        value = options.get(key)
        if value is not None and not isinstance(value, Mapping):
            raise ConfigError(f"call_options[{key!r}] must be a dict or None, got {type(value).__name__}")
    for name, value in (options.get("extra_headers") or {}).items():
        if not isinstance(name, str) or not isinstance(value, (str, Omit)):
            raise ConfigError(f"call_options['extra_headers'][{name!r}] must be a str (or openai.omit), got {value!r}")
    timeout = options.get("timeout")
    if not (timeout is None or isinstance(timeout, (int, float, NotGiven)) or _is_httpx_timeout(timeout)):
        raise ConfigError(f"call_options['timeout'] must be seconds, None or an httpx.Timeout, got {timeout!r}")


def _is_httpx_timeout(value: Any) -> bool:
    return not isinstance(value, bool) and all(hasattr(value, a) for a in ("connect", "read", "write", "pool"))


def merge_headers(*mappings: Mapping[str, Any]) -> dict[str, str]:
    """Merge header mappings as the SDK does: case-insensitive, later wins, an ``Omit`` value removes."""
    merged: dict[str, tuple[str, str]] = {}
    for mapping in mappings:
        for name, value in mapping.items():
            if isinstance(value, Omit):
                merged.pop(name.lower(), None)
            else:
                merged[name.lower()] = (name, value)
    return dict(merged.values())


def snapshot(value: Any) -> Any:
    """A copy of nested dicts and lists that compares equal while ``value`` is unchanged (leaves kept as they are)."""
    if isinstance(value, Mapping):
        return {k: snapshot(v) for k, v in value.items()}
    if isinstance(value, list):
        return [snapshot(v) for v in value]
    if isinstance(value, tuple):
        return tuple(snapshot(v) for v in value)
    return value


def query_string(extra_query: Mapping[str, Any]) -> str:
    """``extra_query`` encoded as the SDK puts it on the URL ('' for nothing to send)."""
    # The SDK's own encoder (nested keys, arrays, booleans), and the URL class it sends with.
    from openai._qs import Querystring

    try:
        import httpx2 as httpx
    except ImportError:  # pragma: no cover - older openai
        import httpx  # type: ignore[no-redef]

    params = {k: v for k, v in extra_query.items() if not isinstance(v, Omit)}
    if not params:
        return ""
    url = httpx.URL("http://h/", params=Querystring(array_format="brackets").stringify(params))
    return url.query.decode("ascii")
