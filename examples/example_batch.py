"""Parallel sub-calls with llm_batch: sequential vs parallel, then a full RLM run.

    python examples/example_batch.py                      # offline, simulated model
    OPENAI_API_KEY=... python examples/example_batch.py   # OpenAI
    python examples/example_batch.py --base-url http://127.0.0.1:8080/v1 --model qwen2.5 --sub-model qwen2.5

With no key and no base URL it runs offline against rlm's scripted server on
127.0.0.1 and says so on its first line: the simulated root writes the usual
chunk-and-batch program, and the simulated sub-model answers each chunk
extractively (the sentences that contain the question's key terms, or NONE), so
the answer is really computed from the document, at model-like latency.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time

from rlm import RLM
from rlm.repl import REPLEnv
from rlm.testing import Report, make_report, simulated_lm

QUERY = "Which sections mention the merger?"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-url", default=os.environ.get("OPENAI_BASE_URL"), help="OpenAI-compatible endpoint")
    parser.add_argument("--model", default="gpt-5", help="root model (default gpt-5)")
    parser.add_argument("--sub-model", default="gpt-5-mini", help="sub-call model (default gpt-5-mini)")
    parser.add_argument("--sections", type=int, default=240, help="size of the generated report, in sections")
    parser.add_argument("--chunks", type=int, default=16, help="chunks in the sequential-vs-parallel demo")
    parser.add_argument("--max-concurrent", type=int, default=16, help="llm_batch concurrency")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    simulated = not os.environ.get("OPENAI_API_KEY") and not args.base_url
    server = None
    if simulated:
        print(
            "SIMULATED MODE: no OPENAI_API_KEY or --base-url, so a scripted model on 127.0.0.1 plays "
            "the root and the sub-model (canned root program; extractive sub-model answers computed "
            "from the document; 0.2-0.5 s per sub-call). Set OPENAI_API_KEY or pass --base-url for a real model."
        )
        server = simulated_lm()
        args.base_url, args.model, args.sub_model = server.base_url, "simulated-root", "simulated-sub"
    else:
        print(f"LIVE MODE: root {args.model}, sub-model {args.sub_model}, endpoint {args.base_url or 'OpenAI'}")
    try:
        report = make_report(sections=args.sections)
        print(f"Document: {len(report.text):,} characters, {report.sections} sections.\n")
        compare_sequential_and_parallel(args, report.text)
        run_rlm(args, report)
    finally:
        if server is not None:
            server.stop()
    return 0


def compare_sequential_and_parallel(args: argparse.Namespace, document: str) -> None:
    """The seed's demo: the same prompts through a llm_query loop and through llm_batch."""
    repl = REPLEnv(recursive_model=args.sub_model, context_str=document, base_url=args.base_url)
    setup = repl.code_execution(
        f"size = len(context) // {args.chunks} + 1\n"
        "chunks = [context[i:i + size] for i in range(0, len(context), size)]\n"
        f"prompts = [f'Question: {QUERY}\\nQuote every sentence of the excerpt that helps answer "
        "the question, or reply NONE.\\n\\nExcerpt:\\n' + c for c in chunks]\n"
        "print(len(prompts), 'prompts')"
    )
    print(f"1) {setup.stdout.strip()}, {len(document) // args.chunks:,} characters each")
    sequential = repl.code_execution("seq = [llm_query(p) for p in prompts]")
    print(f"   sequential llm_query loop: {sequential.execution_time:6.2f} s")
    parallel = repl.code_execution(f"par = llm_batch(prompts, max_concurrent={args.max_concurrent})")
    print(f"   parallel llm_batch:        {parallel.execution_time:6.2f} s (max_concurrent={args.max_concurrent})")
    speedup = sequential.execution_time / max(parallel.execution_time, 1e-9)
    same = repl.code_execution("print(seq == par)").stdout.strip() == "True"
    print(f"   speedup: {speedup:.1f}x; same answers in the same order: {same}\n")


def run_rlm(args: argparse.Namespace, report: Report) -> None:
    """A full RLM completion: the root writes its own chunk-and-batch program."""
    rlm = RLM(args.model, args.sub_model, base_url=args.base_url, max_concurrent=args.max_concurrent)
    print(f"2) RLM completion: {QUERY!r}")
    started = time.perf_counter()
    result = rlm.completion(report.text, QUERY)
    elapsed = time.perf_counter() - started
    print(f"   answer ({result.iterations} iterations, {elapsed:.2f} s, {result.usage}):")
    for line in result.answer.splitlines():
        print(f"     {line}")
    expected = list(report.planted["merger"])
    found = sorted({int(n) for n in re.findall(r"Section (\d+)", result.answer)})
    print(f"   sections planted with the merger: {expected}; named in the answer: {found}")


if __name__ == "__main__":
    sys.exit(main())
