"""``rlm bench prompt``: what the root reads, measured offline, on scripted and on real replies.

The scripted server plays the root, so every number is the loop's own doing, and the
same on every machine: root input tokens per run (each root call's whole conversation,
counted with gpt-4o's tokenizer and summed: what a provider bills), the largest message
the loop sent back after a reply, and whether the answer came out. Two scripted runs
are the worst cases of issue 23: one reply of seven blocks that each print 20,000
characters (the RLM paper's B.2 style), and ten turns that each print 20,000 characters
(a gpt-4o-sized window, so compaction near the window would apply). The real replies in
../shared/trajectories (``rlm.testing.trajectories``) are replayed as the tests replay
them, and the answer each model meant must still come out.

No real endpoint is called: how the prompt changes answers on a real model is
``rlm bench oolong|pairs|sniah`` with ``--base-url``.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..cli import arguments
from ..core.prompts import system_prompt
from ..lm.tokens import count_message_tokens, count_tokens
from ..testing import ScriptedLM
from ..testing.texts import sample_text
from ..testing.trajectories import load_runs, scripted_root, shared_dir

#: The model the root is said to be: its window (128k) is what compaction near the window reads.
ROOT_MODEL = "gpt-4o"
PRINT_CHARS = 20_000
#: Issue 23's targets, and what the loop did before (measured on main with this bench).
TARGETS = {"seven_blocks_feedback_tokens": 4_000, "ten_turns_root_tokens": 60_000}


@dataclass(frozen=True)
class Measured:
    """One replayed run, as the root read it."""

    name: str
    root_calls: int
    root_tokens: int
    largest_feedback_tokens: int
    largest_feedback_chars: int
    answer: str
    meant: bool


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sandbox", choices=("local", "kernel"), default="local",
                        help="where root code runs (default local: the numbers do not depend on it)")
    parser.add_argument("--trajectories", default=None,
                        type=arguments.input_dir("a folder of recorded runs (../shared/trajectories)"),
                        help="the folder of recorded runs (default: shared/trajectories beside the checkout)")


def _measure(name: str, lm: ScriptedLM, answer: str, meant: bool) -> Measured:
    requests = lm.root_requests
    feedback = [str(r.messages[-1].get("content") or "") for r in requests[1:]]
    largest = max(feedback, key=lambda text: count_tokens(text, ROOT_MODEL), default="")
    return Measured(name, len(requests), sum(count_message_tokens(r.messages, ROOT_MODEL) for r in requests),
                    count_tokens(largest, ROOT_MODEL), len(largest), answer, meant)


def _replay(name: str, replies: Any, context: Any, query: str, sandbox: str, sub: Any = None,
            meant: Any = None) -> Measured:
    from .. import RLM, Endpoint

    with ScriptedLM(root=replies, sub=sub) as lm:
        rlm = RLM(ROOT_MODEL, "gpt-4o-mini", base_url=lm.base_url, api_key="k", sandbox=sandbox, max_iterations=12,
                  endpoint=Endpoint(retries=0), progress=False)
        result = rlm.completion(context, query, view=False)
        return _measure(name, lm, result.text, bool(result.ok and (meant is None or meant(result.text))))


def scripted(sandbox: str) -> list[Measured]:
    """The two worst cases: seven printing blocks in one reply, and ten printing turns."""
    context = sample_text("prose", 10 * PRINT_CHARS)
    blocks = "\n\n".join(f"```repl\nprint(context[{i * PRINT_CHARS}:{(i + 1) * PRINT_CHARS}])\n```" for i in range(7))
    turns = [f"```repl\nprint(context[{k * PRINT_CHARS}:{(k + 1) * PRINT_CHARS}])\n```" for k in range(10)]
    return [
        _replay(f"one reply, 7 blocks printing {PRINT_CHARS:,} characters each", [blocks, "FINAL(done)"], context,
                "What does the report say?", sandbox),
        _replay(f"10 turns printing {PRINT_CHARS:,} characters each", [*turns, "FINAL(done)"], context,
                "What does the report say?", sandbox),
    ]


def recorded(sandbox: str, folder: Path | None) -> list[Measured]:
    """Every recorded run whose model meant an answer, replayed; [] without the recordings."""
    return [_replay(run.name, scripted_root(run), run.context, run.query, sandbox, run.sub, run.meant)
            for run in load_runs(folder)]


def _table(title: str, rows: list[Measured]) -> list[str]:
    lines = [f"\n{title}", "| run | root calls | root input tokens | largest feedback: tokens (chars) | answer |",
             "|---|---|---|---|---|"]
    for m in rows:
        answer = " ".join(m.answer.split())
        answer = answer if len(answer) <= 48 else answer[:45] + "..."
        lines.append(f"| {m.name} | {m.root_calls} | {m.root_tokens:,} | {m.largest_feedback_tokens:,} "
                     f"({m.largest_feedback_chars:,}) | {'ok' if m.meant else 'NOT FOUND'}: {answer} |")
    return lines


def run(args: argparse.Namespace) -> int:
    folder = Path(args.trajectories) if args.trajectories else shared_dir()
    prompt_tokens = count_tokens(system_prompt(can_recurse=True, sub_window=128_000), ROOT_MODEL)
    made, real = scripted(args.sandbox), recorded(args.sandbox, folder)
    lines = [f"rlm bench prompt: offline, the scripted server plays the root ({args.sandbox} sandbox); tokens "
             f"counted as {ROOT_MODEL} counts them", f"system prompt, every line on: {prompt_tokens:,} tokens"]
    lines += _table("Scripted replies", made)
    lines += _table(f"Recorded replies ({folder})", real) if real else [f"\nno recorded runs found ({folder})"]
    seven, ten = made[0].largest_feedback_tokens, made[1].root_tokens
    checks = [
        (f"7-block reply's feedback <= {TARGETS['seven_blocks_feedback_tokens']:,} tokens (was 26.6k)", seven,
         seven <= TARGETS["seven_blocks_feedback_tokens"]),
        (f"10 printing turns <= {TARGETS['ten_turns_root_tokens']:,} root input tokens (was 217k)", ten,
         ten <= TARGETS["ten_turns_root_tokens"]),
        ("every meant answer in the recordings found", f"{sum(m.meant for m in real)} of {len(real)}",
         bool(real) and all(m.meant for m in real)),
    ]
    lines.append("\nTargets (issue 23):")
    lines += [f"- {what}: {value:,} {'ok' if good else 'MISSED'}" if isinstance(value, int)
              else f"- {what}: {value} {'ok' if good else 'MISSED'}" for what, value, good in checks]
    print("\n".join(lines))
    return 0 if all(good for _, _, good in checks) else 1
