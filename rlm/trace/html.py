"""The one renderer of a run: header and counters, iterations, the streaming reply, fan-out tree, timeline.

The live widget sends these sections to the browser as they change, ``result.trace``
and the notebook's saved record show them once, and ``rlm view`` wraps them in a
standalone page. The markup needs no script: collapsing is ``<details>``, tooltips are
``title``, and geometry and status colours are inline so a sanitised copy (an
untrusted notebook) still reads. The calls' sections (fan-out, timeline, each call in
detail) are ``rlm.trace.fanout``'s.

Live, the one thing done differently is the per-call marks (grid cells, timeline
bars): with thousands of calls their markup would be most of every update, so the
live view leaves their containers empty (``data-calls``, ``data-span``) and the
widget's script paints them from the compact ``calls`` columns.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

from .fanout import call_record, fan_out, timeline
from .markup import escape as _e
from .markup import page
from .markup import short_number as _num
from .markup import short_seconds as _secs

SECTIONS = ("header", "iterations", "stream", "tree", "timeline")

BADGES = {"running": "running", "ok": "done", "error": "failed", "cancelled": "stopped", "budget": "budget reached",
          "failed_call": "answer is an error", "cut_off": "answer cut off", "fallback": "no answer"}
#: Classes that keep MathJax off the view: JupyterLab and Notebook 7 (MathJax 3: ``mathjax_ignore``) and
#: classic front ends (MathJax 2: ``tex2jax_ignore``) typeset HTML outputs, and two ``$`` in a view
#: (a cost, an estimate, a query) would be read as LaTeX, the dollar signs gone and the figures in a math font.
NO_MATH = "tex2jax_ignore mathjax_ignore"


def css() -> str:
    """The view's stylesheet (scoped to ``.rlm-view``)."""
    return resources.files("rlm.trace").joinpath("view.css").read_text(encoding="utf-8")


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
        out["tree"] = fan_out(parts["tree"], calls, live=live)
    if calls is not None and "header" in parts:
        out["timeline"] = timeline(calls, header, live=live, span_ms=span_ms)
    return out


def render(parts: dict[str, Any], *, live: bool = False, style: bool = True) -> str:
    """The whole view as one HTML fragment (with its stylesheet unless ``style=False``)."""
    sections = render_sections(parts, live=live)
    body = "".join(f'<div class="rlm-sec rlm-sec-{name}">{sections.get(name, "")}</div>' for name in SECTIONS)
    if parts.get("details"):
        record = call_record(parts["details"], len(parts["calls"]["start"]))
        body += f'<div class="rlm-sec rlm-sec-calls">{record}</div>'

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


