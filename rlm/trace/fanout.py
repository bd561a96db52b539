"""The calls of a run as the view shows them: the fan-out tree, the latency timeline, each call in detail.

Part of the one renderer (``rlm.trace.html`` puts these sections beside the header and
the iterations). Live, the per-call marks (grid cells, timeline bars) are left to the
widget's script, which paints them from the compact ``calls`` columns: with thousands
of calls their markup would be most of every update.
"""

from __future__ import annotations

import math
from typing import Any

from .figures import images_html
from .markup import escape as _e
from .markup import short_seconds as _secs

COLOURS = {"r": "#1e88e5", "o": "#43a047", "e": "#e53935", "c": "#9e9e9e"}
ROOT_COLOURS = {"r": "#5e35b1", "o": "#7e57c2", "e": "#e53935", "c": "#9e9e9e"}
STATUS_NAMES = {"r": "running", "o": "ok", "e": "error", "c": "cancelled"}
LANE_PX = 7


def _call_title(i: int, calls: dict[str, Any]) -> str:
    start, end = calls["start"][i], calls["end"][i]
    letter = calls["status"][i]
    model = calls["models"][calls["model"][i]] if calls["models"] else ""
    parts = [f"#{i}", model, STATUS_NAMES.get(letter, letter)]
    if end >= 0:
        parts.append(f"{(end - start) / 1000:.2f} s")
    if calls["tokens"][i]:
        parts.append(f'{calls["tokens"][i]:,} tokens')
    error = calls["errors"].get(str(i))
    if error:
        parts.append(error)
    return " · ".join(parts)


def _ranges(indices: list[int]) -> str:
    """``[0, 1, 2, 5]`` -> ``"0-2,5"``: call indices, compactly, for the live painter."""
    out: list[str] = []
    start = prev = None
    for i in indices:
        if prev is not None and i == prev + 1:
            prev = i
            continue
        if start is not None:
            out.append(f"{start}-{prev}" if prev != start else str(start))
        start = prev = i
    if start is not None:
        out.append(f"{start}-{prev}" if prev != start else str(start))
    return ",".join(out)


def _grid(indices: list[int], calls: dict[str, Any], *, live: bool, key: str) -> str:
    if live:
        return f'<div class="rlm-grid" data-node="{_e(key)}" data-calls="{_ranges(indices)}"></div>'
    status = calls["status"]
    cells = "".join(
        f'<i style="background:{COLOURS.get(status[i], "#000")}" title="{_e(_call_title(i, calls))}"></i>'
        for i in indices
    )
    return f'<div class="rlm-grid">{cells}</div>'


def _counts(indices: list[int], calls: dict[str, Any]) -> str:
    status = calls["status"]
    tally: dict[str, int] = {}
    for i in indices:
        tally[status[i]] = tally.get(status[i], 0) + 1
    return " · ".join(
        f'<span style="color:{COLOURS[k]}">{tally[k]} {STATUS_NAMES[k]}</span>' for k in "oerc" if tally.get(k)
    )


def _node(node: dict[str, Any], calls: dict[str, Any], *, live: bool) -> str:
    kind = node.get("kind")
    status = _e(node.get("status", ""))
    indices = list(node.get("calls") or [])
    if kind == "run":
        label = f'run · {_e(str(node.get("label", ""))[:120])} · {_e(node.get("model") or "")}'
    elif kind == "iteration":
        label = f'iteration {_e(node.get("n"))}'
    elif kind == "exec":
        label = "code step"
    elif kind == "batch":
        failed = node.get("failed")
        label = (
            f'llm_batch × {_e(node.get("n", len(indices)))} · {_e(node.get("model") or "")}'
            f' · max_concurrent {_e(node.get("max_concurrent"))}' + (f" · {failed} failed" if failed else "")
        )
    elif kind == "tool":
        error = node.get("error")
        label = f'tool · {_e(node.get("name") or "")}({_e(node.get("args") or "")})' + (
            f" · {_e(error)}" if error else "")
    else:
        label = _e(kind)
    seconds = f' · {_secs(node["seconds"])}' if node.get("seconds") is not None else ""
    calls_html = ""
    if indices:
        roots = [i for i in indices if calls["role"][i] == "R"]
        subs = [i for i in indices if calls["role"][i] != "R"]
        if roots:
            calls_html += "".join(f'<div class="rlm-call" data-i="{i}">root call · {_e(_call_title(i, calls))}</div>'
                                  for i in roots)
        if subs:
            what = "calls" if kind == "batch" else f"llm_query × {len(subs)}"
            calls_html += (
                f'<div class="rlm-calls">{what} · {_counts(subs, calls)}'
                f'{_grid(subs, calls, live=live, key=str(node.get("id")))}</div>'
            )
    children = "".join(_node(child, calls, live=live) for child in node.get("children") or [])
    inner = calls_html + (f"<ul>{children}</ul>" if children else "")
    return (
        f'<li><span class="rlm-node rlm-st-{status}"><span class="rlm-dot"></span>{label}{seconds}</span>{inner}</li>'
    )


def fan_out(tree: list[dict[str, Any]], calls: dict[str, Any], *, live: bool) -> str:
    nodes = "".join(_node(node, calls, live=live) for node in tree)
    return f'<h4>Fan-out</h4><ul class="rlm-tree">{nodes}</ul>'


def _ticks(span_ms: float) -> list[float]:
    for step in (100, 200, 500, 1_000, 2_000, 5_000, 10_000, 15_000, 30_000, 60_000, 120_000, 300_000, 600_000):
        if span_ms / step <= 8:
            break
    return [t * step for t in range(int(span_ms // step) + 1)]


def timeline(calls: dict[str, Any], header: dict[str, Any], *, live: bool, span_ms: float | None = None) -> str:
    n = len(calls["start"])
    if not n:
        return '<h4>Latency timeline</h4><div class="rlm-empty">no model calls yet</div>'
    now = float(header.get("elapsed") or 0) * 1000
    ends = [e if e >= 0 else now for e in calls["end"]]
    span = max(max(ends), now, span_ms or 1.0)
    if live:
        # The axis grows in 25% steps, so the painter re-places every bar only when it does.
        span = 1000 * 1.25 ** max(0, math.ceil(math.log(span / 1000, 1.25)))
    lanes = max(calls["lane"]) + 1
    bars = []
    for i in range(0 if live else n):
        start = calls["start"][i]
        left = 100 * start / span
        width = max(100 * (ends[i] - start) / span, 0.15)
        palette = ROOT_COLOURS if calls["role"][i] == "R" else COLOURS
        bars.append(
            f'<i style="left:{left:.2f}%;width:{width:.2f}%;top:{calls["lane"][i] * LANE_PX}px;'
            f'background:{palette.get(calls["status"][i], "#000")}" title="{_e(_call_title(i, calls))}"></i>'
        )
    ticks = "".join(
        f'<span style="left:{100 * t / span:.2f}%">{t / 1000:g}s</span>' for t in _ticks(span)
    )
    legend = (
        f'<span style="color:{ROOT_COLOURS["o"]}">■ root call</span> '
        + " ".join(f'<span style="color:{COLOURS[k]}">■ {STATUS_NAMES[k]}</span>' for k in "oerc")
    )
    return (
        f'<h4>Latency timeline <small>{n:,} calls · peak {lanes} at once</small></h4>'
        f'<div class="rlm-lanes" data-span="{span:.0f}" data-now="{now:.0f}" style="height:{lanes * LANE_PX}px">'
        f'{"".join(bars)}</div>'
        f'<div class="rlm-axis">{ticks}</div><div class="rlm-legend">{legend}</div>'
    )


def call_detail(detail: dict[str, Any]) -> str:
    """One call as the view shows it when clicked: what it was asked, what it said, what it cost."""
    facts = [f'#{detail.get("index")}', str(detail.get("model") or ""), str(detail.get("status") or "")]
    if detail.get("role") == "root":
        facts.insert(1, "root call")
    if detail.get("seconds") is not None:
        facts.append(_secs(float(detail["seconds"])))
    tokens = int(detail.get("prompt_tokens") or 0), int(detail.get("completion_tokens") or 0)
    if any(tokens):
        cached = int(detail.get("cached_prompt_tokens") or 0)
        facts.append(f"{tokens[0]:,} + {tokens[1]:,} tokens" + (f" ({cached:,} cached)" if cached else ""))
    if detail.get("cost_usd") is not None:
        facts.append(f'${float(detail["cost_usd"]):.5f}')
    for key, label in (("finish_reason", "finish: {}"), ("attempts", "{} attempts"), ("cached", "cached")):
        value = detail.get(key)
        if value and not (key == "attempts" and value == 1):
            facts.append(label.format(value))
    size = detail.get("prompt_chars")
    prompt_label = f"Prompt ({int(size):,} characters)" if isinstance(size, int) else "Prompt"
    if detail.get("role") == "root":
        prompt_label += ", its latest message"
    out = [f'<div class="rlm-detail-facts">{_e(" · ".join(f for f in facts if f))}</div>',
           f'<details class="rlm-detail-prompt"><summary>{_e(prompt_label)}</summary>'
           f'<pre>{_e(detail.get("prompt") or "")}</pre></details>', images_html(detail)]
    if detail.get("reply") is not None:
        cut = " (cut)" if detail.get("reply_cut") else ""
        out.append(f'<div class="rlm-detail-reply"><b>Reply{cut}</b><pre>{_e(detail["reply"])}</pre></div>')
    if detail.get("error"):
        out.append(f'<div class="rlm-detail-error"><b>Error</b><pre>{_e(detail["error"])}</pre></div>')
    for retry in detail.get("retries") or ():
        out.append(f'<div class="rlm-note">retry {_e(retry.get("attempt"))} after {_e(retry.get("error"))}'
                   f' (waited {float(retry.get("wait") or 0):.2f} s)</div>')
    return "".join(out)


def call_record(details: list[dict[str, Any]], total: int) -> str:
    """The record's calls in detail (a capped selection: see ``RunState.record_details``)."""
    shown = "".join(
        f'<details class="rlm-call-detail"><summary>#{_e(d.get("index"))} · {_e(d.get("model") or "")} · '
        f'{_e(d.get("status") or "")}{" · root" if d.get("role") == "root" else ""}</summary>{call_detail(d)}</details>'
        for d in details
    )
    count = f"{total:,} calls" if total <= len(details) else \
        f"{len(details):,} of {total:,} calls: root calls, failures, then the first ones"
    return f'<details class="rlm-calls-record"><summary><b>Calls</b> ({_e(count)}): open one to see it</summary>' \
        f"{shown}</details>"
