"""One peer measurement, run inside the peers' own virtual environment.

Run as a script by ``rlm.bench.peers`` with that environment's Python; it imports
nothing from our package (rlms installs a top-level module also named ``rlm``).
It times one batched call made from the peer's REPL, the way root code makes it,
and prints ``RESULT {json}`` as its last line.
"""

from __future__ import annotations

import inspect
import json
import sys
import time
from importlib.metadata import version
from typing import Any

# Timed inside the REPL, around the batched call only, as our own benchmark times llm_batch.
PROGRAM = """
import json, time
prompts = [{tag!r} + " item " + str(i) for i in range({n})]
started = time.perf_counter()
replies = llm_query_batched(prompts)
seconds = time.perf_counter() - started
wrong = sum(r != p[:80] for p, r in zip(prompts, replies))
print("TIMING " + json.dumps({{"seconds": seconds, "wrong": wrong, "n": len(replies), "sample": replies[0][:120]}}))
"""


def _timing(stdout: str) -> dict[str, Any]:
    for line in stdout.splitlines():
        if line.startswith("TIMING "):
            return dict(json.loads(line[len("TIMING ") :]))
    raise RuntimeError(f"the peer's REPL printed no timing: {stdout[-500:]!r}")


def run_rlms(base_url: str, n: int | None, concurrency: int | None, tag: str, waves: int) -> dict[str, Any]:
    """rlms: ``llm_query_batched`` in its LocalREPL, through its LMHandler, as ``RLM.completion`` wires it."""
    from rlm.clients.openai import OpenAIClient  # type: ignore[import-not-found]  # the peers' own venv
    from rlm.core.lm_handler import LMHandler  # type: ignore[import-not-found]  # the peers' own venv
    from rlm.environments.local_repl import LocalREPL  # type: ignore[import-not-found]  # the peers' own venv

    default = inspect.signature(LMHandler.__init__).parameters["batch_max_concurrent"].default
    client = OpenAIClient(api_key="bench", model_name="bench-sub", base_url=base_url)
    handler = LMHandler(client) if concurrency is None else LMHandler(client, batch_max_concurrent=concurrency)
    handler.start()
    env = LocalREPL(lm_handler_address=handler.address, depth=1)
    try:
        cpu = time.process_time()
        result = env.execute_code(PROGRAM.format(tag=tag, n=n or waves * (concurrency or default)))
        cpu = time.process_time() - cpu
        timing = _timing(result.stdout + "\n" + result.stderr)
    finally:
        env.cleanup()
        handler.stop()
    return {**timing, "cpu_s": cpu, "concurrency": concurrency or default, "default_concurrency": default,
            "version": version("rlms")}


def run_dspy(base_url: str, n: int | None, concurrency: int | None, tag: str, waves: int) -> dict[str, Any]:
    """dspy: ``llm_query_batched`` from ``dspy.RLM``'s tools in a LocalInterpreter (Deno needs the network)."""
    import dspy  # type: ignore[import-not-found]  # the peers' own venv
    from dspy.predict.rlm import RLM, _LLMCallBudget  # type: ignore[import-not-found]  # the peers' own venv

    default = inspect.signature(RLM._make_llm_tools).parameters["max_workers"].default
    lm = dspy.LM("openai/bench-sub", api_base=base_url, api_key="bench", cache=False)
    rlm = RLM("context -> answer", max_llm_calls=10**7, sub_lm=lm)
    budget = _LLMCallBudget(10**7)
    tools = rlm._make_llm_tools(budget) if concurrency is None else rlm._make_llm_tools(budget, max_workers=concurrency)
    interpreter = dspy.LocalInterpreter(tools=tools)
    interpreter.start()
    try:
        cpu = time.process_time()
        output = interpreter.execute(PROGRAM.format(tag=tag, n=n or waves * (concurrency or default)))
        cpu = time.process_time() - cpu
        timing = _timing(str(output))
    finally:
        interpreter.shutdown()
    return {**timing, "cpu_s": cpu, "concurrency": concurrency or default, "default_concurrency": default,
            "version": version("dspy")}


PEERS = {"rlms": run_rlms, "dspy": run_dspy}


def main(argv: list[str]) -> int:
    spec = json.loads(argv[1])
    result = PEERS[spec["lib"]](spec["base_url"], spec["n"], spec.get("concurrency"), spec.get("tag", "peer"),
                                spec.get("waves") or 1)
    print("RESULT " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
