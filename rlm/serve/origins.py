"""Which ``Host`` and ``Origin`` a request may carry: the server's answer to web pages.

A browser lets any page send a "simple" cross-origin POST (``text/plain``) without asking
first, and DNS rebinding points a page's own name at 127.0.0.1, so the page can read the
answers. Two checks close both, the same for ``rlm serve`` and ``rlm mcp --http``:

- a server bound to loopback answers only requests addressed to a loopback name
  (``127.0.0.1``, ``localhost``, ``[::1]``, any port): a rebound name is refused (421);
- a request that carries an ``Origin`` (browsers send it) must come from an allowed one
  (by default the loopback origins, as the MCP SDK allows): any other page is refused (403).

Clients that are not browsers send no ``Origin`` and are not affected. Both lists are
settings (``allowed_hosts``, ``allowed_origins``) for a server behind a proxy or used
from a web app of the operator's.
"""

from __future__ import annotations

from dataclasses import dataclass

from .config import ServeConfig, is_loopback
from .errors import RequestError

#: Host names a loopback server answers to by default.
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")
#: Origins allowed by default: pages served from this machine's loopback addresses (``:*``: any port).
LOOPBACK_ORIGINS = ("http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*")


@dataclass(frozen=True)
class Guard:
    """``hosts``: the host names requests may be addressed to (empty: any); ``origins``: allowed Origins."""

    hosts: tuple[str, ...]
    origins: tuple[str, ...]

    def refusal(self, host: str | None, origin: str | None) -> RequestError | None:
        """Why a request with these headers is refused, or None when it may go on."""
        if self.hosts and _host_name(host or "") not in self.hosts:
            return RequestError(421, f"this server does not answer requests for host {host!r} (it answers "
                                     f"{', '.join(self.hosts)}; allowed_hosts adds names)", code="host_not_allowed")
        if origin is not None and not any(_matches(origin.lower(), allowed) for allowed in self.origins):
            return RequestError(403, f"requests from web pages at {origin!r} are not allowed (allowed_origins "
                                     "lists the pages that may call this server)", code="origin_not_allowed")
        return None


def guard(config: ServeConfig) -> Guard:
    """The server's guard; settings left unset (None) take the defaults above.

    A server bound to another address than loopback answers any Host unless
    ``allowed_hosts`` names some (its token keeps strangers out; a proxy in front decides
    the names).
    """
    hosts = config.allowed_hosts
    if hosts is None:
        hosts = LOOPBACK_HOSTS if is_loopback(config.host) else ()
    origins = LOOPBACK_ORIGINS if config.allowed_origins is None else config.allowed_origins
    return Guard(tuple(h.lower() for h in hosts), tuple(o.lower().rstrip("/") for o in origins))


def _host_name(header: str) -> str:
    """``localhost:8080`` -> ``localhost``; ``[::1]:8080`` -> ``[::1]``."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[: header.find("]") + 1] if "]" in header else header
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


def _matches(origin: str, allowed: str) -> bool:
    """An exact origin, or ``scheme://host:*``: that host on any port (or none)."""
    if origin == allowed:
        return True
    if allowed.endswith(":*"):
        base = allowed[:-2]
        return origin == base or (origin.startswith(base + ":") and origin[len(base) + 1:].isdigit())
    return False
