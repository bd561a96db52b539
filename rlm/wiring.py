"""What the facade builds from its settings: the clients, and a budget checked against the prices."""

from __future__ import annotations

import asyncio
import logging
import sys

from .config import Endpoint
from .errors import ConfigError, LMError
from .lm.budget import Budget
from .lm.client import LMClient, NoEndpoint, OpenAIClient, has_endpoint
from .lm.pricing import Pricing
from .trace.events import Subscriber
from .trace.progress import ConsoleProgress, Listener, ProgressModel, isatty

#: The longest a first completion waits for an endpoint's ``/models`` listing.
WINDOW_LOOKUP_S = 5.0
log = logging.getLogger("rlm")


def clients(endpoint: Endpoint, base_url: str | None, api_key: str | None) -> tuple[LMClient, LMClient | None]:
    """The root client and (``transport="auto"``) a lean one for sub-calls, the hot path.

    With neither a key nor a URL (arguments or environment), a ``NoEndpoint``.
    The SDK's own retries stay off (``max_retries=0``): the dispatcher retries every call
    once, under one policy.
    """
    if endpoint.client is not None:
        return endpoint.client, None
    if not has_endpoint(api_key, base_url):
        return NoEndpoint(), None  # RLM(...) and estimate() need no endpoint; a run says what to set
    from .lm.transport import FastClient  # aiohttp and the openai SDK load here, not at `import rlm`

    if endpoint.transport == "fast":
        return FastClient(api_key=api_key, base_url=base_url, timeout=endpoint.timeout), None
    root = OpenAIClient(api_key=api_key, base_url=base_url, timeout=endpoint.timeout, max_retries=0)
    if endpoint.transport == "auto":
        return root, FastClient(api_key=api_key, base_url=base_url, timeout=endpoint.timeout)
    return root, None


def check_counts(**values: object) -> None:
    """Counts the RLM is built with must be ints >= 1."""
    for name, value in values.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"{name} must be an int >= 1, got {value!r}")


def check_budget(budget: Budget | None, pricing: Pricing, models: tuple[str, str]) -> Budget | None:
    """Fail at construction, not mid-run, when a dollar limit meets a model with no price."""
    if budget is None:
        return None
    if not isinstance(budget, Budget):
        raise ConfigError(f"budget must be a rlm.Budget, got {type(budget).__name__}")
    if budget.max_cost_usd is not None:
        for name in models:
            if not pricing.is_priced(name):
                raise ConfigError(
                    f"Budget(max_cost_usd=...) needs a price for model {name!r}; pass "
                    f"RLM(pricing={{{name!r}: ModelInfo(input_per_mtok=..., output_per_mtok=...)}})"
                )
    return budget


async def learn_windows(pricing: Pricing, models: set[str], client: LMClient) -> None:
    """Ask the endpoint (``client.context_windows()``, when it has one) for windows the table lacks.

    Why: the context-window guard and the root's prompt need the sub-model's window,
    and a local server knows it (vLLM's ``max_model_len``); without it a prompt pasted
    whole is sent and fails, or is cut, at the server. Best effort, at most 5 s.
    """
    missing = pricing.missing_windows(models)
    ask = getattr(client, "context_windows", None)
    if not missing or ask is None:
        return
    try:
        windows = await asyncio.wait_for(ask(), WINDOW_LOOKUP_S)
    except (LMError, asyncio.TimeoutError) as exc:
        log.debug("no context windows from the endpoint: %s", exc)
        return
    for model in missing & set(windows):
        pricing.add_window(model, windows[model])


def progress_subscribers(progress: bool | Listener | None) -> list[Subscriber]:
    """A fresh progress model per run: the console line (default: when stderr is a terminal), a callable, or nothing."""
    if progress is None:
        progress = isatty(sys.stderr)
    if progress is True:
        return [ProgressModel(ConsoleProgress())]
    if callable(progress):
        return [ProgressModel(progress)]
    return []
