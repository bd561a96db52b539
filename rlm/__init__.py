"""rlm: Recursive Language Models that explore huge contexts from a REPL, Jupyter-native.

Example::

    from rlm import RLM
    result = RLM(model="gpt-5", sub_model="gpt-5-mini").completion(context=text, query="...")
"""

from .api import RLM
from .config import BatchAPI, Endpoint, Limits, Settings
from .core.result import RLMResult, Step, UsageReport
from .datasets.checkpoint import Checkpoint
from .datasets.maps import MapResult
from .errors import (
    AnswerError,
    BudgetExceeded,
    Cancelled,
    ConfigError,
    ContextWindowExceeded,
    ForkError,
    ImagesRefused,
    LimitExceeded,
    LMConnectionError,
    LMError,
    LMRateLimited,
    LMResponseError,
    LMTimeout,
    RLMError,
    SandboxError,
    SandboxTimeout,
    TraceFormatError,
    WorkerError,
)
from .lm.budget import Budget, BudgetReport
from .lm.cache import Cache
from .lm.client import LMClient, OpenAIClient
from .lm.hedge import Hedge
from .lm.limiter import AdaptiveLimiter
from .lm.pricing import ModelInfo, Pricing
from .lm.retry import RetryPolicy
from .lm.types import Completion, Usage
from .repl.sandbox.config import SandboxConfig
from .repl.steps import FailedCall
from .session import Session
from .trace.compare import compare
from .trace.export import export
from .trace.progress import ConsoleProgress, Progress, ProgressModel
from .trace.trace import Trace
from .widgets.replay import show

__version__ = "0.1.0"

__all__ = [
    "AdaptiveLimiter",
    "AnswerError",
    "BatchAPI",
    "Budget",
    "BudgetExceeded",
    "BudgetReport",
    "Cache",
    "Cancelled",
    "Checkpoint",
    "Completion",
    "ConfigError",
    "ConsoleProgress",
    "ContextWindowExceeded",
    "Endpoint",
    "FailedCall",
    "FastClient",
    "ForkError",
    "Hedge",
    "ImagesRefused",
    "LMClient",
    "LMConnectionError",
    "LMError",
    "LMRateLimited",
    "LMResponseError",
    "LMTimeout",
    "LimitExceeded",
    "Limits",
    "MapResult",
    "ModelInfo",
    "OpenAIClient",
    "Pricing",
    "Progress",
    "ProgressModel",
    "RLM",
    "RLMError",
    "RLMResult",
    "RetryPolicy",
    "SandboxConfig",
    "SandboxError",
    "SandboxTimeout",
    "Session",
    "Settings",
    "Step",
    "Trace",
    "TraceFormatError",
    "Usage",
    "UsageReport",
    "WorkerError",
    "compare",
    "export",
    "show",
]


def __getattr__(name: str) -> object:
    """``rlm.FastClient`` loads aiohttp and the openai SDK only when asked for."""
    if name == "FastClient":
        from .lm.transport import FastClient

        return FastClient
    raise AttributeError(f"module 'rlm' has no attribute {name!r}")


def load_ipython_extension(ipython: object) -> None:
    """``%load_ext rlm``: registers ``%%rlm`` and ``%rlm_config`` (see ``rlm.magics``)."""
    from .magics import load_ipython_extension as load

    load(ipython)
