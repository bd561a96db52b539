"""The live view inside a real kernel, driven over the Jupyter protocol as JupyterLab drives it."""

from __future__ import annotations

import itertools
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.manager import KernelManager, start_new_kernel

pytestmark = pytest.mark.timeout(180)

SETUP = """
from rlm import RLM
from rlm.testing import ScriptedLM
PROGRAM = ("```repl\\nanswers = llm_batch([f'item {{i}}' for i in range({n})], max_concurrent={c})"
           "\\nprint(len(answers))\\n```")
lm = ScriptedLM(root=[PROGRAM, "FINAL(done)"], sub=lambda r: "ok " + r.prompt, latency={latency}, record=False).start()
rlm = RLM("root", "sub", base_url=lm.base_url, api_key="k", sandbox="local", max_concurrent={c})
"""


@dataclass
class Cell:
    """What one execute request produced on iopub."""

    reply: dict[str, Any] = field(default_factory=dict)
    widget_comm: str | None = None
    comms_opened: int = 0
    updates: list[tuple[float, int]] = field(default_factory=list)  # (arrival time, bytes)
    streamed: list[str] = field(default_factory=list)  # the "stream" section of each update that had one
    displays: list[dict[str, Any]] = field(default_factory=list)
    stdout: str = ""
    stop_sent: float = 0.0
    customs: list[dict[str, Any]] = field(default_factory=list)  # the widget's own messages (call details)


@pytest.fixture
def kernel() -> Iterator[tuple[KernelManager, BlockingKernelClient]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    km, kc = start_new_kernel(kernel_name="python3", env=env)
    try:
        yield km, kc
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def execute(kc: BlockingKernelClient, code: str, *, metadata: dict[str, Any] | None = None) -> str:
    """An execute request as JupyterLab sends it, with the cell's id in the metadata (or ``metadata``)."""
    content = {"code": code, "silent": False, "store_history": True, "user_expressions": {},
               "allow_stdin": False, "stop_on_error": True}
    meta = {"cellId": "cell-1", "deletedCells": [], "recordTiming": False} if metadata is None else metadata
    message = kc.session.msg("execute_request", content, metadata=meta)
    kc.shell_channel.send(message)
    return str(message["header"]["msg_id"])


def run_cell(kc: BlockingKernelClient, code: str, *, during: Any = None, timeout: float = 120,
             metadata: dict[str, Any] | None = None) -> Cell:
    """Execute ``code``; ``during(cell)`` is called once after the live widget's 5th update."""
    msg_id = execute(kc, code, metadata=metadata)
    cell = Cell()
    called = False
    deadline = time.monotonic() + timeout
    while True:
        msg = kc.get_iopub_msg(timeout=max(0.1, deadline - time.monotonic()))
        if msg["msg_type"] == "comm_msg" and msg["content"]["data"].get("method") == "custom":
            cell.customs.append(msg["content"]["data"]["content"])  # answers to a subshell's request
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        kind, content = msg["msg_type"], msg["content"]
        cell.comms_opened += kind == "comm_open"
        if kind == "comm_open" and content["data"]["state"].get("_esm"):
            cell.widget_comm = content["comm_id"]
        elif kind == "comm_msg" and content["comm_id"] == cell.widget_comm:
            cell.updates.append((time.monotonic(), len(json.dumps(content))))
            if "stream" in content["data"].get("state", {}):
                cell.streamed.append(content["data"]["state"]["stream"])
            if during is not None and not called and len(cell.updates) >= 5:
                called = True
                during(cell)
        elif kind in ("display_data", "update_display_data"):
            cell.displays.append(content["data"])
        elif kind == "stream":
            cell.stdout += content["text"]
        elif kind == "status" and content["execution_state"] == "idle":
            break
    reply = kc.get_shell_msg(timeout=10)
    while reply["parent_header"].get("msg_id") != msg_id:  # a late kernel_info reply from the kernel's start
        reply = kc.get_shell_msg(timeout=10)
    cell.reply = reply["content"]
    return cell


def test_two_thousand_sub_calls_stay_at_about_ten_updates_a_second(kernel):
    _, kc = kernel
    assert run_cell(kc, SETUP.format(n=2000, c=64, latency=(0.05, 0.15))).reply["status"] == "ok"
    cell = run_cell(kc, "result = rlm.completion('ctx', 'q')\nprint(len(result.trace))")
    assert cell.reply["status"] == "ok", cell.reply
    times = [t for t, _ in cell.updates]
    span = times[-1] - times[0]
    rate = (len(times) - 1) / span
    gaps = [b - a for a, b in itertools.pairwise(times)]
    sizes = sorted(size for _, size in cell.updates)
    print(f"\n2,000 sub-calls: {len(times)} updates in {span:.2f} s = {rate:.1f}/s, smallest gap "
          f"{min(gaps) * 1000:.0f} ms, median update {sizes[len(sizes) // 2] / 1024:.0f} KB, "
          f"largest {sizes[-1] / 1024:.0f} KB")
    assert len(times) >= 10, "the view hardly updated during the run"
    assert rate <= 12, "updates are not throttled to about 10 a second"
    assert sizes[-1] < 200_000, "an update carries more than the compact call columns"
    record = cell.displays[-1]
    assert '<span class="rlm-badge rlm-st-ok">done</span>' in record["text/html"]
    assert "llm_batch × 2000" in record["text/html"] and "2000 ok" in record["text/html"]
    assert "2,002/2,002 calls" in record["text/plain"]


def test_the_root_reply_streams_into_the_view_at_a_bounded_rate(kernel):
    _, kc = kernel
    setup = (
        "from rlm import RLM\nfrom rlm.testing import ScriptedLM\n"
        "REPLY = 'Thinking it over, word by word. ' * 8 + '\\n```repl\\nprint(1)\\n```'\n"
        "lm = ScriptedLM(root=[REPLY, 'FINAL(done)'], stream_chars=4, stream_delay=0.02).start()\n"
        "rlm = RLM('root', 'sub', base_url=lm.base_url, api_key='k', sandbox='local')\n"
    )
    assert run_cell(kc, setup).reply["status"] == "ok"
    cell = run_cell(kc, "print(rlm.completion('ctx', 'q').answer)")
    assert cell.reply["status"] == "ok" and cell.stdout.strip() == "done", cell.reply
    shown = [s for s in cell.streamed if "the root is replying" in s and 'data-n="1"' in s]
    assert len(shown) >= 3, f"the streaming reply reached the view {len(shown)} times"
    assert "Thinking it over" in shown[-1] and len(shown[-1]) > len(shown[0]), "the reply did not grow as it streamed"
    times = [t for t, _ in cell.updates]
    assert (len(times) - 1) / (times[-1] - times[0]) <= 12, "streaming broke the ~10 updates a second throttle"
    assert "the root is replying" not in cell.displays[-1]["text/html"]


def send_on_subshell(kc: BlockingKernelClient, comm: str, content: dict[str, Any]) -> None:
    """A widget message as JupyterLab sends it: on a kernel subshell, beside the busy cell."""
    kc.control_channel.send(kc.session.msg("create_subshell_request", {}))
    subshell = kc.get_control_msg(timeout=10)["content"]["subshell_id"]
    message = kc.session.msg("comm_msg", {"comm_id": comm, "data": {"method": "custom", "content": content}})
    message["header"]["subshell_id"] = subshell
    kc.shell_channel.send(message)


def test_a_clicked_call_gets_its_prompt_and_reply_while_the_run_goes_on(kernel):
    _, kc = kernel
    assert run_cell(kc, SETUP.format(n=200, c=4, latency=0.05)).reply["status"] == "ok"
    cell = run_cell(kc, "result = rlm.completion('ctx', 'q')",
                    during=lambda cell: send_on_subshell(kc, cell.widget_comm or "", {"event": "detail", "i": 1}))
    assert cell.reply["status"] == "ok"
    details = [c for c in cell.customs if c.get("detail") == 1]
    assert details, "no detail came back for the clicked call"
    assert "item 0" in details[0]["html"] and "ok item 0" in details[0]["html"]  # call 1: the batch's first item


def test_stop_sent_on_a_subshell_cancels_the_run_and_keeps_the_partial_result(kernel):
    _, kc = kernel
    assert run_cell(kc, SETUP.format(n=400, c=4, latency=0.3)).reply["status"] == "ok"

    def press_stop(cell: Cell) -> None:
        # JupyterLab sends comm messages on a kernel subshell (one per comm target).
        kc.control_channel.send(kc.session.msg("create_subshell_request", {}))
        subshell = kc.get_control_msg(timeout=10)["content"]["subshell_id"]
        message = kc.session.msg(
            "comm_msg", {"comm_id": cell.widget_comm, "data": {"method": "custom", "content": {"event": "stop"}}}
        )
        message["header"]["subshell_id"] = subshell
        kc.shell_channel.send(message)
        cell.stop_sent = time.monotonic()

    cell = run_cell(kc, "result = rlm.completion('ctx', 'q')", during=press_stop)
    elapsed = time.monotonic() - cell.stop_sent
    assert cell.reply["status"] == "error" and cell.reply["ename"] == "Cancelled", cell.reply
    assert elapsed < 5, f"the run took {elapsed:.1f} s to stop"
    assert '<span class="rlm-badge rlm-st-cancelled">stopped</span>' in cell.displays[-1]["text/html"]
    check = run_cell(
        kc,
        "import sys, time\n"
        "partial = sys.last_value.partial\n"
        "deadline = time.monotonic() + 10\n"
        "while lm.stats['in_flight'] and time.monotonic() < deadline: time.sleep(0.02)\n"
        "sent = lm.stats['sub']; watch = time.monotonic() + 1.0\n"  # nothing new may start: watch for 1 s
        "while lm.stats['sub'] == sent and time.monotonic() < watch: time.sleep(0.02)\n"
        "print(partial.stopped, partial.trace[-1].kind, partial.trace[-1].data['status'], "
        "sent, lm.stats['sub'], lm.stats['in_flight'])",
    )
    stopped, last_kind, last_status, sent, later, in_flight = check.stdout.split()
    assert (stopped, last_kind, last_status) == ("cancelled", "run.end", "cancelled")
    assert int(sent) < 100 and int(later) == int(sent) and int(in_flight) == 0, "sub-calls went on after Stop"
    again = run_cell(kc, "lm.root = ['FINAL(fine)']\nprint(rlm.completion('ctx', 'q', view=False).answer)")
    assert again.stdout.strip() == "fine", "the RLM is not usable after a stop"


def test_interrupting_the_kernel_leaves_the_record_of_the_partial_run(kernel):
    km, kc = kernel
    assert run_cell(kc, SETUP.format(n=400, c=4, latency=0.3)).reply["status"] == "ok"
    cell = run_cell(kc, "result = rlm.completion('ctx', 'q')", during=lambda cell: km.interrupt_kernel())
    assert cell.reply["status"] == "error" and cell.reply["ename"] == "KeyboardInterrupt"
    record = cell.displays[-1]["text/html"]
    assert 'class="rlm-view"' in record and "llm_batch × 400" in record
    assert "rlm-st-running" not in record.split('class="rlm-sec rlm-sec-tree"')[1], "spans left running in the record"


def test_magics_answer_into_underscore_rlm_and_report_misuse(kernel):
    _, kc = kernel
    assert run_cell(kc, SETUP.format(n=3, c=2, latency=0.01)).reply["status"] == "ok"
    assert run_cell(kc, "%load_ext rlm").reply["status"] == "ok"
    shown = run_cell(kc, "%rlm_config model=root sub_model=sub base_url={lm.base_url} api_key=k sandbox=local")
    assert "model='root'" in shown.displays[-1]["text/plain"] and "api_key=***" in shown.displays[-1]["text/plain"]
    cell = run_cell(kc, "%%rlm --context text\nHow many items?", timeout=60)
    assert cell.reply["status"] == "error" and "no such variable" in cell.reply["evalue"]
    run_cell(kc, "text = 'some text'")
    cell = run_cell(kc, "%%rlm --context text\nHow many items?")
    assert cell.reply["status"] == "ok", cell.reply
    assert cell.displays[-1]["text/plain"] == "done"
    assert any('class="rlm-view"' in d.get("text/html", "") for d in cell.displays)
    check = run_cell(kc, "print(repr(_rlm), _rlm_result.iterations)")
    assert check.stdout.strip() == "'done' 2"
    bad = run_cell(kc, "%rlm_config colour=blue")
    assert bad.reply["status"] == "error" and "unknown setting 'colour'" in bad.reply["evalue"]


def test_result_trace_displays_the_same_view(kernel):
    _, kc = kernel
    assert run_cell(kc, SETUP.format(n=3, c=2, latency=0.01)).reply["status"] == "ok"
    run_cell(kc, "result = rlm.completion('ctx', 'q', view=False)")
    cell = run_cell(kc, "display(result.trace)")
    assert 'class="rlm-view"' in cell.displays[-1]["text/html"] and "llm_batch × 3" in cell.displays[-1]["text/html"]
    assert "Trace(" in cell.displays[-1]["text/plain"]


def test_acompletion_in_an_await_cell_shows_the_view_too(kernel):
    _, kc = kernel
    assert run_cell(kc, SETUP.format(n=30, c=8, latency=0.05)).reply["status"] == "ok"
    cell = run_cell(kc, "result = await rlm.acompletion('ctx', 'q')\nprint(result.answer)")
    assert cell.reply["status"] == "ok" and cell.stdout.strip() == "done"
    assert cell.widget_comm is not None and cell.updates, "no live view during an await cell"
    assert '<span class="rlm-badge rlm-st-ok">done</span>' in cell.displays[-1]["text/html"]


def test_each_question_of_a_session_shows_its_own_live_view(kernel):
    _, kc = kernel
    assert run_cell(kc, SETUP.format(n=20, c=4, latency=0.03)).reply["status"] == "ok"
    run_cell(kc, "lm.root = [PROGRAM, 'FINAL(first)', '```repl\\nprint(len(answers))\\n```', 'FINAL(second)']\n"
                 "s = rlm.session('ctx')")
    first = run_cell(kc, "print(s.ask('q1').answer)")
    second = run_cell(kc, "print(s.ask('q2').answer); s.close()")
    assert first.stdout.strip() == "first" and second.stdout.strip() == "second"
    assert first.widget_comm and second.widget_comm and first.widget_comm != second.widget_comm
    assert "llm_batch × 20" in first.displays[-1]["text/html"]
    assert "q2" in second.displays[-1]["text/html"] and "llm_batch" not in second.displays[-1]["text/html"]


def test_the_private_ipykernel_hook_the_stop_button_needs_is_still_there():
    """No public API lets a widget answer on the frontend's subshell; fail loudly if the private one moves."""
    import inspect

    import ipykernel
    from ipykernel.comm.comm import Comm

    major = int(ipykernel.__version__.split(".")[0])
    if major < 7:
        pytest.skip("ipykernel < 7 has no subshells, so Stop needs no hook")
    hook = getattr(Comm, "_reply_subshell_for", None)
    assert hook is not None, f"ipykernel {ipykernel.__version__} renamed Comm._reply_subshell_for: fix rlm.widgets.live"
    assert list(inspect.signature(hook).parameters) == ["self", "data", "default"]


def test_a_headless_executor_gets_the_static_view_redrawn_and_no_widget(kernel):
    """nbclient, nbconvert and papermill send no request metadata and keep every widget's state in the file."""
    _, kc = kernel
    assert run_cell(kc, SETUP.format(n=60, c=4, latency=0.1), metadata={}).reply["status"] == "ok"
    cell = run_cell(kc, "result = rlm.completion('ctx', 'q')", metadata={})
    assert cell.reply["status"] == "ok", cell.reply
    assert cell.comms_opened == 0, "a widget was opened for a frontend that cannot draw it"
    views = [d["text/html"] for d in cell.displays if 'class="rlm-view"' in d.get("text/html", "")]
    assert len(views) >= 3, f"the static view was drawn {len(views)} times during a 1.5 s run"
    assert "rlm-st-running" in views[0] and '<span class="rlm-badge rlm-st-ok">done</span>' in views[-1]


def test_rlm_live_view_overrides_the_choice(kernel):
    _, kc = kernel
    setup = "import os\nos.environ['RLM_LIVE_VIEW'] = 'widget'\n" + SETUP.format(n=3, c=2, latency=0.0)
    assert run_cell(kc, setup, metadata={}).reply["status"] == "ok"
    assert run_cell(kc, "rlm.completion('ctx', 'q')", metadata={}).widget_comm is not None
    assert run_cell(kc, "os.environ['RLM_LIVE_VIEW'] = 'static'\nrlm.completion('ctx', 'q')").comms_opened == 0
    bad = run_cell(kc, "os.environ['RLM_LIVE_VIEW'] = 'fancy'\nrlm.completion('ctx', 'q')")
    assert bad.reply["status"] == "error" and bad.reply["ename"] == "ConfigError", bad.reply
    assert "use widget, static or auto" in bad.reply["evalue"]


def test_show_replays_a_saved_log_with_every_call_clickable(kernel, tmp_path):
    _, kc = kernel
    assert run_cell(kc, SETUP.format(n=300, c=32, latency=0.0)).reply["status"] == "ok"
    log = tmp_path / "run.jsonl"
    done = run_cell(kc, f"import rlm as r\nrlm.completion('ctx', 'q', view=False).trace.to_jsonl({str(log)!r})")
    assert done.reply["status"] == "ok", done.reply
    cell = run_cell(kc, f"r.show({str(log)!r})")
    assert cell.reply["status"] == "ok" and cell.widget_comm, cell.reply
    click = {"method": "custom", "content": {"event": "detail", "i": 251}}
    kc.shell_channel.send(kc.session.msg("comm_msg", {"comm_id": cell.widget_comm, "data": click}))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        msg = kc.get_iopub_msg(timeout=max(0.1, deadline - time.monotonic()))
        if msg["msg_type"] == "comm_msg" and msg["content"]["data"].get("content", {}).get("detail") == 251:
            assert "item 250" in msg["content"]["data"]["content"]["html"]  # beyond the record's 200 calls
            break
    else:
        pytest.fail("no detail came back for call 251 of the replayed run")
    static = run_cell(kc, f"r.show(r.Trace.load({str(log)!r}))", metadata={})
    assert static.comms_opened == 0 and 'class="rlm-view"' in static.displays[-1]["text/html"]
    bad = run_cell(kc, "r.show(42)")
    assert bad.reply["ename"] == "ConfigError" and "a Trace, an RLMResult or a log path" in bad.reply["evalue"]
