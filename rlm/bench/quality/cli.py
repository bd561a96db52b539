"""``rlm bench sniah|oolong|pairs|codeqa``: every method on the same items, a JSONL file and a table.

With no key and no URL the run is a harness check: a scripted model on 127.0.0.1 plays
every method's model with a policy that writes the right program (``--offline-policy
oracle``) or a wrong one, so the table proves the benchmark, never a model's quality.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ...cli import arguments
from .items import parse_size, size_label
from .runner import Task

DEFAULT_SIZES = "8k,32k,128k"
HARNESS_BANNER = (
    "HARNESS CHECK, NOT MODEL QUALITY: no OPENAI_API_KEY and no --base-url, so a scripted model on 127.0.0.1 "
    "plays every method's model with the {policy} policy. These rows test the benchmark (generators, methods, "
    "the RLM loop and sandbox, the scorers); set OPENAI_API_KEY or pass --base-url to measure a model."
)


def _methods(text: str) -> list[str]:
    from .methods import METHODS

    chosen = [m.strip() for m in text.split(",") if m.strip()]
    unknown = [m for m in chosen if m not in METHODS]
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(f"methods are a comma-separated choice of {', '.join(METHODS)}")
    return list(dict.fromkeys(chosen))


def _sizes(text: str) -> list[int]:
    try:
        return sorted({parse_size(part) for part in text.split(",") if part.strip()})
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_common(parser: argparse.ArgumentParser) -> None:
    """The arguments every quality task takes."""
    parser.add_argument("--model", "-m", default="gpt-5", help="root model, and the base and summary model (gpt-5)")
    parser.add_argument("--sub-model", "-s", default=None, help="model of sub-calls (default: --model)")
    parser.add_argument("--base-url", default=None, help="OpenAI-compatible endpoint (else $OPENAI_BASE_URL)")
    parser.add_argument("--n", type=int, default=20, help="items per size and seed (20)")
    parser.add_argument("--sizes", type=_sizes, default=_sizes(DEFAULT_SIZES), metavar="LIST",
                        help=f"context sizes in tokens, k = 1024, m = 1024² ({DEFAULT_SIZES}; up to 1m and more)")
    parser.add_argument("--methods", type=_methods, default=None, metavar="LIST",
                        help="base,summary,program,rlm-query,rlm-batch (default: all)")
    parser.add_argument("--seeds", type=int, default=3, help="item sets per size (3)")
    parser.add_argument("--repeats", type=int, default=1, help="runs of each method on each item (1)")
    parser.add_argument("--out", default="bench-results", metavar="DIR",
                        type=arguments.output_dir("a directory for the results"),
                        help="where TASK.jsonl goes; a rerun continues it (bench-results)")
    parser.add_argument("--sandbox", choices=("kernel", "local"), default="kernel", help="where root code runs")
    parser.add_argument("--window", type=int, default=None, metavar="TOKENS",
                        help="the base model's context window (default: rlm's price table, then /models)")
    parser.add_argument("--max-iterations", type=int, default=20, help="root turns per RLM run (20)")
    parser.add_argument("--budget-usd", type=float, default=None, metavar="X", help="stop an RLM run at X dollars")
    parser.add_argument("--timeout", type=float, default=1800.0, metavar="SECONDS", help="per run (1800)")
    parser.add_argument("--parallel", type=int, default=1, help="runs at once (1: timings are not shared)")
    parser.add_argument("--offline-policy", choices=("oracle", "wrong"), default="oracle",
                        help="harness check only: the scripted model writes the right program, or a wrong one")
    parser.add_argument("--sim-latency", type=float, default=0.0, metavar="SECONDS",
                        help="harness check only: the scripted model's delay per reply")
    parser.add_argument("--prompt", action="append", default=None, metavar="FILE",
                        help="a system prompt template for the RLM methods; give two or more to run each on the "
                             "same items and compare them pairwise (bootstrap interval of the score difference)")
    parser.add_argument("--log-dir", default=None, metavar="DIR",
                        help="write each RLM run's trace log here; `rlm view` of the results file then shows "
                             "every method's run of a question side by side")


def _prompts(files: list[str] | None) -> tuple[tuple[str, str], ...]:
    """(name, template) of each ``--prompt`` file, named by its file name; ``ConfigError`` for a bad one."""
    from ...core.template import check_prompt, load_prompt
    from ...errors import ConfigError

    out: dict[str, str] = {}
    for file in files or ():
        name = Path(file).stem
        while name in out:
            name += "'"
        try:
            out[name] = check_prompt(load_prompt(Path(file)))
        except ConfigError as exc:
            raise ConfigError(f"--prompt {file}: {exc}") from None
    return tuple(out.items())


def run_task(args: argparse.Namespace, task: Task) -> int:
    """Run the plan on the command line and print the table.

    Exit code 0 when every run finished, 1 when some run failed, 2 for bad input.
    """
    from ... import runtime
    from ...errors import ConfigError
    from ...trace.results import label
    from . import paired
    from .methods import METHODS, Methods, Target
    from .runner import Plan, ResultsFile, execute
    from .table import markdown, rows

    for name in ("n", "seeds", "repeats", "parallel", "max_iterations"):
        if getattr(args, name) < 1:
            return fail(task.name, f"--{name.replace('_', '-')} must be at least 1")
    if args.timeout <= 0 or (args.budget_usd is not None and args.budget_usd <= 0):
        return fail(task.name, "--timeout and --budget-usd must be more than 0")
    try:
        prompts = _prompts(args.prompt)
    except ConfigError as exc:
        return fail(task.name, str(exc))
    base_url = args.base_url or os.environ.get("OPENAI_BASE_URL")
    key = os.environ.get("OPENAI_API_KEY")
    harness = not key and not base_url
    if not harness and not key and str(base_url).startswith("https://api.openai.com"):
        return fail(task.name, "OpenAI's endpoint needs a key: set OPENAI_API_KEY, or pass --base-url")
    server = None
    if harness:
        from .policies import HARNESS_ROOT, HARNESS_SUB, harness_lm

        print(HARNESS_BANNER.format(policy=args.offline_policy), file=sys.stderr)
        server = harness_lm(task.name, wrong=args.offline_policy == "wrong", latency=args.sim_latency)
        target = Target(HARNESS_ROOT, HARNESS_SUB, server.base_url, "harness", args.window, args.sandbox,
                        args.max_iterations, None, args.timeout, args.log_dir)
        identity = f"{HARNESS_ROOT}|{HARNESS_SUB}|harness:{args.offline_policy}"
    else:
        target = Target(args.model, args.sub_model or args.model, base_url, key, args.window, args.sandbox,
                        args.max_iterations, args.budget_usd, args.timeout, args.log_dir)
        identity = f"{target.model}|{target.sub_model}|{base_url or 'openai'}"
    methods = args.methods or list(METHODS)
    plan = Plan(task, args.sizes, args.seeds, args.n, methods, args.repeats, identity, prompts)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = ResultsFile(out / f"{task.name}.jsonl")
    done_before = sum(k in results for k in plan.run_keys())
    if done_before:
        print(f"rlm bench {task.name}: {done_before} of {len(plan.run_keys())} runs already in {results.path}; "
              "continuing", file=sys.stderr)
    runner = Methods(target)
    try:
        runtime.run(execute(plan, runner, results, parallel=args.parallel,
                            report=lambda line: print(line, file=sys.stderr, flush=True)))
    except ConfigError as exc:
        return fail(task.name, str(exc))
    except KeyboardInterrupt:
        return fail(task.name, f"interrupted; the same command continues from {results.path}", 130)
    finally:
        runtime.run(runner.aclose())
        if server is not None:
            server.stop()
    mine = [results.done[k] for k in plan.run_keys() if k in results]
    heading = f"## rlm bench {task.name}: {', '.join(size_label(s) for s in plan.sizes)}; "
    heading += f"model {target.model}, sub-model {target.sub_model}"
    if harness:
        heading = f"{heading} (HARNESS CHECK, {args.offline_policy} policy: not model quality)"
    print(heading)
    print()
    print(markdown(rows(mine, list(dict.fromkeys(label({"method": m, "prompt": p}) for m, p in plan.variants())),
                        plan.sizes)))
    print()
    if len(prompts) > 1:
        print(f"### The prompts compared, per method ({', '.join(name for name, _ in prompts)})")
        print()
        print(paired.markdown(paired.compare_variants(mine, "prompt")))
        print()
    print(f"results: {results.path} ({len(mine)} runs)")
    return 1 if any(r["error"] for r in mine) else 0


def fail(task: str, message: str, code: int = 2) -> int:
    """Say what went wrong on one line of stderr, as every ``rlm bench`` task does; returns the exit code."""
    print(f"rlm bench {task}: {message}", file=sys.stderr)
    return code
