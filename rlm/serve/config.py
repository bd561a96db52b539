"""What a server is allowed to do, said once: models, upstream, sandbox, document roots, limits.

A small TOML file (``rlm serve --config serve.toml``) or the command line's flags build
one frozen ``ServeConfig``; every request is checked against it and none can change it::

    [upstream]
    base_url = "http://127.0.0.1:8000/v1"
    api_key_env = "OPENAI_API_KEY"        # the key itself never goes in this file
    max_concurrent = 32                   # model calls in flight, all requests together

    [server]
    roots = ["/srv/documents"]            # document paths must lie under one of these
    max_runs = 4                          # completions at once; more wait in a queue ...
    max_queue = 16                        # ... of this length, beyond which 429

    [limits]                              # per request; a request cannot raise them
    max_cost_usd = 0.50
    max_time_s = 300

    [models."rlm/gpt-5"]
    root = "gpt-5"
    sub = "gpt-5-mini"
"""

from __future__ import annotations

import ipaddress
import os
import sys
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError, check_int, check_positive
from ..lm.budget import Budget
from ..trace.redact import url_secrets

#: Served names for ``rlm/<root>`` routes: the prefix a client puts before an upstream model.
PREFIX = "rlm/"
SANDBOXES = ("kernel", "local")
#: What a config file's [server] section may set (besides token_env, allow_local_sandbox, any_model).
SERVER_KEYS = ("host", "port", "roots", "sandbox", "allow_local", "any_root", "max_runs", "max_queue",
               "queue_timeout_s", "max_body_mb", "trace_dir", "cache", "state_dir", "allowed_hosts", "allowed_origins")
#: Where traces go when the configuration names no directory.
DEFAULT_TRACE_DIR = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state") / "rlm" / "traces"


@dataclass(frozen=True)
class ModelRoute:
    """One served model name: the RLM's root model and the model of its sub-calls."""

    name: str
    root: str
    sub: str

    def __post_init__(self) -> None:
        for label in ("name", "root", "sub"):
            value = getattr(self, label)
            if not isinstance(value, str) or not value.strip():
                raise ConfigError(f"a model route's {label} must be a non-empty string, got {value!r}")


@dataclass(frozen=True)
class ServeConfig:
    """One server's settings. ``api_key`` and ``token`` never appear in ``repr`` or in a log line.

    ``models``: the served names; with ``any_root`` a client may also ask for
    ``rlm/<any upstream model>`` (its sub-calls then use ``sub_model``). ``sandbox="local"``
    runs model-written code inside the server process and is refused unless
    ``allow_local`` says so. ``roots``: directories document paths must lie under (none:
    no paths at all). ``max_runs`` completions run at once, ``max_queue`` more wait
    (up to ``queue_timeout_s``) and the rest get 429. ``upstream_concurrency``, ``rpm``
    and ``tpm`` cap the model calls of every run together. ``budget``,
    ``max_iterations``, ``max_depth`` and ``step_timeout`` bound each request;
    ``max_body_mb`` a request's size and ``max_context_chars`` its context (413 beyond).
    ``allowed_hosts``: the names requests may be addressed to (None: the loopback names
    when bound to loopback, any otherwise); ``allowed_origins``: the web pages that may
    call the server (None: the loopback origins); see ``rlm.serve.origins``.
    """

    models: tuple[ModelRoute, ...] = ()
    sub_model: str | None = None
    any_root: bool = False
    base_url: str | None = None
    api_key: str | None = field(default=None, repr=False)
    host: str = "127.0.0.1"
    port: int = 8080
    token: str | None = field(default=None, repr=False)
    sandbox: str = "kernel"
    allow_local: bool = False
    roots: tuple[str, ...] = ()
    max_runs: int = 4
    max_queue: int = 16
    queue_timeout_s: float = 60.0
    upstream_concurrency: int = 32
    rpm: float | None = None
    tpm: float | None = None
    budget: Budget = field(default_factory=lambda: Budget(max_time_s=600.0))
    max_iterations: int = 20
    max_depth: int = 1
    step_timeout: float = 120.0
    max_body_mb: float = 32.0
    max_context_chars: int = 20_000_000
    trace_dir: str | None = str(DEFAULT_TRACE_DIR)
    cache: bool | str = True
    state_dir: str | None = None
    allowed_hosts: tuple[str, ...] | None = None
    allowed_origins: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.sandbox not in SANDBOXES:
            raise ConfigError(f"sandbox={self.sandbox!r}: choose one of {SANDBOXES}")
        if self.sandbox == "local" and not self.allow_local:
            raise ConfigError("sandbox='local' runs model-written code inside the server process, unconfined; use "
                              "the kernel sandbox, or say --allow-local-sandbox (allow_local = true) if you mean it")
        for name in ("max_runs", "upstream_concurrency", "max_iterations", "max_depth", "max_context_chars"):
            check_int(name, getattr(self, name))
        check_int("max_queue", self.max_queue, 0)
        for name in ("queue_timeout_s", "step_timeout", "max_body_mb"):
            check_positive(name, getattr(self, name))
        if not isinstance(self.budget, Budget):
            raise ConfigError(f"budget must be a rlm.Budget, got {type(self.budget).__name__}")
        if not self.models and not self.any_root:
            raise ConfigError("no model to serve: name one (--model gpt-5, or [models.NAME] in the config file), "
                              "or allow any rlm/<model> with --any-model")
        if self.any_root and not self.sub_model:
            raise ConfigError("--any-model needs a sub-model for the sub-calls: pass --sub-model")
        names = [m.name for m in self.models]
        if len(set(names)) != len(names):
            raise ConfigError(f"model names must be unique, got {names}")
        if self.token is not None and len(self.token) < 16:
            raise ConfigError("the bearer token must be at least 16 characters (e.g. `openssl rand -hex 32`)")
        if not is_loopback(self.host) and not self.token:
            raise ConfigError(f"binding {self.host!r} exposes the server beyond this machine: set a bearer token "
                              "($RLM_SERVE_TOKEN, or token_env in the config file), or bind 127.0.0.1")
        object.__setattr__(self, "roots", tuple(_root(r) for r in self.roots))
        for name in ("allowed_hosts", "allowed_origins"):
            value = getattr(self, name)
            if value is not None:
                if isinstance(value, str) or not all(isinstance(v, str) and v for v in value):
                    raise ConfigError(f"{name} must be a list of non-empty strings, got {value!r}")
                object.__setattr__(self, name, tuple(value))
        if not self.api_key and (self.base_url is None or self.base_url.startswith("https://api.openai.com")):
            raise ConfigError("the upstream is OpenAI's API and no key is set: export OPENAI_API_KEY (or name "
                              "another variable with api_key_env), or pass --base-url for a local server")

    def route(self, name: str) -> ModelRoute | None:
        """The route a client's model name means, or None for a name this server does not serve."""
        for route in self.models:
            if route.name == name:
                return route
        if self.any_root and self.sub_model and name.startswith(PREFIX) and len(name) > len(PREFIX):
            return ModelRoute(name, name[len(PREFIX):], self.sub_model)
        return None

    @property
    def secrets(self) -> tuple[str, ...]:
        """What must never leave the server: the upstream key, the bearer token, the upstream URL's password."""
        return tuple(s for s in (self.api_key, self.token) if s) + url_secrets(self.base_url)

    @property
    def state(self) -> Path:
        """Where the server keeps maps' checkpoints and results."""
        if self.state_dir:
            return Path(self.state_dir)
        return Path(self.trace_dir or DEFAULT_TRACE_DIR).parent / "serve"


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and localhost; an empty host or 0.0.0.0 listens everywhere."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _root(path: str) -> str:
    """An allowed root as the real, absolute directory it names (a link in the root itself is the admin's)."""
    real = os.path.realpath(os.path.expanduser(str(path)))
    if not os.path.isdir(real):
        raise ConfigError(f"allowed root {path!r} is not a directory")
    return real


def parse_route(spec: str, sub_model: str | None) -> ModelRoute:
    """``--model`` values: ``gpt-5`` (served as rlm/gpt-5), ``NAME=ROOT`` or ``NAME=ROOT:SUB``."""
    name, _, target = spec.partition("=")
    if not target:
        name, target = PREFIX + spec, spec
    root, _, sub = target.partition(":")
    sub = sub or sub_model or root
    return ModelRoute(name.strip(), root.strip(), sub.strip())


def load_config(path: str | os.PathLike[str] | None = None, environ: MutableMapping[str, str] | None = None,
                **overrides: Any) -> ServeConfig:
    """A ``ServeConfig`` from a TOML file (optional), the environment's secrets and overrides (None: not given).

    Secrets come from the environment only: ``api_key_env`` (default ``OPENAI_API_KEY``)
    and ``token_env`` (default ``RLM_SERVE_TOKEN``) name the variables.
    """
    values = read_settings(path, environ)
    values.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return ServeConfig(**values)
    except TypeError as exc:
        raise ConfigError(f"{path or 'configuration'}: {exc}") from None


def read_settings(path: str | os.PathLike[str] | None, environ: MutableMapping[str, str] | None = None, *,
                  take: bool = False) -> dict[str, Any]:
    """The settings a file and the environment give, as ``ServeConfig`` keyword arguments.

    ``take=True`` removes the key's and the token's variables from the environment once
    read (the servers do): code that runs in this process later (model code under
    ``sandbox="local"``, a library) does not find them there.
    """
    env = os.environ if environ is None else environ
    data = _read_toml(path) if path is not None else {}
    unknown = set(data) - {"upstream", "server", "limits", "models"}
    if unknown:
        raise ConfigError(f"{path}: unknown section(s) {sorted(unknown)}; expected upstream, server, limits, models")
    upstream, server, limits = (dict(data.get(k, {})) for k in ("upstream", "server", "limits"))
    if "api_key" in upstream:
        raise ConfigError(f"{path}: put the upstream key in the environment and name it with api_key_env, "
                          "not in the file")
    values: dict[str, Any] = {}
    values["base_url"] = upstream.pop("base_url", None) or env.get("OPENAI_BASE_URL")
    key_var, token_var = upstream.pop("api_key_env", "OPENAI_API_KEY"), server.pop("token_env", "RLM_SERVE_TOKEN")
    values["api_key"] = (env.pop(key_var, None) if take else env.get(key_var)) or None
    values["token"] = (env.pop(token_var, None) if take else env.get(token_var)) or None
    if "max_concurrent" in upstream:
        values["upstream_concurrency"] = upstream.pop("max_concurrent")
    values.update(_take(upstream, ("rpm", "tpm", "sub_model"), "upstream", path))
    for given, name in (("allow_local_sandbox", "allow_local"), ("any_model", "any_root")):
        if given in server:
            server[name] = server.pop(given)
    values.update(_take(server, SERVER_KEYS, "server", path))
    for name in ("roots", "allowed_hosts", "allowed_origins"):
        if isinstance(values.get(name), list):
            values[name] = tuple(values[name])
    budget = {k: limits.pop(k) for k in ("max_calls", "max_tokens", "max_cost_usd", "max_time_s") if k in limits}
    values.update(_take(limits, ("max_iterations", "max_depth", "step_timeout", "max_context_chars"), "limits", path))
    budget.setdefault("max_time_s", 600.0)
    values["budget"] = Budget(**budget)
    models = data.get("models", {})
    if not isinstance(models, dict) or not all(isinstance(spec, dict) for spec in models.values()):
        raise ConfigError(f'{path}: [models] holds tables: [models."rlm/gpt-5"] root = "gpt-5", sub = "gpt-5-mini"')
    default_sub = values.get("sub_model")
    values["models"] = tuple(ModelRoute(name, str(spec.get("root", "")), str(spec.get("sub") or default_sub
                                                                          or spec.get("root", "")))
                             for name, spec in models.items())
    return values


def _take(section: dict[str, Any], allowed: tuple[str, ...], name: str, path: object) -> dict[str, Any]:
    taken = {k: section.pop(k) for k in allowed if k in section}
    if section:
        raise ConfigError(f"{path}: unknown key(s) in [{name}]: {sorted(section)}; known: {sorted(allowed)}")
    return taken


def _read_toml(path: str | os.PathLike[str]) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:
        try:
            import tomli as tomllib
        except ImportError:
            raise ConfigError("reading a TOML config on Python 3.10 needs tomli: pip install 'rlm[serve]'") from None
    try:
        with open(path, "rb") as fh:
            return dict(tomllib.load(fh))
    except OSError as exc:
        raise ConfigError(f"cannot read the config file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
