"""``rlm serve`` and ``rlm mcp``: flags, then the configuration, then the server in the foreground.

Both read the same settings (a ``--config`` file, then flags over it); a bad setting
exits 2 with one line saying what to change. Logs go to stderr, scrubbed of the
upstream key and the bearer token.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from typing import Any

from ..cli import arguments
from ..errors import ConfigError

_COUNT = arguments.number(int, 1)
_SECONDS = arguments.number(float, 0.001)
_PORT = arguments.number(int, 0, 65_535)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE", type=arguments.input_file(
                        "a TOML file of settings (docs/serve.md)"),
                        help="a TOML file of settings (docs/serve.md); flags override it")
    parser.add_argument("--model", "-m", action="append", metavar="SPEC",
                        help="a model to serve: ROOT (served as rlm/ROOT), NAME=ROOT or NAME=ROOT:SUB; repeatable")
    parser.add_argument("--sub-model", "-s", metavar="MODEL", help="the sub-calls' model (default: the root's)")
    parser.add_argument("--any-model", action="store_true",
                        help="also serve rlm/<any upstream model>, with --sub-model for its sub-calls")
    parser.add_argument("--base-url", metavar="URL", help="the upstream OpenAI-compatible endpoint "
                                                          "(else $OPENAI_BASE_URL); its key comes from $OPENAI_API_KEY")
    parser.add_argument("--root", action="append", metavar="DIR",
                        type=arguments.input_dir("a directory of documents requests may name"),
                        help="a directory whose documents requests may name; repeatable (default: none)")
    parser.add_argument("--sandbox", choices=("kernel", "local"), help="where root code runs (default kernel)")
    parser.add_argument("--allow-local-sandbox", action="store_true",
                        help="accept --sandbox local: model-written code then runs unconfined in this process")
    parser.add_argument("--max-runs", type=_COUNT, metavar="N", help="completions at once (default 4)")
    parser.add_argument("--max-queue", type=_COUNT, metavar="N", help="requests waiting for a run slot (default 16)")
    parser.add_argument("--upstream-concurrency", type=_COUNT, metavar="N",
                        help="model calls in flight, all requests together (default 32)")
    parser.add_argument("--max-cost-usd", type=float, metavar="X", help="per request: stop a run at X dollars")
    parser.add_argument("--max-time-s", type=_SECONDS, metavar="S",
                        help="per request: stop a run after S seconds (600)")
    parser.add_argument("--max-calls", type=_COUNT, metavar="N", help="per request: at most N model calls")
    parser.add_argument("--max-iterations", type=_COUNT, metavar="N", help="per request: root turns (default 20)")
    parser.add_argument("--trace-dir", metavar="DIR", type=arguments.output_dir("a directory for run traces"),
                        help="where run traces are saved "
                                                           "(default ~/.local/state/rlm/traces)")
    parser.add_argument("--no-cache", action="store_true", help="do not cache model calls on disk")
    parser.add_argument("--allow-host", action="append", metavar="NAME",
                        help="a host name requests may be addressed to (default on loopback: 127.0.0.1, localhost, "
                             "[::1]); repeatable")
    parser.add_argument("--allow-origin", action="append", metavar="ORIGIN",
                        help="a web page origin that may call the server, e.g. https://chat.example.com "
                             "(default: the loopback origins); repeatable")
    parser.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))


def serve_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``rlm serve``."""
    _common(parser)
    parser.add_argument("--host", metavar="ADDR", help="address to bind (default 127.0.0.1; any other needs a "
                                                       "bearer token in $RLM_SERVE_TOKEN)")
    parser.add_argument("--port", type=_PORT, metavar="N", help="port (default 8080; 0 picks a free one)")
    parser.add_argument("--grace", type=arguments.number(float, 0), default=30.0, metavar="S",
                        help="on SIGTERM, seconds requests in flight may take to finish (default 30)")


def mcp_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``rlm mcp``."""
    _common(parser)
    parser.add_argument("--http", action="store_true", help="serve streamable HTTP instead of stdio")
    parser.add_argument("--host", metavar="ADDR", help="with --http: address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=_PORT, metavar="N", help="with --http: port (default 8765)")


def config_from(args: argparse.Namespace, port: int = 8080) -> Any:
    """The ``ServeConfig`` the flags and the ``--config`` file say (flags win)."""
    from ..lm.budget import Budget
    from .config import ServeConfig, parse_route, read_settings

    values = read_settings(args.config, take=True)  # the key and token leave os.environ once read
    values.setdefault("port", port)
    given: dict[str, Any] = {
        "host": args.host, "port": args.port, "base_url": args.base_url, "sandbox": args.sandbox,
        "sub_model": args.sub_model, "max_runs": args.max_runs, "max_queue": args.max_queue,
        "upstream_concurrency": args.upstream_concurrency, "max_iterations": args.max_iterations,
        "trace_dir": args.trace_dir, "roots": tuple(args.root) if args.root else None,
        "allow_local": True if args.allow_local_sandbox else None, "any_root": True if args.any_model else None,
        "cache": False if args.no_cache else None,
        "allowed_hosts": tuple(args.allow_host) if args.allow_host else None,
        "allowed_origins": tuple(args.allow_origin) if args.allow_origin else None,
    }
    values.update({k: v for k, v in given.items() if v is not None})
    if args.model:
        values["models"] = tuple(parse_route(spec, values.get("sub_model")) for spec in args.model)
    limits = {"max_cost_usd": args.max_cost_usd, "max_time_s": args.max_time_s, "max_calls": args.max_calls}
    if any(v is not None for v in limits.values()):
        budget = values["budget"]
        current = {k: getattr(budget, k) for k in ("max_calls", "max_tokens", "max_cost_usd", "max_time_s")}
        values["budget"] = Budget(**{**current, **{k: v for k, v in limits.items() if v is not None}})
    return ServeConfig(**values)


def _logging(level: str) -> None:
    """One line per record on stderr; the servers scrub every record of their secrets as it is made."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def serve(args: argparse.Namespace) -> int:
    """``rlm serve``: exit 0 after SIGINT/SIGTERM, 2 for a bad setting, 1 if it cannot listen."""
    if not args.grace >= 0:
        return _fail("serve", f"--grace must be a number of seconds >= 0, got {args.grace}")
    try:
        config = config_from(args)
        from .runs import Service

        _logging(args.log_level)
        service = Service(config)
    except ConfigError as exc:
        return _fail("serve", str(exc))
    from .openai_api import serve as run_server

    def ready(url: str) -> None:
        names = ", ".join(r.name for r in config.models) + (" and rlm/<any model>" if config.any_root else "")
        print(f"rlm serve: {url} serving {names} (sandbox={config.sandbox}; Ctrl-C to stop)", file=sys.stderr,
              flush=True)

    try:
        asyncio.run(_until_signalled(lambda stop: run_server(service, stop, args.grace, ready)))
    except OSError as exc:
        return _fail("serve", f"cannot listen on {config.host}:{config.port}: {exc.strerror or exc}", 1)
    return 0


def mcp(args: argparse.Namespace) -> int:
    """``rlm mcp``: stdio (for an MCP client that starts it) or streamable HTTP."""
    try:
        config = config_from(args, port=8765)
        from .mcp_server import run_mcp

        _logging(args.log_level if args.http else "WARNING")
    except ConfigError as exc:
        return _fail("mcp", str(exc))
    except ImportError as exc:
        return _fail("mcp", str(exc))
    try:
        asyncio.run(_until_signalled(lambda stop: run_mcp(config, stop, http=args.http)))
    except OSError as exc:
        return _fail("mcp", f"cannot listen on {config.host}:{config.port}: {exc.strerror or exc}", 1)
    return 0


async def _until_signalled(main: Any) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await main(stop)


def _fail(command: str, message: str, code: int = 2) -> int:
    print(f"rlm {command}: {message}", file=sys.stderr)
    return code
