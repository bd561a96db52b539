"""rlm: Recursive Language Models that explore huge contexts from a REPL, Jupyter-native.

Example::

    from rlm import RLM
    result = RLM(model="gpt-5", sub_model="gpt-5-mini").completion(context=text, query="...")
"""

from .core.result import RLMResult, Step, UsageReport
from .core.rlm import RLM
from .errors import (
    Cancelled,
    ConfigError,
    LimitExceeded,
    LMConnectionError,
    LMError,
    LMRateLimited,
    LMResponseError,
    LMTimeout,
    RLMError,
    SandboxError,
    SandboxTimeout,
)
from .lm.client import LMClient, OpenAIClient
from .lm.types import Completion, FailedCall, Usage

__version__ = "0.1.0"

__all__ = [
    "Cancelled",
    "Completion",
    "ConfigError",
    "FailedCall",
    "LMClient",
    "LMConnectionError",
    "LMError",
    "LMRateLimited",
    "LMResponseError",
    "LMTimeout",
    "LimitExceeded",
    "OpenAIClient",
    "RLM",
    "RLMError",
    "RLMResult",
    "SandboxError",
    "SandboxTimeout",
    "Step",
    "Usage",
    "UsageReport",
]
