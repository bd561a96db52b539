"""IPython magics: ``%load_ext rlm``, then ``%rlm_config`` and ``%%rlm``.

Example::

    %load_ext rlm
    %rlm_config model=gpt-5 sub_model=gpt-5-mini max_concurrent=16

    %%rlm --context report_text
    Which sections mention the merger?

The cell body is the query; the answer is displayed and stored in ``_rlm`` (the
full ``RLMResult`` in ``_rlm_result``). The run shows the live view like any
``completion``. Settings made with ``%rlm_config`` last for the notebook's kernel.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import shlex
import types
import typing
from collections import abc
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring
from IPython.display import display

from .api import RLM
from .config import Endpoint, Limits
from .errors import Cancelled


def config_keys() -> dict[str, str]:
    """Every option ``%rlm_config`` takes, read off ``RLM``'s signature: name -> its group ("" if flat)."""
    keys = {name: "" for name in inspect.signature(RLM).parameters if name not in _GROUPS}
    for group, kind in _GROUPS.items():
        keys.update({f.name: group for f in dataclasses.fields(kind)})
    return keys


_GROUPS: dict[str, Any] = {"limits": Limits, "endpoint": Endpoint}


def config_types() -> dict[str, Any]:
    """Each option's type, read off the annotations of ``RLM``, ``Limits`` and ``Endpoint``."""
    from .lm.pricing import ModelInfo

    names = {"ModelInfo": ModelInfo}  # the one name an annotation (PricingArg) leaves unresolved
    types = {k: v for k, v in typing.get_type_hints(RLM.__init__, localns=names).items() if k != "return"}
    for group, kind in _GROUPS.items():
        del types[group]
        types.update(typing.get_type_hints(kind, localns=names))
    return types


def fits(value: Any, kind: Any) -> bool:
    """Whether ``value`` is of the annotated type ``kind``: unions, None, callables and generic containers by
    their outer type (their items are ``RLM``'s to check); a bool is not a number here."""
    origin = typing.get_origin(kind)
    if kind is Any:
        return True
    if kind is None or kind is type(None):
        return value is None
    if origin in (typing.Union, types.UnionType):
        return any(fits(value, k) for k in typing.get_args(kind))
    if origin is typing.Literal:
        return value in typing.get_args(kind)
    if kind is abc.Callable or origin is abc.Callable:
        return callable(value)
    if kind in (int, float):
        return isinstance(value, (int, float) if kind is float else int) and not isinstance(value, bool)
    outer = origin if isinstance(origin, type) else kind
    if outer in (abc.Sequence, list, tuple) and isinstance(value, (str, bytes)):
        return False
    return isinstance(value, outer) if isinstance(outer, type) else True


def _described(kind: Any) -> str:
    """``str | None`` -> ``a str or None``; ``os.PathLike[str]`` -> ``a PathLike``."""
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        return " or ".join(_described(k) for k in typing.get_args(kind))
    if kind is type(None):
        return "None"
    if kind is abc.Callable or typing.get_origin(kind) is abc.Callable:
        return "a callable"
    name = str(getattr(typing.get_origin(kind) or kind, "__name__", kind))
    return f"{'an' if name[0] in 'aeiouAEIOU' else 'a'} {name}"


def parse_config(line: str, namespace: dict[str, Any] | None = None) -> dict[str, Any]:
    """``model=gpt-5 max_concurrent=16`` -> ``{"model": "gpt-5", "max_concurrent": 16}``.

    A value names a notebook variable (``budget=my_budget``) only where that variable's
    type fits the setting: ``model=root`` in a notebook with a function ``root`` is the
    model ``"root"``. Otherwise it is a Python literal (numbers, None, True, quoted
    strings) or a plain string; a value that fits in neither way is a ``UsageError``
    naming the setting and the type it takes.
    """
    keys, kinds = config_keys(), config_types()
    values: dict[str, Any] = {}
    for token in shlex.split(line):
        key, sep, raw = token.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise UsageError(f"%rlm_config takes key=value pairs, got {token!r}")
        if key not in keys:
            raise UsageError(f"%rlm_config: unknown setting {key!r}; settings: {', '.join(sorted(keys))}")
        kind = kinds.get(key, Any)
        if namespace is not None and raw.isidentifier() and raw in namespace and fits(namespace[raw], kind):
            values[key] = namespace[raw]
            continue
        try:
            literal = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            literal = raw
        if not fits(literal, kind):
            variable = (f" (the notebook's {raw} is a {type(namespace[raw]).__name__})"
                        if namespace is not None and raw in namespace else "")
            raise UsageError(f"%rlm_config: {key} takes {_described(kind)}, got {raw!r}{variable}")
        values[key] = literal
    return values


def build_rlm(settings: dict[str, Any]) -> RLM:
    """``RLM(...)`` from flat settings, the grouped ones gathered into ``Limits`` and ``Endpoint``."""
    keys = config_keys()
    flat: dict[str, Any] = {}
    grouped: dict[str, dict[str, Any]] = {group: {} for group in _GROUPS}
    for key, value in settings.items():
        (grouped[keys[key]] if keys[key] else flat)[key] = value
    for group, kind in _GROUPS.items():
        if grouped[group]:
            flat[group] = kind(**grouped[group])
    return RLM(**flat)


def _shown(settings: dict[str, Any]) -> str:
    """Settings as text, with the API key hidden."""
    if not settings:
        return "rlm: no settings (RLM defaults; OPENAI_API_KEY / OPENAI_BASE_URL from the environment)"
    return "rlm: " + " ".join(f"{k}={'***' if k == 'api_key' else repr(v)}" for k, v in sorted(settings.items()))


@magics_class
class RLMMagics(Magics):
    """``%rlm_config`` and ``%%rlm``; one ``RLM`` is kept per distinct configuration."""

    def __init__(self, shell: Any) -> None:
        super().__init__(shell)
        self.settings: dict[str, Any] = {}
        self._instances: dict[tuple[tuple[str, str], ...], RLM] = {}

    @line_magic
    def rlm_config(self, line: str) -> None:
        """Set defaults for ``%%rlm``: ``%rlm_config model=gpt-5 base_url=http://...``.

        With no arguments it shows the settings; ``%rlm_config --reset`` clears them.
        """
        line = line.strip()
        if line == "--reset":
            self.settings.clear()
        elif line:
            self.settings.update(parse_config(line, self.shell.user_ns if self.shell is not None else None))
        display({"text/plain": _shown(self.settings)}, raw=True)

    def rlm_for(self, overrides: dict[str, Any]) -> RLM:
        """The ``RLM`` for the notebook's settings plus ``overrides`` (reused across cells)."""
        settings = {**self.settings, **{k: v for k, v in overrides.items() if v is not None}}
        key = tuple(sorted((k, repr(v)) for k, v in settings.items()))
        if key not in self._instances:
            self._instances[key] = build_rlm(settings)
        return self._instances[key]

    @magic_arguments()
    @argument(
        "--context", "-c", required=True, help="a variable (or expression) of the notebook that holds the context"
    )
    @argument("--model", "-m", default=None, help="root model (default: %%rlm_config's, else RLM's)")
    @argument("--sub-model", "-s", default=None, help="model for llm_query/llm_batch sub-calls")
    @argument("--base-url", default=None, help="OpenAI-compatible endpoint")
    @cell_magic
    def rlm(self, line: str, cell: str) -> None:
        """Answer the cell's text over ``--context``; the answer lands in ``_rlm``."""
        args = parse_argstring(self.rlm, line)
        query = cell.strip()
        if not query:
            raise UsageError("%%rlm: the cell body is the query, and it is empty")
        if self.shell is None:
            raise UsageError("%%rlm needs an IPython shell")
        namespace = self.shell.user_ns
        try:
            context = eval(args.context, namespace)  # the user's own expression, in their own namespace
        except NameError:
            raise UsageError(f"%%rlm --context {args.context}: no such variable in the notebook") from None
        rlm = self.rlm_for({"model": args.model, "sub_model": args.sub_model, "base_url": args.base_url})
        try:
            result = rlm.completion(context, query)
        except Cancelled as stopped:
            namespace.update(_rlm=None, _rlm_result=stopped.partial)
            display(
                {"text/plain": "rlm: stopped; the partial result (steps, usage, trace) is in _rlm_result"}, raw=True
            )
            return
        namespace.update(_rlm=result.answer, _rlm_result=result)
        display({"text/plain": result.text}, raw=True)


def load_ipython_extension(ipython: Any) -> None:
    """Register the magics (``%load_ext rlm`` calls this through ``rlm.load_ipython_extension``)."""
    ipython.register_magics(RLMMagics)
