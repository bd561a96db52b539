"""What a view of a run shows, folded from trace events into plain JSON-able parts.

``RunState`` is the one model behind every view: the live widget sends its parts to
the browser as they change, the static HTML renderer draws the same parts once. So
the live view and the saved record cannot disagree about what happened.

Parts (all JSON-able):

- ``header``: query, model, status, answer, elapsed and the ``Progress`` counters
- ``iterations``: the top-level run's turns, each with its code steps and their output
- ``stream``: the root reply of the current turn while it streams (``call``, the turn's
  ``n``, the last ``STREAM_CHARS`` of its ``text``, ``chars`` so far); ``{}`` otherwise
- ``tree``: run > iteration > exec > batch nodes; calls are indices into ``calls``
- ``calls``: one column per field (start/end in ms from the run's start, status as
  one letter, lane on the timeline, model, tokens), so 2,000 calls stay a few KB
"""

from __future__ import annotations

import dataclasses
import heapq
import threading
import time
from collections.abc import Iterable
from typing import Any

from .events import Event
from .figures import Thumbnails
from .progress import ProgressModel

#: Status letters in ``calls["status"]``.
STATUS_LETTER = {"running": "r", "ok": "o", "error": "e", "cancelled": "c"}
#: How much of a step's output a view shows (head and tail); the trace keeps all of it.
OUTPUT_CHARS = 4_000
#: How much of a step's code a view shows.
CODE_CHARS = 20_000
#: How much of a streaming root reply a view shows (its tail): each redraw sends it again.
STREAM_CHARS = 2_000
#: Calls whose detail the saved record keeps (root calls, then failures, then the rest in order),
#: and the characters of each prompt and reply it shows: the live view sends any call's on demand.
RECORD_CALLS, RECORD_TEXT = 200, 1_000

PARTS = ("header", "iterations", "stream", "tree", "calls")

Node = dict[str, Any]


def clip(text: str, limit: int) -> str:
    """Head and tail of ``text`` with the middle marked as cut."""
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]}\n... [{len(text) - 2 * half:,} characters not shown] ...\n{text[-half:]}"


def _status(data: dict[str, Any], default: str = "ok") -> str:
    status = data.get("status")
    if status:
        return str(status)
    return "error" if data.get("error") else default


#: What a call's end event adds to its detail panel.
_END_DETAILS = ("reply", "reply_cut", "error", "finish_reason", "prompt_tokens", "completion_tokens",
                "cached_prompt_tokens", "cost_usd", "attempts", "cached")

class RunState:
    """Folds one run's events into view parts; a ``Tracer`` subscriber.

    Safe to feed from rlm's loop thread while another thread reads ``parts()``.
    ``dirty`` names the parts changed since the last ``parts(clear=True)``.
    """

    def __init__(self, events: Iterable[Event] = (), *, clock: Any = time.time) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self._now = 0.0
        # Progress runs on event time, so a log replayed later shows the run's own rates.
        self.progress = ProgressModel(clock=lambda: self._now)
        self.t0: float | None = None
        self.root: str | None = None
        self.header: dict[str, Any] = {"query": "", "model": "", "status": "running", "answer": None}
        self.iterations: list[dict[str, Any]] = []
        self.stream: dict[str, Any] = {}
        self.tree: list[dict[str, Any]] = []
        self.calls: dict[str, Any] = {
            "start": [], "end": [], "status": [], "role": [], "lane": [], "model": [], "tokens": [],
            "models": [], "errors": {},
        }
        #: Per call (same index as ``calls``): model, role, prompt preview, reply, error, retries, images.
        self.details: list[dict[str, Any]] = []
        self.thumbs = Thumbnails()
        self.dirty: set[str] = set(PARTS)
        self._nodes: dict[str, dict[str, Any]] = {}
        self._iteration_of: dict[str, dict[str, Any]] = {}
        self._steps: dict[str, dict[str, Any]] = {}
        self._call_index: dict[str, int] = {}
        self._starts: dict[str, float] = {}
        self._free_lanes: list[int] = []
        self._lanes = 0
        self._end: float | None = None
        for event in events:
            self(event)

    # -- folding -------------------------------------------------------------------

    def __call__(self, event: Event) -> None:
        with self._lock:
            if self.t0 is None:
                self.t0 = event.ts
            self._now = event.ts
            if event.phase == "start":
                self._starts[event.id] = event.ts
            self.progress(event)
            handler = getattr(self, f"_on_{event.span}", None)
            if handler is not None:
                handler(event)
            self.dirty.add("header")

    def _ms(self, ts: float) -> int:
        return round((ts - (self.t0 or ts)) * 1000)

    def _attach(self, node: dict[str, Any], parent: str | None) -> None:
        self._nodes[node["id"]] = node
        owner = self._nodes.get(parent) if parent else None
        (owner["children"] if owner is not None else self.tree).append(node)
        self.dirty.add("tree")

    def _on_run(self, event: Event) -> None:
        data = event.data
        if event.phase in ("fork", "estimate", "context"):
            if event.id == self.root:
                if event.phase == "fork":
                    self.header["forked"] = {"origin": data.get("origin"), "at": data.get("at")}
                else:
                    self.header[event.phase] = dict(data)
                self.dirty.add("header")
            return
        if event.phase == "start":
            node: Node = {"id": event.id, "kind": "run", "status": "running", "label": str(data.get("query", "")),
                    "model": data.get("model"), "depth": data.get("depth", 0), "children": [], "calls": []}
            self._attach(node, event.parent)
            if self.root is None:
                self.root = event.id
                self.header.update(query=str(data.get("query", "")), model=str(data.get("model", "")))
            return
        ended = self._nodes.get(event.id)
        if ended is not None:
            ended.update(status=_status(data), seconds=data.get("seconds"))
            self.dirty.add("tree")
        if event.id == self.root:
            self._end = event.ts
            self.header.update(status=_status(data), answer=data.get("answer"), fallback=bool(data.get("fallback")))
            self.stream = {}
            self._close_open(_status(data))

    def _close_open(self, status: str) -> None:
        """The run is over: whatever never reported an end was cut off with it."""
        if status in ("ok", "failed_call", "cut_off", "fallback"):  # ended normally: what never finished was cut off
            status = "cancelled"
        for node in self._nodes.values():
            if node["status"] == "running":
                node["status"] = status
        for item in self.iterations:
            if item["status"] == "running":
                item["status"] = status
            for step in item["steps"]:
                if step["status"] == "running":
                    step["status"] = status
        letter = STATUS_LETTER.get(status, "e")
        self.calls["status"] = [letter if s == "r" else s for s in self.calls["status"]]
        self.dirty.update(PARTS)

    def _on_iteration(self, event: Event) -> None:
        data = event.data
        if event.phase == "start":
            node: Node = {"id": event.id, "kind": "iteration", "status": "running", "n": data.get("n"),
                    "fallback": bool(data.get("fallback")), "children": [], "calls": []}
            self._attach(node, event.parent)
            if event.parent == self.root:
                item: Node = {"n": data.get("n"), "status": "running", "start": self._ms(event.ts), "seconds": None,
                        "fallback": bool(data.get("fallback")), "given": data.get("given"), "steps": []}
                self.iterations.append(item)
                self._iteration_of[event.id] = item
                self.dirty.add("iterations")
            return
        seconds = round(event.ts - self._starts.get(event.id, event.ts), 3)
        ended = self._nodes.get(event.id)
        if ended is not None:
            ended.update(status="ok", seconds=seconds)
            self.dirty.add("tree")
        turn = self._iteration_of.get(event.id)
        if turn is not None:
            turn.update(status="ok", seconds=seconds, final=bool(data.get("final")))
            self.dirty.add("iterations")

    def _on_exec(self, event: Event) -> None:
        data = event.data
        if event.phase == "start":
            node: Node = {"id": event.id, "kind": "exec", "status": "running", "children": [], "calls": []}
            self._attach(node, event.parent)
            turn = self._iteration_of.get(event.parent or "")
            if turn is not None:
                step: Node = {"code": clip(str(data.get("code", "")), CODE_CHARS), "status": "running", "output": "",
                        "error": None, "seconds": None}
                turn["steps"].append(step)
                self._steps[event.id] = step
                self.dirty.add("iterations")
            return
        status = "error" if data.get("error") else _status(data)
        ended = self._nodes.get(event.id)
        if ended is not None:
            ended.update(status=status, seconds=data.get("seconds"))
            self.dirty.add("tree")
        done = self._steps.get(event.id)
        if done is not None:
            output = str(data.get("stdout") or "") + str(data.get("stderr") or "")
            done.update(status=status, output=clip(output, OUTPUT_CHARS), seconds=data.get("seconds"),
                        error=clip(str(data["error"]), OUTPUT_CHARS) if data.get("error") else None,
                        final=data.get("final"))
            self.dirty.add("iterations")

    def _on_batch(self, event: Event) -> None:
        data = event.data
        if event.phase == "start":
            node: Node = {"id": event.id, "kind": "batch", "status": "running", "n": data.get("n", 0),
                    "model": data.get("model"), "max_concurrent": data.get("max_concurrent"),
                    "children": [], "calls": []}
            self._attach(node, event.parent)
            return
        ended = self._nodes.get(event.id)
        if ended is not None:
            ended.update(status=_status(data), failed=data.get("failed"))
            self.dirty.add("tree")

    def _on_tool(self, event: Event) -> None:
        data = event.data
        if event.phase == "start":
            node: Node = {"id": event.id, "kind": "tool", "status": "running", "name": data.get("name"),
                          "args": clip(str(data.get("args", "")), CODE_CHARS), "children": [], "calls": []}
            self._attach(node, event.parent)
            return
        ended = self._nodes.get(event.id)
        if ended is not None:
            error = data.get("error")
            ended.update(status="error" if error else "ok", seconds=data.get("seconds"),
                         error=clip(str(error), OUTPUT_CHARS) if error else None)
            self.dirty.add("tree")

    def _on_call(self, event: Event) -> None:
        data, calls = event.data, self.calls
        if event.phase == "start":
            index = len(calls["start"])
            self._call_index[event.id] = index
            model = str(data.get("model", ""))
            if model not in calls["models"]:
                calls["models"].append(model)
            lane = heapq.heappop(self._free_lanes) if self._free_lanes else self._lanes
            self._lanes = max(self._lanes, lane + 1)
            calls["start"].append(self._ms(event.ts))
            calls["end"].append(-1)
            calls["status"].append("r")
            calls["role"].append("R" if data.get("role") == "root" else "s")
            calls["lane"].append(lane)
            calls["model"].append(calls["models"].index(model))
            calls["tokens"].append(0)
            self.details.append({"model": model, "role": data.get("role"), "prompt": str(data.get("prompt") or ""),
                                 "prompt_chars": data.get("prompt_chars"), "sent": data.get("sent", True),
                                 "retries": [], "status": "running", **self.thumbs.take(data)})
            owner = self._nodes.get(event.parent or "")
            if owner is not None:
                owner["calls"].append(index)
                self.dirty.add("tree")
            self.dirty.add("calls")
            return
        found = self._call_index.get(event.id)
        if event.phase == "retry" and found is not None:
            self.details[found]["retries"].append({k: data.get(k) for k in ("attempt", "error", "wait")})
        if event.phase in ("delta", "retry"):
            self._on_stream(event)
            return
        if found is None or event.phase != "end":
            return
        index = found
        if self.stream.get("call") == event.id:
            self.stream = {}
            self.dirty.add("stream")
        calls["end"][index] = self._ms(event.ts)
        status = _status(data)
        calls["status"][index] = STATUS_LETTER.get(status, "e")
        calls["tokens"][index] = int(data.get("prompt_tokens") or 0) + int(data.get("completion_tokens") or 0)
        if data.get("error"):
            calls["errors"][str(index)] = str(data["error"])[:500]
        self.details[index].update(
            {k: data[k] for k in _END_DETAILS if data.get(k) is not None},
            status=status, seconds=data.get("seconds"))
        heapq.heappush(self._free_lanes, calls["lane"][index])
        self.dirty.add("calls")

    def _on_stream(self, event: Event) -> None:
        """A root reply of a top-level turn streams on; a retry starts it over."""
        turn = self._iteration_of.get(event.parent or "")
        if turn is None or (event.phase == "retry" and self.stream.get("call") != event.id):
            return
        if event.phase == "retry" or self.stream.get("call") != event.id:
            self.stream = {"call": event.id, "n": turn["n"], "text": "", "chars": 0}
        text = str(event.data.get("text") or "")
        self.stream["text"] = (self.stream["text"] + text)[-STREAM_CHARS:]
        self.stream["chars"] += len(text)
        self.dirty.add("stream")

    # -- reading -------------------------------------------------------------------

    def parts(self, *, clear: bool = False, details: bool = False) -> dict[str, Any]:
        """A JSON-able copy of every part; with ``clear`` the dirty set is reset; ``details`` for a record."""
        with self._lock:
            now = self._end if self._end is not None else self._clock()
            progress = dataclasses.asdict(self.progress.snapshot())
            header = dict(self.header, progress=progress, t0=self.t0,
                          elapsed=round(now - self.t0, 3) if self.t0 is not None else 0.0,
                          lanes=self._lanes)
            calls: dict[str, Any] = {k: (list(v) if isinstance(v, list) else dict(v)) for k, v in self.calls.items()}
            calls["status"] = "".join(self.calls["status"])
            calls["role"] = "".join(self.calls["role"])
            result = {
                "header": header,
                "iterations": [dict(it, steps=[dict(s) for s in it["steps"]]) for it in self.iterations],
                "stream": dict(self.stream),
                "tree": _copy_nodes(self.tree),
                "calls": calls,
            }
            if clear:
                self.dirty.clear()
        if details:
            result["details"] = self.record_details()
        return result

    def detail(self, index: int) -> dict[str, Any] | None:
        """Everything the trace kept of call ``index`` (what the live view shows when it is clicked)."""
        with self._lock:
            if not 0 <= index < len(self.details):
                return None
            item = dict(self.details[index], index=index, retries=list(self.details[index]["retries"]))
            return self.thumbs.attach(item)

    def record_details(self) -> list[dict[str, Any]]:
        """The calls a saved record shows in detail: at most ``RECORD_CALLS``, texts cut to ``RECORD_TEXT``."""
        with self._lock:
            count = len(self.details)
            roots = [i for i in range(count) if self.details[i]["role"] == "root"]
            failed = [i for i in range(count) if self.details[i]["status"] not in ("ok", "running")]
            chosen = list(dict.fromkeys([*roots, *failed, *range(count)]))[:RECORD_CALLS]
            out = []
            shown: set[str] = set()  # a record shows each image once, at its first call
            for i in sorted(chosen):
                item = dict(self.details[i], index=i, prompt=clip(self.details[i]["prompt"], RECORD_TEXT))
                if "reply" in item:
                    item["reply"] = clip(str(item["reply"]), RECORD_TEXT)
                out.append(self.thumbs.attach(item, shown))
            return out

    def mark_stopping(self) -> None:
        """A stop was asked for; views say so until the run ends."""
        with self._lock:
            self.header["stopping"] = True
            self.dirty.add("header")

    def changed(self, *, clear: bool = True) -> dict[str, Any]:
        """Only the parts changed since the last call.

        ``header`` always (the clock moves), and ``calls`` while any is running (its bar grows).
        """
        with self._lock:
            names = set(self.dirty) | {"header"}
            if "r" in self.calls["status"]:
                names.add("calls")
        everything = self.parts(clear=clear)
        return {name: everything[name] for name in PARTS if name in names}


def _copy_nodes(nodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [dict(n, children=_copy_nodes(n["children"]), calls=list(n["calls"])) for n in nodes]
