"""Real root replies from public runs of other RLM implementations, as runs to replay through rlm's loop.

The replies live in ../shared/trajectories/ (other people's public runs: read from there,
never copied into this project; see its README). Each ``Run`` holds one run's replies, a
context like the one its model saw, and a check of the answer the model meant. The tests
(tests/test_trajectories.py) and ``rlm bench prompt`` replay them with ``scripted_root``:
the recorded replies in order, then the last reply's FINAL line again, as a real model
says it again once a note tells it its FINAL was held back.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.parsing import find_code_blocks, find_final

_FINAL_LINE = re.compile(r"^[ \t]*(FINAL_VAR|FINAL)\(.*$", re.MULTILINE | re.DOTALL)

def shared_dir(start: Path | None = None) -> Path | None:
    """``shared/trajectories`` beside the checkout or beside a folder above it (a worktree is one deeper)."""
    here = (start or Path(__file__)).resolve()
    return next((p / "shared" / "trajectories" for p in here.parents if (p / "shared" / "trajectories").is_dir()),
                None)


@dataclass
class Run:
    """One recorded run: the root's replies, a context like the one it saw, and its meant answer."""

    name: str
    replies: list[str]
    context: Any
    query: str
    meant: Callable[[str], bool]
    sub: Callable[[Any], str] = lambda req: "scripted sub-model reply"


def _exact(text: str) -> Callable[[str], bool]:
    return lambda answer: answer == text


def _rlms_runs(folder: Path) -> list[Run]:
    """alexzhang13/rlm's example log: 6 runs of gpt-4o, one per ``run_context`` line."""
    runs: list[Run] = []
    for line in (folder / "rlms_docs_examples_trace-log-example.jsonl").read_text().splitlines():
        event = json.loads(line)
        if event["type"] == "run_context":
            runs.append(Run(f"rlms-{len(runs) + 1}", [], event["prompt"], event["prompt"], _exact("")))
        elif event["type"] == "iteration":
            runs[-1].replies.append(event["response"])
    meant: dict[int, Callable[[str], bool]] = {
        0: lambda a: a.isdigit() and 1 <= int(a) <= 100,  # FINAL(random_number): the variable's value
        1: _exact("15"), 2: _exact("Blue"), 3: _exact("I pick the color blue."),
        4: _exact("x is set to 500."), 5: _exact("1000"),
    }
    for n, run in enumerate(runs):
        run.meant = meant[n]
    return runs


def _printed_context(node: dict[str, Any]) -> str | None:
    for iteration in node["iterations"]:
        for execution in iteration.get("code_executions", []):
            if execution.get("code", "").strip() == "print(context)" and execution.get("stdout"):
                return str(execution["stdout"])
    return None


def _seedfork_runs(folder: Path) -> list[Run]:
    """The llm_batch fork seed 003 describes: each node's replies, then the final reply it recorded."""
    runs = []
    for path in sorted(folder.glob("seedfork_trace_*.json")):
        nodes = json.loads(path.read_text())["nodes"]
        for node in nodes if isinstance(nodes, list) else nodes.values():
            replies = [it["response"] for it in node["iterations"]]
            recorded = node.get("final_answer") or ""
            if isinstance(recorded, str) and recorded.startswith("FINAL"):
                replies.append(recorded)  # the node's last reply, which that scaffold kept whole
            found = next((find_final(r) for r in reversed(replies) if find_final(r)), None)
            in_code = any("FINAL" in b for r in replies for b in find_code_blocks(r))
            if found is None and not in_code:
                continue  # this node's model never wrote a final answer
            literal = found.value if found is not None and found.kind == "text" and not found.value.isidentifier() \
                else None
            meant = _exact(literal) if literal else (lambda a: bool(a) and not a.startswith(("FINAL", "[rlm error]"))
                                                     and not a.isidentifier())
            context = _printed_context(node) or str(node["iterations"][0]["prompt"] if node["iterations"] else "")
            runs.append(Run(f"{path.stem[-15:]}-{node['node_id']}", replies, context, "Answer the task.", meant))
    return runs


def _paper_runs(folder: Path) -> list[Run]:
    data = json.loads((folder / "paper_2512.24601_appendixB_reconstructed.json").read_text())
    articles = [f"Article {i}: local news of the day." for i in range(10)]
    articles[6] = ("The 13th Dinengdeng Festival in Agoo, La Union: the Festival of Festivals winners were named, "
                   "and Maria Dalmacio won the beauty pageant.")
    questions = [f"{i}: {'What does NASA stand for?' if i % 3 == 0 else 'How many moons does Mars have?'}"
                 for i in range(1, 13)]

    def classify(req: Any) -> str:
        ids = re.findall(r"^(\d+): ", req.prompt, re.MULTILINE)
        return "\n".join(f"{i}: {'abbreviation' if int(i) % 3 == 0 else 'numeric value'}" for i in ids)

    return [
        Run("paper-B1-gpt5", data["B1_gpt5_browsecomp_q74"]["replies"], articles, "Who won the pageant?",
            _exact("Maria Dalmacio"), lambda req: "Maria Dalmacio"),
        Run("paper-B2-qwen3-coder", data["B2_qwen3_coder_oolong_pairs_q3"]["replies"], "\n".join(questions),
            "Which pairs of users asked abbreviation questions?",
            _exact("(3, 6)\n(3, 9)\n(3, 12)\n(6, 9)\n(6, 12)\n(9, 12)"), classify),
    ]


def _minrlm_runs(folder: Path) -> list[Run]:
    """avilum/minrlm's gpt-5.4-mini code (its names: task_0, input_0, sub_llm), on records of its task's shape."""
    records = json.loads((folder / "minrlm_eval_20260327_001353_excerpt.json").read_text())["records"]
    context = "\n".join(f"Date: 2023-0{m % 9 + 1}-1{m % 9} || Text: item {m} || Label: {'True' if m % 4 else 'False'}"
                        for m in range(40))
    runs = []
    for n, record in enumerate(records):
        code = record["generated_code"]
        reply = code if "```" in code else f"```python\n{code}\n```"
        if "FINAL" not in reply:
            continue  # that runner's first step only: no answer meant yet
        runs.append(Run(f"minrlm-{n}-{record['runner_name']}", [reply], context, "Which label is least common?",
                        lambda a: a.startswith(("Label: ", "Answer: ")) and "{" not in a))
    return runs


def load_runs(folder: Path | None = None) -> list[Run]:
    """Every recorded run whose model meant an answer, from ``folder`` (default: ``shared_dir()``); [] if absent."""
    folder = folder or shared_dir()
    if folder is None or not folder.is_dir():
        return []
    return [*_rlms_runs(folder), *_seedfork_runs(folder), *_paper_runs(folder), *_minrlm_runs(folder)]


def scripted_root(run: Run) -> Callable[[Any], str]:
    """The recorded replies in order; then the last reply's FINAL line again, as a model repeats it."""
    served: list[int] = [0]

    def reply(req: Any) -> str:
        if served[0] < len(run.replies):
            served[0] += 1
            return run.replies[served[0] - 1]
        match = _FINAL_LINE.search(run.replies[-1])
        return match.group(0) if match else "FINAL(no final in the recorded replies)"

    return reply
