"""Runs a plan: every item x method x repeat once, each result appended to a JSONL file as it finishes.

A killed run continues where it stopped: a result is one line written with a single
``write`` and ``fsync``ed before the next run starts, a half-written last line is cut off
when the file is opened again, and runs whose key is already in the file are skipped.
The key names the item (its generator's version, size, seed and index), the method,
the repeat, the models and endpoint, and the system prompt (its name and a digest of its
text) when ``--prompt`` gives some, so results of another model or an edited prompt never
count as done.
An item made again for its remaining runs must match the fingerprint of its finished
ones: a generator changed without a new version stops the run instead of mixing items.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NamedTuple

from ...errors import ConfigError
from .items import Item
from .methods import RLM_METHODS, Methods, Outcome
from .scoring import score

#: An answer longer than this is cut in the results file (the score uses all of it).
ANSWER_CHARS = 10_000


class Task(NamedTuple):
    """A task family as the runner sees it: how to make an item, and its name without making it."""

    name: str
    make_item: Callable[[int, int, int], Item]
    item_id: Callable[[int, int, int], str]


@dataclass(frozen=True)
class Plan:
    """What one command line asks for; ``identity`` names the models and endpoint the results belong to."""

    task: Task
    sizes: list[int]
    seeds: int
    n: int
    methods: list[str]
    repeats: int
    identity: str
    #: (name, template) of each system prompt the RLM methods run with; empty: rlm's own.
    prompts: tuple[tuple[str, str], ...] = ()

    def variants(self) -> list[tuple[str, str | None]]:
        """(method, prompt name) of every run an item gets, per repeat: an RLM method once per prompt."""
        out: list[tuple[str, str | None]] = []
        for method in self.methods:
            if self.prompts and method in RLM_METHODS:
                out.extend((method, name) for name, _ in self.prompts)
            else:
                out.append((method, None))
        return out

    def template(self, prompt: str | None) -> str | None:
        """The text of the prompt named ``prompt``."""
        return None if prompt is None else dict(self.prompts)[prompt]

    def items(self) -> Iterator[tuple[int, int, int, str]]:
        """(size, seed, index, item id) of every item, smallest size first."""
        for size in self.sizes:
            for seed in range(self.seeds):
                for index in range(self.n):
                    yield size, seed, index, self.task.item_id(size, seed, index)

    def key(self, item_id: str, method: str, repeat: int, prompt: str | None = None) -> str:
        key = f"{item_id}|{method}|r{repeat}|{self.identity}"
        if prompt is None:
            return key
        digest = hashlib.sha1(dict(self.prompts)[prompt].encode(), usedforsecurity=False).hexdigest()[:12]
        return f"{key}|prompt:{prompt}:{digest}"

    def run_keys(self) -> list[str]:
        """Every run's key, in the order they run."""
        return [self.key(item_id, m, r, p) for *_, item_id in self.items() for m, p in self.variants()
                for r in range(self.repeats)]


class ResultsFile:
    """The JSONL file of one task: every finished run, by key."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.done: dict[str, dict[str, Any]] = {}
        self.skipped_lines = 0
        if not path.exists():
            return
        data = path.read_bytes()
        if data and not data.endswith(b"\n"):  # a run killed mid-write: its line is cut off and rerun
            data = data[: data.rfind(b"\n") + 1]
            with path.open("r+b") as fh:
                fh.truncate(len(data))
        for line in data.splitlines():
            try:
                record = json.loads(line)
                self.done[str(record["key"])] = record
            except (ValueError, KeyError, TypeError):
                self.skipped_lines += 1

    def __contains__(self, key: str) -> bool:
        return key in self.done

    def append(self, record: dict[str, Any]) -> None:
        """Write one result as one line, on disk before this returns."""
        data = (json.dumps(record, ensure_ascii=False) + "\n").encode()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        self.done[str(record["key"])] = record


def result_record(plan: Plan, item: Item, method: str, repeat: int, outcome: Outcome,
                  prompt: str | None = None) -> dict[str, Any]:
    """The line kept for one run: the item (without its context), the answer, its score and its costs."""
    answer = outcome.answer
    return {
        "key": plan.key(item.id, method, repeat, prompt), "identity": plan.identity, "method": method,
        "repeat": repeat, "prompt": prompt,
        **item.describe(), "fingerprint": item.fingerprint,
        "score": score(item.metric, item.answer_type, item.expected, answer),
        **{k: v for k, v in asdict(outcome).items() if k != "answer"},
        "answer": answer if len(answer) <= ANSWER_CHARS else answer[:ANSWER_CHARS] + " [cut]",
        "finished": time.time(),
    }


def _check_fingerprint(plan: Plan, item: Item, results: ResultsFile) -> None:
    """Refuse to continue an item whose finished runs were made from different text."""
    for method, prompt in plan.variants():
        for repeat in range(plan.repeats):
            record = results.done.get(plan.key(item.id, method, repeat, prompt))
            if record is not None and record.get("fingerprint") != item.fingerprint:
                raise ConfigError(
                    f"{results.path} holds runs of {item.id} made from another context or query (the generator "
                    "or the source tree changed): pass another --out, or remove the file to start again"
                )


async def execute(plan: Plan, methods: Methods, results: ResultsFile, *, parallel: int = 1,
                  report: Callable[[str], None] | None = None) -> int:
    """Run everything in ``plan`` not yet in ``results``, ``parallel`` runs at a time; returns how many ran."""
    keys = plan.run_keys()
    todo_total = sum(key not in results for key in keys)
    gate = asyncio.Semaphore(parallel)
    ran = 0
    running: set[asyncio.Task[None]] = set()

    async def one(item: Item, method: str, prompt: str | None, repeat: int) -> None:
        nonlocal ran
        try:
            outcome = await methods.run(method, item, plan.template(prompt))
            record = result_record(plan, item, method, repeat, outcome, prompt)
            if outcome.log is not None:  # found from the results file's folder, wherever it moves
                record["log"] = os.path.relpath(outcome.log, results.path.parent)
            results.append(record)
            ran += 1
            if report is not None:
                error = f" ({outcome.error[:120]})" if outcome.error else ""
                variant = method if prompt is None else f"{method} [{prompt}]"
                report(f"[{ran}/{todo_total}] {item.id} {variant} r{repeat}: score {record['score']:.2f}, "
                       f"{outcome.seconds:.2f} s{error}")
        finally:
            gate.release()

    try:
        for size, seed, index, item_id in plan.items():
            todo = [(m, p, r) for m, p in plan.variants() for r in range(plan.repeats)
                    if plan.key(item_id, m, r, p) not in results]
            if not todo:
                continue
            item = await asyncio.to_thread(plan.task.make_item, size, seed, index)
            _check_fingerprint(plan, item, results)
            for method, prompt, repeat in todo:
                await gate.acquire()
                task = asyncio.create_task(one(item, method, prompt, repeat))
                running.add(task)
                task.add_done_callback(running.discard)
        if running:
            await asyncio.gather(*running)
    finally:
        for task in running:
            task.cancel()
    return ran
