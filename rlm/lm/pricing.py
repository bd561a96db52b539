"""Prices and context windows of common models, overridable per ``RLM`` (``Endpoint(pricing=...)``).

Prices are list prices in US dollars per million tokens, as published by each provider
(checked 2025-10; see ``PRICES_AS_OF``). They change: pass your own with
``RLM(endpoint=Endpoint(pricing={"my-model": ModelInfo(input_per_mtok=..., output_per_mtok=...)}))``.
A model not in the table has no price (its cost shows as unknown, never as $0) and no
context window (its prompts are not checked before sending). Calls sent through a
provider's Batch API (``rlm.map(..., via="batch")``) cost ``BATCH_DISCOUNT`` of the list price.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from ..errors import ConfigError, check_int
from .types import Usage

log = logging.getLogger("rlm")

PRICES_AS_OF = "2025-10"
#: What a Batch API call costs, as a share of the list price: OpenAI, Anthropic and Google
#: all bill batches at half price (as of ``PRICES_AS_OF``).
BATCH_DISCOUNT = 0.5


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """What rlm knows about one model: USD per million tokens, and its input window.

    Example: ``ModelInfo(input_per_mtok=0.25, output_per_mtok=2.0, context_window=272_000)``.
    ``cached_input_per_mtok`` prices prompt tokens the provider served from its cache.
    """

    input_per_mtok: float | None = None
    output_per_mtok: float | None = None
    context_window: int | None = None
    cached_input_per_mtok: float | None = None

    def __post_init__(self) -> None:
        for name in ("input_per_mtok", "output_per_mtok", "cached_input_per_mtok"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, (int, float)) or value < 0):
                raise ConfigError(f"ModelInfo.{name} must be a number >= 0 (USD per million tokens), got {value!r}")
        if self.context_window is not None:
            check_int("ModelInfo.context_window", self.context_window)

    @property
    def priced(self) -> bool:
        return self.input_per_mtok is not None and self.output_per_mtok is not None


def _m(inp: float, out: float, window: int, cached: float | None = None) -> ModelInfo:
    return ModelInfo(inp, out, window, cached)


#: Built-in table. Windows are the most prompt tokens a request may carry.
MODELS: dict[str, ModelInfo] = {
    # OpenAI
    "gpt-5": _m(1.25, 10.0, 272_000, 0.125),
    "gpt-5-mini": _m(0.25, 2.0, 272_000, 0.025),
    "gpt-5-nano": _m(0.05, 0.40, 272_000, 0.005),
    "gpt-5-pro": _m(15.0, 120.0, 272_000),
    "gpt-5-chat-latest": _m(1.25, 10.0, 128_000, 0.125),
    "gpt-4.1": _m(2.0, 8.0, 1_047_576, 0.50),
    "gpt-4.1-mini": _m(0.40, 1.60, 1_047_576, 0.10),
    "gpt-4.1-nano": _m(0.10, 0.40, 1_047_576, 0.025),
    "gpt-4o": _m(2.50, 10.0, 128_000, 1.25),
    "gpt-4o-mini": _m(0.15, 0.60, 128_000, 0.075),
    "o1": _m(15.0, 60.0, 200_000, 7.50),
    "o3": _m(2.0, 8.0, 200_000, 0.50),
    "o3-mini": _m(1.10, 4.40, 200_000, 0.55),
    "o4-mini": _m(1.10, 4.40, 200_000, 0.275),
    "gpt-4-turbo": _m(10.0, 30.0, 128_000),
    "gpt-3.5-turbo": _m(0.50, 1.50, 16_385),
    # Anthropic (OpenAI-compatible endpoint)
    "claude-opus-4-1": _m(15.0, 75.0, 200_000, 1.50),
    "claude-opus-4": _m(15.0, 75.0, 200_000, 1.50),
    "claude-sonnet-4-5": _m(3.0, 15.0, 200_000, 0.30),
    "claude-sonnet-4": _m(3.0, 15.0, 200_000, 0.30),
    "claude-3-7-sonnet": _m(3.0, 15.0, 200_000, 0.30),
    "claude-haiku-4-5": _m(1.0, 5.0, 200_000, 0.10),
    "claude-3-5-haiku": _m(0.80, 4.0, 200_000, 0.08),
    # Google (OpenAI-compatible endpoint; prices for prompts up to 200k tokens)
    "gemini-2.5-pro": _m(1.25, 10.0, 1_048_576, 0.31),
    "gemini-2.5-flash": _m(0.30, 2.50, 1_048_576, 0.075),
    "gemini-2.5-flash-lite": _m(0.10, 0.40, 1_048_576, 0.025),
    "gemini-2.0-flash": _m(0.10, 0.40, 1_048_576, 0.025),
}



# A dated snapshot ("gpt-4o-2024-08-06", "claude-sonnet-4-20250514") or "-latest" alias.
_SNAPSHOT = re.compile(r"-(\d{4}-\d{2}-\d{2}|\d{8}|latest)$")

PricingArg = Mapping[str, "ModelInfo | tuple[float, float]"] | None


class Pricing:
    """Looks models up in the built-in table with the caller's overrides on top.

    Lookup is exact first, then without a provider prefix (``openai/gpt-5``), then
    without a date suffix (``gpt-4o-2024-08-06`` -> ``gpt-4o``). There is no
    prefix guessing: ``gpt-5-pro`` is never priced as ``gpt-5``.

    Example::

        pricing = Pricing({"my-llama": ModelInfo(0, 0, context_window=32_768)})
        pricing.cost("gpt-5-mini", Usage(1, 10_000, 500))   # 0.0035
    """

    def __init__(self, overrides: PricingArg = None, *, builtin: bool = True) -> None:
        self.table: dict[str, ModelInfo] = dict(MODELS) if builtin else {}
        for name, info in (overrides or {}).items():
            if isinstance(info, tuple):
                if len(info) != 2:
                    raise ConfigError(
                        f"pricing[{name!r}] must be ModelInfo(...) or (input_per_mtok, output_per_mtok), got {info!r}"
                    )
                info = ModelInfo(*info)
            if not isinstance(info, ModelInfo):
                raise ConfigError(f"pricing[{name!r}] must be a ModelInfo, got {type(info).__name__}")
            base = self.table.get(name)
            if base is not None:  # keep the built-in window when only prices are given, and vice versa
                info = replace(
                    base,
                    **{f: getattr(info, f) for f in ModelInfo.__slots__ if getattr(info, f) is not None},
                )
            self.table[name] = info

    def lookup(self, model: str) -> ModelInfo | None:
        for name in _candidates(model):
            info = self.table.get(name)
            if info is not None:
                return info
        return None

    def add_window(self, model: str, window: int) -> None:
        """Record a context window the endpoint reported, unless the table already has one."""
        info = self.lookup(model)
        if info is None:
            self.table[model] = ModelInfo(context_window=window)
        elif info.context_window is None:
            self.table[model] = replace(info, context_window=window)

    def missing_windows(self, models: Iterable[str]) -> set[str]:
        """Which of ``models`` have no known context window (an endpoint may list them)."""
        return {m for m in models if self.context_window(m) is None}

    def context_window(self, model: str) -> int | None:
        info = self.lookup(model)
        return info.context_window if info else None

    def is_priced(self, model: str) -> bool:
        info = self.lookup(model)
        return info is not None and info.priced

    def cost(self, model: str, usage: Usage, *, cached_prompt_tokens: int = 0, batch: bool = False) -> float | None:
        """US dollars for ``usage`` of ``model``, or None when its price is unknown.

        ``batch=True``: the call went through the provider's Batch API, at ``BATCH_DISCOUNT``.
        """
        return self.estimate(model, usage.prompt_tokens, usage.completion_tokens, cached_prompt_tokens, batch=batch)

    def estimate(
        self, model: str, prompt_tokens: int, completion_tokens: int, cached_prompt_tokens: int = 0, *,
        batch: bool = False,
    ) -> float | None:
        info = self.lookup(model)
        if info is None or not info.priced:
            return None
        assert info.input_per_mtok is not None and info.output_per_mtok is not None
        cached = min(cached_prompt_tokens, prompt_tokens) if info.cached_input_per_mtok is not None else 0
        listed = (
            (prompt_tokens - cached) * info.input_per_mtok
            + cached * (info.cached_input_per_mtok or 0.0)
            + completion_tokens * info.output_per_mtok
        ) / 1_000_000
        return listed * BATCH_DISCOUNT if batch else listed


def _candidates(model: str) -> list[str]:
    names = [model]
    bare = model.rsplit("/", 1)[-1]
    if bare != model:
        names.append(bare)
    undated = _SNAPSHOT.sub("", bare)
    if undated != bare:
        names.append(undated)
    return names


def as_pricing(value: Pricing | PricingArg) -> Pricing:
    """``Endpoint(pricing=...)`` accepts a ``Pricing``, a mapping of overrides, or None."""
    return value if isinstance(value, Pricing) else Pricing(value)
