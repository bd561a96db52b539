"""The one renderer of a run: header and counters, iterations, the streaming reply, fan-out tree, timeline.

The live widget sends these sections to the browser as they change, ``result.trace``
and the notebook's saved record show them once, and ``rlm view`` wraps them in a
standalone page. The markup needs no script: collapsing is ``<details>``, tooltips are
``title``, and geometry and status colours are inline so a sanitised copy (an
untrusted notebook) still reads.

Live, the one thing done differently is the per-call marks (grid cells, timeline
bars): with thousands of calls their markup would be most of every update, so the
live view leaves their containers empty (``data-calls``, ``data-span``) and the
widget's script paints them from the compact ``calls`` columns.
"""

from __future__ import annotations

import math
from importlib import resources
from typing import Any

from .figures import images_html
from .markup import escape as _e
from .markup import page

SECTIONS = ("header", "iterations", "stream", "tree", "timeline")

COLOURS = {"r": "#1e88e5", "o": "#43a047", "e": "#e53935", "c": "#9e9e9e"}
ROOT_COLOURS = {"r": "#5e35b1", "o": "#7e57c2", "e": "#e53935", "c": "#9e9e9e"}
STATUS_NAMES = {"r": "running", "o": "ok", "e": "error", "c": "cancelled"}
BADGES = {"running": "running", "ok": "done", "error": "failed", "cancelled": "stopped", "budget": "budget reached",
          "failed_call": "answer is an error", "cut_off": "answer cut off", "fallback": "no answer"}
LANE_PX = 7
#: Classes that keep MathJax off the view: JupyterLab and Notebook 7 (MathJax 3: ``mathjax_ignore``) and
#: classic front ends (MathJax 2: ``tex2jax_ignore``) typeset HTML outputs, and two ``$`` in a view
#: (a cost, an estimate, a query) would be read as LaTeX, the dollar signs gone and the figures in a math font.
NO_MATH = "tex2jax_ignore mathjax_ignore"


def css() -> str:
    """The view's stylesheet (scoped to ``.rlm-view``)."""
    return resources.files("rlm.trace").joinpath("view.css").read_text(encoding="utf-8")


def _num(n: float) -> str:
    for size, suffix in ((1_000_000_000, "G"), (1_000_000, "M"), (1_000, "k")):
        if n >= 10 * size:
            return f"{n / size:.1f}{suffix}"
    return f"{int(n):,}"


def _secs(s: float | None) -> str:
    if s is None:
        return "–"
    if s < 60:
        return f"{s:.1f} s"
    minutes, secs = divmod(int(s), 60)
    return f"{minutes}m{secs:02d}s"


def render_sections(parts: dict[str, Any], *, live: bool = False, span_ms: float | None = None) -> dict[str, str]:
    """HTML for each section of ``parts`` (a ``RunState.parts()`` dict or a subset of it).

    ``span_ms``: the timeline's axis, when runs side by side share one (``rlm.compare``).
    """
    header = parts.get("header") or {}
    calls = parts.get("calls")
    out: dict[str, str] = {}
    if "header" in parts:
        out["header"] = _header(header, live=live)
    if "iterations" in parts:
        out["iterations"] = _iterations(parts["iterations"])
    if "stream" in parts:
        out["stream"] = _stream(parts["stream"])
    if "tree" in parts and calls is not None:
        out["tree"] = _tree(parts["tree"], calls, live=live)
    if calls is not None and "header" in parts:
        out["timeline"] = _timeline(calls, header, live=live, span_ms=span_ms)
    return out


def render(parts: dict[str, Any], *, live: bool = False, style: bool = True) -> str:
    """The whole view as one HTML fragment (with its stylesheet unless ``style=False``)."""
    sections = render_sections(parts, live=live)
    body = "".join(f'<div class="rlm-sec rlm-sec-{name}">{sections.get(name, "")}</div>' for name in SECTIONS)
    if parts.get("details"):
        body += f'<div class="rlm-sec rlm-sec-calls">{_details(parts["details"], len(parts["calls"]["start"]))}</div>'

    sheet = f"<style>{css()}</style>" if style else ""
    return f'{sheet}<div class="{NO_MATH}"><div class="rlm-view">{body}</div></div>'


def document(parts: dict[str, Any], *, title: str = "rlm run") -> str:
    """A standalone page that opens offline: no script, no external resource."""
    return page(render(parts), title)


def _counter(label: str, value: str, cls: str = "") -> str:
    return f'<div class="rlm-counter {cls}" data-counter="{_e(label)}"><b>{value}</b><i>{_e(label)}</i></div>'


def _header(header: dict[str, Any], *, live: bool) -> str:
    status = str(header.get("status") or "running")
    if status == "running" and not live:
        status_label = "unfinished"
    else:
        status_label = BADGES.get(status, status)
    p = header.get("progress") or {}
    cost = p.get("cost_usd")
    eta = p.get("eta_s")
    counters = [
        _counter("calls done", f'{_num(p.get("done", 0))}<small>/{_num(p.get("total", 0))}</small>'),
        _counter("in flight", _num(p.get("in_flight", 0) if status == "running" else 0)),
        _counter("failed", _num(p.get("failed", 0)), "rlm-bad" if p.get("failed") else ""),
        _counter("tokens", _num(p.get("prompt_tokens", 0) + p.get("completion_tokens", 0))
                 + (f'<small> ({_num(p["cached_prompt_tokens"])} cached)</small>' if p.get("cached_prompt_tokens")
                    else "")),
        _counter("cost", "–" if cost is None else f"${cost:.4f}"),
        _counter("elapsed", _secs(header.get("elapsed"))),
        _counter("ETA", "–" if status != "running" or eta is None else _secs(eta)),
    ]
    stop = ""
    if live and status == "running":
        stop = (
            '<button class="rlm-stop" type="button" data-ack disabled>stopping…</button>' if header.get("stopping")
            else (
                '<button class="rlm-stop" type="button" '
                'title="Cancel the run; the partial result and trace are kept">Stop</button>'
            )
        )
    answer = header.get("answer")
    answer_html = ""
    if answer is not None and status != "running":
        flag = ' <span class="rlm-note">(fallback: out of iterations)</span>' if header.get("fallback") else ""
        answer_html = (
            f'<details class="rlm-answer" open><summary>Answer{flag}</summary><pre>{_e(answer)}</pre></details>'
        )
    return (
        f'<div class="rlm-head"><span class="rlm-badge rlm-st-{_e(status)}">{_e(status_label)}</span>'
        f'<span class="rlm-query" title="{_e(header.get("query", ""))}">{_e(str(header.get("query", ""))[:300])}</span>'
        f'<span class="rlm-model">{_e(header.get("model", ""))}</span>{stop}</div>'
        f'<div class="rlm-counters">{"".join(counters)}</div>{_forked(header)}{_documents(header)}{_estimated(header)}'
        f'{answer_html}'
    )


def _forked(header: dict[str, Any]) -> str:
    forked = header.get("forked")
    if not forked:
        return ""
    return (f'<div class="rlm-note rlm-forked">forked from run {_e(forked.get("origin"))} at step '
            f'{_e(forked.get("at"))}: the steps before it were replayed from its record</div>')


def _documents(header: dict[str, Any]) -> str:
    """The documents the context held: each one's format and pages, and how many could not be read."""
    found = header.get("context")
    if not isinstance(found, dict) or not isinstance(found.get("documents"), list) or not found["documents"]:
        return ""
    docs = found["documents"]
    shown = []
    for doc in docs[:8]:
        if isinstance(doc, dict):
            pages = doc.get("pages") or 0
            size = f", {_num(pages)} {doc.get('unit', 'page')}{'s' if pages != 1 else ''}" if pages else ""
            shown.append(f"{_e(doc.get('name'))} ({_e(str(doc.get('kind', '')).upper())}{size})")
    more = f" and {_num(len(docs) - 8)} more" if len(docs) > 8 else ""
    failed = found.get("failed") if isinstance(found.get("failed"), list) else []
    bad = f'; <span class="rlm-bad">{_num(len(failed))} not readable</span>' if failed else ""
    return f'<div class="rlm-note rlm-documents">documents: {", ".join(shown)}{more}{bad}</div>'


def _estimated(header: dict[str, Any]) -> str:
    found = header.get("estimate")
    if not isinstance(found, dict) or not found.get("sub_calls") or not found.get("total_tokens"):
        return ""
    (low, high), (t_low, t_high), cost = found["sub_calls"], found["total_tokens"], found.get("cost_usd")
    dollars = f", ${cost[0]:.4f}–${cost[1]:.4f}" if cost else ""
    return (f'<div class="rlm-note rlm-estimated">estimated before the run: {_num(low)}–{_num(high)} sub-calls, '
            f'{_num(t_low)}–{_num(t_high)} tokens{dollars}</div>')


def _iterations(iterations: list[dict[str, Any]]) -> str:
    if not iterations:
        return '<h4>Iterations</h4><div class="rlm-empty">waiting for the root model…</div>'
    return f'<h4>Iterations</h4>{"".join(iteration(it) for it in iterations)}'


def iteration(it: dict[str, Any]) -> str:
    """One root turn: its code steps, their output and errors (a ``parts()["iterations"]`` entry)."""
    steps = []
    for k, step in enumerate(it.get("steps") or []):
        code = str(step.get("code", ""))
        lines = code.count("\n") + 1
        summary = f'code · {lines} line{"s" if lines != 1 else ""} · {_secs(step.get("seconds"))}'
        output = step.get("output") or ""
        error = step.get("error")
        final = step.get("final")
        steps.append(
            f'<div class="rlm-step rlm-st-{_e(step.get("status", ""))}">'
            f'<details class="rlm-code" data-key="{_e(it.get("n"))}.{k}"><summary>{_e(summary)}</summary>'
            f"<pre>{_e(code)}</pre></details>"
            + (f'<pre class="rlm-out">{_e(output)}</pre>' if output else "")
            + (f'<pre class="rlm-err">{_e(error)}</pre>' if error else "")
            + (f'<div class="rlm-final">FINAL → {_e(str(final)[:200])}</div>' if final else "")
            + "</div>"
        )
    label = "answer now (out of iterations)" if it.get("fallback") else f'iteration {_e(it.get("n"))}'
    if it.get("given"):
        label += " · replayed from the record" if it["given"] == "replayed" else " · the fork's edited code"
    return (
        f'<div class="rlm-iter rlm-st-{_e(it.get("status", ""))}"><div class="rlm-iter-head">'
        f'<span class="rlm-dot"></span>{label} · {_secs(it.get("seconds"))}'
        f'{" · final answer" if it.get("final") else ""}</div>{"".join(steps)}</div>'
    )


def _stream(stream: dict[str, Any]) -> str:
    """The root's reply as it streams in, under the turn it belongs to; nothing once it has ended."""
    if not stream.get("call"):
        return ""
    text, chars = str(stream.get("text") or ""), int(stream.get("chars") or 0)
    cut = f" (the last {len(text):,} shown)" if chars > len(text) else ""
    return (
        f'<div class="rlm-streaming" data-n="{_e(stream.get("n"))}"><div class="rlm-iter-head">'
        f'<span class="rlm-dot"></span>the root is replying… · {chars:,} characters{cut}</div>'
        + (f'<pre class="rlm-reply">{_e(text)}</pre>' if text else "")
        + "</div>"
    )


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


def _tree(tree: list[dict[str, Any]], calls: dict[str, Any], *, live: bool) -> str:
    nodes = "".join(_node(node, calls, live=live) for node in tree)
    return f'<h4>Fan-out</h4><ul class="rlm-tree">{nodes}</ul>'


def _ticks(span_ms: float) -> list[float]:
    for step in (100, 200, 500, 1_000, 2_000, 5_000, 10_000, 15_000, 30_000, 60_000, 120_000, 300_000, 600_000):
        if span_ms / step <= 8:
            break
    return [t * step for t in range(int(span_ms // step) + 1)]


def _timeline(calls: dict[str, Any], header: dict[str, Any], *, live: bool, span_ms: float | None = None) -> str:
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


def _details(details: list[dict[str, Any]], total: int) -> str:
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
