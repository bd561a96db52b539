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

import rlm
from rlm import RLM, SandboxConfig
from rlm.repl import procs
from rlm.repl.sandbox_env import bwrap_path
from rlm.testing import ScriptedLM

PROGRAM = "```repl\nimport time\ntime.sleep(0.3)\nv = llm_query('x')\n```"
MODES = pytest.mark.parametrize("mode", ["bwrap", "none"])


def config(mode: str) -> SandboxConfig:
    if mode == "bwrap" and bwrap_path() is None:
        pytest.skip("bubblewrap is not installed")
    return SandboxConfig(isolation=mode)


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
    raise AssertionError(f"left behind: processes {[p for p in pids if _alive(p)]}, dirs {[d for d in dirs if os.path.exists(d)]}")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] not in "ZX"
    except OSError:
        return False


@MODES
def test_close_kills_every_kernel_and_removes_its_files(mode: str) -> None:
    before = children()
    with ScriptedLM(root=lambda r: "FINAL_VAR(v)" if len(r.messages) > 2 else PROGRAM) as lm:
        rlm_ = RLM("root", base_url=lm.base_url, api_key="k", sandbox=config(mode))
        threads = [threading.Thread(target=rlm_.completion, args=("c", "q")) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        pids, dirs = sandbox_state(rlm_)
        assert len(dirs) >= 2 and all(_alive(p) for p in pids)
        assert children() - before, "the kernels should be our children until closed"
        rlm_.close()
    wait_gone(pids, dirs)
    assert children() - before == set()


def test_garbage_collection_kills_the_kernels() -> None:
    with ScriptedLM(root=[PROGRAM, "FINAL_VAR(v)"]) as lm:
        rlm_ = RLM("root", base_url=lm.base_url, api_key="k")
        assert rlm_.completion("c", "q").answer == "ok"
        pids, dirs = sandbox_state(rlm_)
        assert pids
        del rlm_
        gc.collect()
    wait_gone(pids, dirs)


@MODES
def test_a_crashed_kernel_and_its_replacement_leave_nothing_behind(mode: str) -> None:
    before = children()
    replies = ["```repl\nimport subprocess\nsubprocess.Popen(['sleep', '300'])\nimport os\nos._exit(1)\n```",
               "```repl\nimport ctypes\nctypes.string_at(0)\n```", "FINAL(survived)"]
    with ScriptedLM(root=replies) as lm, RLM("root", base_url=lm.base_url, api_key="k", sandbox=config(mode)) as rlm_:
        result = rlm_.completion("c", "q")
        assert result.answer == "survived" and "restarted" in result.steps[1].outputs[0].error
        pids, dirs = sandbox_state(rlm_)
        assert rlm_.kernels.started == 3
    wait_gone(pids, dirs)
    assert children() - before == set()
    assert not [p for p in procs.all_pids() if _cmdline(p) == "sleep 300"]


HOST = textwrap.dedent("""\
    import json, sys, time
    from rlm import RLM, SandboxConfig
    from rlm.testing import ScriptedLM
    lm = ScriptedLM(root=["```repl\\nx = 1\\n```", "FINAL(ok)"]).start()
    r = RLM("root", base_url=lm.base_url, api_key="k", sandbox=SandboxConfig(isolation=sys.argv[2]))
    r.completion("c", "q")
    k = r.kernels.kernels
    print(json.dumps([[p for kk in k for p in kk.processes()] + [kk.launched_pid for kk in k], [kk.rundir for kk in k]]), flush=True)
    if sys.argv[1] == "hang":
        time.sleep(600)
""")


def _host(then: str, mode: str) -> subprocess.Popen[str]:
    config(mode)
    env = {**os.environ, "PYTHONPATH": str(Path(rlm.__file__).parents[1])}
    return subprocess.Popen([sys.executable, "-c", HOST, then, mode], stdout=subprocess.PIPE, text=True, env=env)


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
    from rlm.repl.sandbox_kernel import remove_stale_rundirs

    remove_stale_rundirs()
    assert not any(os.path.exists(d) for d in dirs)


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""
