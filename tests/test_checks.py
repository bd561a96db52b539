"""Every count and amount rlm takes goes through the one check (rlm.errors.check_int / check_positive).

``True`` is an int to Python but never a count, and a string or NaN never an amount: each
setting refuses them with a ConfigError that names it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from rlm import Budget, ConfigError, SandboxConfig
from rlm.lm.limiter import AdaptiveLimiter
from rlm.serve.config import ModelRoute, ServeConfig
from rlm.testing import ScriptedLM


def serve(**values: Any) -> ServeConfig:
    return ServeConfig(models=(ModelRoute("rlm/r", "r", "s"),), base_url="http://127.0.0.1:9/v1", **values)


SETTINGS: list[tuple[str, Callable[[Any], object]]] = [
    ("SandboxConfig.max_batch", lambda v: SandboxConfig(max_batch=v)),
    ("SandboxConfig.disk_mb", lambda v: SandboxConfig(disk_mb=v)),
    ("SandboxConfig.warm_kernels", lambda v: SandboxConfig(warm_kernels=v)),
    ("SandboxConfig.start_timeout", lambda v: SandboxConfig(start_timeout=v)),
    ("Budget(max_cost_usd=...)", lambda v: Budget(max_cost_usd=v)),
    ("rpm", lambda v: AdaptiveLimiter(4, rpm=v)),
    ("max_runs", lambda v: serve(max_runs=v)),
    ("max_queue", lambda v: serve(max_queue=v)),
    ("queue_timeout_s", lambda v: serve(queue_timeout_s=v)),
    ("stream_chars", lambda v: ScriptedLM(stream_chars=v)),
]


@pytest.mark.parametrize(("name", "make"), SETTINGS, ids=[name for name, _ in SETTINGS])
@pytest.mark.parametrize("value", [True, -1, "3", float("nan")], ids=["bool", "negative", "str", "nan"])
def test_each_setting_refuses_what_is_not_a_count_or_an_amount(name: str, make: Callable[[Any], object],
                                                               value: object) -> None:
    with pytest.raises(ConfigError, match="^" + re.escape(f"{name} must be ")):
        make(value)


def test_a_count_with_a_ceiling_names_both_bounds() -> None:
    with pytest.raises(ConfigError, match=r"^SandboxConfig.warm_kernels must be an int from 0 to 16, got 17$"):
        SandboxConfig(warm_kernels=17)
    assert SandboxConfig(warm_kernels=0).warm_kernels == 0 and SandboxConfig(warm_kernels=16).warm_kernels == 16
