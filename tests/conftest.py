"""Shared pytest fixtures. ``scripted_lm`` comes from rlm's own pytest plugin (``rlm.testing.pytest_plugin``)."""

from __future__ import annotations

import importlib.util
import os
import shutil
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from rlm import RLM, Endpoint
from rlm.testing import ScriptedLM


@pytest.fixture(params=["local", "kernel"])
def make(request: pytest.FixtureRequest) -> Callable[..., RLM]:
    """Builds an RLM on a scripted server, in each sandbox; no retries unless ``endpoint=`` says."""
    def build(lm: ScriptedLM, **kwargs: Any) -> RLM:
        kwargs.setdefault("endpoint", Endpoint(retries=0))
        return RLM("root", "sub", base_url=lm.base_url, api_key="k", sandbox=request.param, **kwargs)

    return build


#: Set by .ci/run's second pass, which forces one isolation level through $RLM_SANDBOX_ISOLATION.
DEFAULT_CONFIG_ONLY = "RLM_TESTS_DEFAULT_CONFIG_ONLY"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """In CI's second pass, run only the tests on the default sandbox config.

    A test that names its isolation level (``mode`` or the security ``sandbox`` fixture)
    ran at every level, that one included, in the first pass; only the default config
    is what the forced level changes.
    """
    if not os.environ.get(DEFAULT_CONFIG_ONLY):
        return
    explicit = [i for i in items if _named_level(i)]
    if explicit:
        config.hook.pytest_deselected(items=explicit)
        items[:] = [i for i in items if i not in explicit]


def _named_level(item: pytest.Item) -> bool:
    callspec = getattr(item, "callspec", None)
    params = callspec.params if callspec is not None else {}
    return any(params.get(key) in ("bwrap", "uid", "none") for key in ("mode", "sandbox"))


def _ci_must_run(item: pytest.Item) -> str | None:
    """Why CI must run ``item`` on this machine, or None: there, a skip of it fails the run."""
    path = item.path.as_posix()
    if path.endswith(("/tests/test_lint.py", "/tests/test_typing.py")):
        return "the ruff and mypy gates"
    if "/tests/browser/" in path and shutil.which("chromium"):
        return "chromium is installed"
    if path.endswith("/tests/test_ray_map.py") and importlib.util.find_spec("ray") is not None:
        return "Ray is installed"
    if path.endswith("/tests/serve/test_litellm_client.py") and importlib.util.find_spec("litellm") is not None:
        return "LiteLLM is installed"
    return None


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """In CI (``$CI`` set, as .ci/run does), a test CI is meant to run may not skip: it fails, saying why."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if not report.skipped or os.environ.get("CI", "").lower() in ("", "0", "false"):
        return
    why = _ci_must_run(item)
    if why is not None:
        reason = report.longrepr[-1] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"CI must run {item.nodeid} ({why}), but it skipped: {reason}"
