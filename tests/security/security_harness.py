"""A hostile-code harness: one RLM per sandbox mode, a canary API key, checks after every attack.

Every attack runs as a real completion through the openai client against ScriptedLM:
step 1 is the hostile code, step 2 must work (``print('alive')``), then FINAL.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from sandbox_modes import MODES, sandbox_config

from rlm import RLM, Endpoint, Limits, RLMResult
from rlm.repl.sandbox.config import Isolation
from rlm.repl.sandbox.pool import KernelPool
from rlm.testing import ScriptedLM

CANARY = "sk-rlm-canary-7f3c9e1d2b4a"
STEP_TIMEOUT = 2.0
#: Small limits keep the memory and disk attacks cheap on a shared 2-core machine.
CONFIG = {"memory_mb": 1536, "max_file_mb": 64, "interrupt_grace": 1.0, "max_processes": 96}
#: The disk limit, where a level can hold one (isolation='none' refuses to start with it set).
DISK_MB = 128


@dataclass
class Sandbox:
    """One RLM with the kernel sandbox in one isolation mode."""

    rlm: RLM
    lm: ScriptedLM
    pool: KernelPool
    isolation: Isolation

    def require(self, *flags: str) -> None:
        """Skip unless this mode has one of ``flags`` (docs/security.md says what is open without)."""
        if not any(getattr(self.isolation, f) for f in flags):
            pytest.skip(f"not contained with sandbox={self.isolation.mode} here (needs one of {flags}); "
                        "see docs/security.md")

    def require_confined(self) -> None:
        """Signal, fork and memory attacks run only where the kernel has its own pid namespace or uid.

        Unconfined, as root, a mistake in the sandbox would reach every process on the
        machine (``os.kill(-1, 9)`` once did).
        """
        self.require("pid_namespace", "separate_user")

    def attack(self, code: str, then: str = "print('alive')") -> RLMResult:
        self.lm.root = [f"```repl\n{code}\n```", f"```repl\n{then}\n```", "FINAL(done)"]
        return self.rlm.completion("the context", "q")

    def step(self, result: RLMResult, n: int = 0):
        return result.steps[n].outputs[0]

    def check_survived(self, result: RLMResult) -> None:
        """The host is alive (we are), the next step worked, no secret leaked, nothing left running."""
        assert result.answer == "done"
        assert self.step(result, 1).stdout == "alive\n", self.step(result, 1)
        text = "".join(f"{o.stdout}{o.stderr}{o.error}" for s in result.steps for o in s.outputs)
        text += str(result.trace) + result.answer
        assert CANARY not in text
        for kernel in self.pool.kernels:
            assert kernel.strays() == [], "processes started by root code outlived the step"


@pytest.fixture(scope="module", params=MODES)
def sandbox(request: pytest.FixtureRequest) -> Iterator[Sandbox]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OPENAI_API_KEY", CANARY)
        mp.setenv("MY_SERVICE_TOKEN", CANARY)
        with ScriptedLM() as lm:
            limits = {**CONFIG, "disk_mb": DISK_MB} if request.param in ("bwrap", "uid") else CONFIG
            config = sandbox_config(request.param, **limits)
            with RLM("root", "sub", base_url=lm.base_url, api_key=CANARY, sandbox=config,
                    limits=Limits(step_timeout=STEP_TIMEOUT), endpoint=Endpoint(retries=0)) as rlm:
                assert rlm.kernels is not None
                yield Sandbox(rlm, lm, rlm.kernels, rlm.kernels.isolation)


@pytest.fixture
def outside_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A host directory the sandbox must neither read nor write (root-only, like a home dir)."""
    path = tmp_path_factory.mktemp("outside")
    (path / "secret.txt").write_text(CANARY)
    os.chmod(path / "secret.txt", 0o600)
    os.chmod(path, 0o700)
    yield str(path)
