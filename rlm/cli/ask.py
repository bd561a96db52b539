"""``rlm ask``: one completion from the command line; the answer on stdout, progress on stderr.

With no key and no URL it runs the simulated model on 127.0.0.1 and says so. Bad input
(a missing file, an unreachable URL, no key for a real endpoint) exits non-zero with one
line saying what to do, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from rlm.cli import arguments
from rlm.errors import ConfigError

CONTEXT = "a text file or document (PDF, Word, ...), a directory of them, or - (stdin)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``rlm ask``."""
    parser.add_argument("--context", "-c", required=True, metavar="FILE|DIR|-",
                        type=arguments.input_file(CONTEXT, directory=True, binary=arguments.is_document, stdin=True),
                        help="a file (text, PDF, Word, PowerPoint, Excel, HTML, EPUB, notebook), a directory "
                             "(its files keyed by path, documents extracted) or - for stdin")
    parser.add_argument("--query", "-q", required=True, help="the question")
    parser.add_argument("--model", "-m", default=None, help="root model (default gpt-5)")
    parser.add_argument("--sub-model", "-s", default=None, help="model for sub-calls (default: the root model)")
    parser.add_argument("--base-url", default=None, help="OpenAI-compatible endpoint (else $OPENAI_BASE_URL)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON: answer, stopped, usage")
    parser.add_argument("--log-dir", default=None, type=arguments.output_dir("a directory for the trace logs"),
                        help="write the run's trace as JSONL into this directory")
    parser.add_argument("--budget-usd", type=float, default=None, metavar="X", help="stop the run at X dollars")
    parser.add_argument("--sandbox", choices=("kernel", "local"), default="kernel", help="where root code runs")
    parser.add_argument("--estimate", action="store_true",
                        help="print what the run would likely cost (no model call) and exit")


def read_context(where: str) -> Any:
    """The context named on the command line, loaded (a directory is read here, so a bad one fails before any
    model call): stdin's bytes (UTF-8, as a file is read), or a path (a file or a directory, docs/usage.md)."""
    from rlm.repl.contexts import load_context

    if where == "-":
        data = sys.stdin.buffer.read()
        if not data.strip():
            raise ConfigError(f"stdin is empty; pass {CONTEXT}")
        return data
    try:
        return load_context(Path(where))
    except FileNotFoundError as exc:
        raise ConfigError(f"{exc}; pass {CONTEXT}") from None


def run(args: argparse.Namespace) -> int:
    """One completion; exit 0 with the answer, 1 for a run that failed, 2 for bad input."""
    from rlm import RLM, Budget, RLMError

    context = read_context(args.context)
    budget = Budget(max_cost_usd=args.budget_usd) if args.budget_usd is not None else None  # ConfigError: exit 2
    if args.estimate:
        return _estimate(context, args)
    simulated = not os.environ.get("OPENAI_API_KEY") and not (args.base_url or os.environ.get("OPENAI_BASE_URL"))
    server = None
    model, sub_model, base_url = args.model or "gpt-5", args.sub_model, args.base_url
    if not simulated and not os.environ.get("OPENAI_API_KEY") and (base_url or os.environ.get("OPENAI_BASE_URL", "")) \
            .startswith("https://api.openai.com"):
        return _fail("OpenAI's endpoint needs a key: set OPENAI_API_KEY, or pass --base-url for a local server", 2)
    if simulated:
        from rlm.testing import simulated_lm

        print("rlm ask: SIMULATED MODE (no OPENAI_API_KEY or --base-url): a scripted model on 127.0.0.1 plays the "
              "root and the sub-model; set OPENAI_API_KEY or pass --base-url for a real model.", file=sys.stderr)
        server = simulated_lm(latency=0.0, root_latency=0.0)
        model, sub_model, base_url = "simulated-root", "simulated-sub", server.base_url
    try:
        with RLM(model, sub_model, base_url=base_url, api_key="simulated" if simulated else None,
                 sandbox=args.sandbox, budget=budget, log_dir=args.log_dir, progress=True) as rlm:
            result = rlm.completion(context, args.query, view=False)
    except (FileNotFoundError, PermissionError, TypeError) as exc:  # the path, checked as the run starts
        return _fail(f"{exc}; pass --context FILE, DIR or - (stdin)", 2)
    except RLMError as exc:
        return _fail(f"{type(exc).__name__}: {_one_line(str(exc))}", 1)
    except KeyboardInterrupt:
        return _fail("interrupted", 130)
    finally:
        if server is not None:
            server.stop()
    if args.json:
        print(json.dumps(_as_json(result), ensure_ascii=False))
    else:
        print(result.answer)
    return 0 if result.ok else 1


def _estimate(context: Any, args: argparse.Namespace) -> int:
    """``--estimate``: the likely cost, from the context's tokens and the pricing table; no endpoint needed."""
    from rlm.core.estimate import estimate
    from rlm.lm.pricing import Pricing

    model = args.model or "gpt-5"
    found = estimate(context, args.query, model=model, sub_model=args.sub_model or model, pricing=Pricing(),
                     max_iterations=20, sandbox=args.sandbox)
    if args.json:
        print(json.dumps({"tokens": found.tokens, "root_prompt_tokens": found.root_prompt_tokens,
                          "sub_calls": found.sub_calls, "total_tokens": found.total_tokens,
                          "cost_usd": found.cost_usd}))
    else:
        print(found)
    return 0


def _as_json(result: Any) -> dict[str, Any]:
    usage = result.usage
    return {"answer": result.answer, "stopped": result.stopped, "ok": result.ok, "error": result.error,
            "iterations": result.iterations, "seconds": round(result.seconds, 3),
            "usage": {"calls": usage.calls, "prompt_tokens": usage.prompt_tokens,
                      "completion_tokens": usage.completion_tokens, "cost_usd": usage.cost_usd},
            "log": str(result.trace.path) if getattr(result.trace, "path", None) else None}


def _one_line(text: str) -> str:
    return " ".join(text.split())[:600]


def _fail(message: str, code: int) -> int:
    print(f"rlm ask: {message}", file=sys.stderr)
    return code
