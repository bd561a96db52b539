"""No sandbox process or run directory outlives its RLM: close, GC, crash, exit, a killed host."""

from __future__ import annotations

import gc
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from sandbox_modes import MODES as ALL_MODES
from sandbox_modes import cmdline, running, sandbox_config, unique_sleep

import rlm
from rlm import RLM, SandboxConfig
from rlm.repl.sandbox import procs
from rlm.testing import ScriptedLM

PROGRAM = "```repl\nimport time\ntime.sleep(0.3)\nv = llm_query('x')\n```"
SLOW = "```repl\nimport time\ntime.sleep(1.5)\nv = llm_query('x')\n```"
MODES = pytest.mark.parametrize("mode", ALL_MODES)


def config(mode: str) -> SandboxConfig:
    return sandbox_config(mode)


def children() -> set[int]:
    return {p.pid for p in procs.descendants(os.getpid())}


def sandbox_state(rlm_: RLM) -> tuple[list[int], list[str]]:
    assert rlm_.kernels is not None
    kernels = rlm_.kernels.kernels
    pids = [pid for k in kernels for pid in k.processes()]
    pids += [k.launched_pid for k in kernels if k.launched_pid]
    return pids, [k.rundir for k in kernels]


def wait_gone(pids: list[int], dirs: list[str], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = [p for p in pids if _alive(p)]
        if not alive and not any(os.path.exists(d) for d in dirs):
            return
        time.sleep(0.1)
    raise AssertionError(
        f"left behind: processes {[p for p in pids if _alive(p)]}, dirs {[d for d in dirs if os.path.exists(d)]}"
    )


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] not in "ZX"
    except OSError:
        return False


def wait_for(predicate, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("timed out waiting")


@MODES
def test_a_finished_completions_kernel_is_gone_and_close_kills_the_rest(mode: str) -> None:
    before = children()
    with ScriptedLM(root=lambda r: "FINAL_VAR(v)" if len(r.messages) > 2 else SLOW) as lm:
        rlm_ = RLM("root", base_url=lm.base_url, api_key="k", sandbox=config(mode))
        threads = [threading.Thread(target=rlm_.completion, args=("c", "q")) for _ in range(3)]
        for t in threads:
            t.start()
        busy = wait_for(lambda: [k for k in rlm_.kernels.kernels if k.bridge.step_open] if len(
            [k for k in rlm_.kernels.kernels if k.bridge.step_open]) == 3 else None)
        used_pids = [pid for k in busy for pid in [*k.processes(), k.launched_pid]]
        used_dirs = [k.rundir for k in busy]
        for t in threads:
            t.join(60)
        wait_gone(used_pids, used_dirs)  # each kernel died with its completion
        wait_for(lambda: rlm_.kernels.stats()["warm"] == 1)
        pids, dirs = sandbox_state(rlm_)
        assert pids and all(_alive(p) for p in pids)
        assert children() - before, "the warm kernel is our child until closed"
        rlm_.close()
    wait_gone(pids, dirs)
    assert children() - before == set()


def test_garbage_collection_kills_the_kernels() -> None:
    with ScriptedLM(root=[PROGRAM, "FINAL_VAR(v)"]) as lm:
        rlm_ = RLM("root", base_url=lm.base_url, api_key="k")
        assert rlm_.completion("c", "q").answer == "ok"
        pool = rlm_.kernels
        assert pool is not None
        wait_for(lambda: pool.stats()["warm"] == 1)
        pids, dirs = sandbox_state(rlm_)
        assert pids
        del rlm_
        pool = None  # the last reference goes too (not del: the lambda above names it)
        gc.collect()
    wait_gone(pids, dirs)


@MODES
def test_a_crashed_kernel_and_its_replacement_leave_nothing_behind(mode: str) -> None:
    before = children()
    sleep = unique_sleep(300)
    replies = [f"```repl\nimport subprocess\nsubprocess.Popen(['sleep', '{sleep}'])\nimport os\nos._exit(1)\n```",
               "```repl\nimport ctypes\nctypes.string_at(0)\n```", "FINAL(survived)"]
    with ScriptedLM(root=replies) as lm, RLM("root", base_url=lm.base_url, api_key="k", sandbox=config(mode)) as rlm_:
        result = rlm_.completion("c", "q")
        assert result.answer == "survived" and "restarted" in result.steps[1].outputs[0].error
        pids, dirs = sandbox_state(rlm_)
        assert rlm_.kernels.started == 3
    wait_gone(pids, dirs)
    assert children() - before == set()
    wait_for(lambda: not running(f"sleep {sleep}"), timeout=10)  # a SIGKILLed process may take a moment to go


HOST = textwrap.dedent("""\
    import json, sys, threading, time
    from rlm import RLM, SandboxConfig
    from rlm.testing import ScriptedLM
    lm = ScriptedLM(root=["```repl\\nx = 1\\n```", "FINAL(ok)"]).start()
    r = RLM("root", base_url=lm.base_url, api_key="k", sandbox=SandboxConfig(**json.loads(sys.argv[2])))
    r.completion("c", "q")
    if sys.argv[1] == "hang-in-step":  # a step that started a process of its own, still running
        lm.root = [f"```repl\\nimport subprocess, time\\nsubprocess.Popen(['sleep', {sys.argv[3]!r}])\\n"
                   "time.sleep(600)\\n```", "FINAL(ok)"]
        threading.Thread(target=r.completion, args=("c", "q"), daemon=True).start()
    mine = lambda: [p for kk in r.kernels.kernels for p in kk.processes()]
    while r.kernels.stats()["warm"] < 1 or (sys.argv[1] == "hang-in-step" and not [
            p for p in mine() if open(f"/proc/{p}/cmdline").read() == "sleep\\0" + sys.argv[3] + "\\0"]):
        time.sleep(0.05)
    k = r.kernels.kernels
    print(json.dumps([mine() + [kk.launched_pid for kk in k], [kk.rundir for kk in k]]), flush=True)
    if sys.argv[1].startswith("hang"):
        time.sleep(600)
""")


def _host(then: str, mode: str, sleep: str = "") -> subprocess.Popen[str]:
    c = config(mode)
    settings = json.dumps({"isolation": c.isolation, "python": c.python, "extra_env": dict(c.extra_env)})
    env = {**os.environ, "PYTHONPATH": str(Path(rlm.__file__).parents[1])}
    return subprocess.Popen([sys.executable, "-c", HOST, then, settings, sleep], stdout=subprocess.PIPE, text=True,
                            env=env)


@MODES
def test_interpreter_exit_without_close_leaves_nothing_behind(mode: str) -> None:
    host = _host("exit", mode)
    out, _ = host.communicate(timeout=90)
    pids, dirs = json.loads(out.strip().splitlines()[-1])
    assert host.returncode == 0 and pids
    wait_gone(pids, dirs)


@MODES
def test_a_sigkilled_host_takes_its_kernels_with_it(mode: str) -> None:
    host = _host("hang", mode)
    try:
        line = host.stdout.readline()
        pids, dirs = json.loads(line)
        assert all(_alive(p) for p in pids)
        host.send_signal(signal.SIGKILL)
        host.wait(10)
        wait_gone(pids, [])  # no cleanup code ran; the kernels die with their parent
    finally:
        host.kill()
        host.wait()
        host.stdout.close()
    # the next pool removes the run directories a killed host could not
    from rlm.repl.sandbox.rundir import remove_stale

    remove_stale()
    # Every pool that starts removes stale directories too (other test workers' among them):
    # one may still be finishing a directory this call found half gone.
    wait_gone([], dirs)



@MODES
def test_a_sigkilled_host_takes_what_a_running_step_started_with_it(mode: str) -> None:
    """PR_SET_PDEATHSIG is not inherited: without a pid namespace the reaper ends the kernel's children."""
    sleep = unique_sleep(300)
    host = _host("hang-in-step", mode, sleep)
    try:
        pids, _ = json.loads(host.stdout.readline())
        assert [p for p in pids if cmdline(p) == f"sleep {sleep}"], "the step's process is not among the sandbox's"
        host.send_signal(signal.SIGKILL)
        host.wait(10)
        wait_gone(pids, [])
    finally:
        host.kill()
        host.wait()
        host.stdout.close()
        procs.kill(running(f"sleep {sleep}"))  # ours, if the test failed


@MODES
def test_closing_an_rlm_whose_warm_kernel_died_returns(mode: str) -> None:
    """A kernel killed from outside (the OOM killer, a crash) must not hang close(): no send to it may block."""
    with ScriptedLM(root=[PROGRAM, "FINAL_VAR(v)"]) as lm:
        rlm_ = RLM("root", base_url=lm.base_url, api_key="k", sandbox=config(mode))
        assert rlm_.completion("c", "q").answer == "ok"
        assert rlm_.kernels is not None
        wait_for(lambda: rlm_.kernels is not None and rlm_.kernels.stats()["warm"] == 1)
        pids, dirs = sandbox_state(rlm_)
        for pid in pids:  # every process of the warm kernel: ours, started by this test's RLM
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        closer = threading.Thread(target=rlm_.close, daemon=True)
        closer.start()
        closer.join(30)
        assert not closer.is_alive(), "close() hung on a dead kernel"
    wait_gone(pids, dirs)


def test_no_send_to_a_dead_kernel_waits_for_good(tmp_path: Path) -> None:
    """The sandbox context never reconnects, so a socket whose peer died is mute: its sends time out instead."""
    import zmq

    from rlm.repl.sandbox.pool import SEND_TIMEOUT_MS, zmq_context

    address = f"ipc://{tmp_path}/peer"
    peer = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, zmq
        router = zmq.Context().socket(zmq.ROUTER)
        router.bind({address!r})
        print("bound", flush=True)
        router.recv_multipart()
        """)], stdout=subprocess.PIPE, text=True)
    assert peer.stdout is not None and peer.stdout.readline().strip() == "bound"
    sock = zmq_context().socket(zmq.DEALER)
    blocking = zmq.Socket.shadow(sock.underlying)  # as jupyter_client's Session sends: a send that waits
    try:
        sock.connect(address)
        blocking.send(b"hello")  # connected: the peer reads it and exits
        assert peer.wait(10) == 0
        started = time.monotonic()
        with pytest.raises(zmq.Again):
            blocking.send(b"are you there")
        assert time.monotonic() - started < SEND_TIMEOUT_MS / 1000 + 5
    finally:
        sock.close(linger=0)
