"""Hostile root code that crashes, exits, signals other processes or leaves processes behind."""

from __future__ import annotations

import textwrap

from sandbox_modes import running, unique_sleep
from security_harness import Sandbox

RESTARTED = "The sandbox was restarted: every variable was lost"


def test_killing_the_parent_process_does_not_reach_the_host(sandbox: Sandbox) -> None:
    # Without a pid namespace or a uid of its own, the kernel's parent IS this test process.
    sandbox.require_confined()
    result = sandbox.attack("import os\nos.kill(os.getppid(), 9)")
    # We run the completion, so we are the host: reaching this line is the survival.
    assert "PermissionError" in (sandbox.step(result).error or ""), sandbox.step(result)
    sandbox.check_survived(result)


def test_killing_every_process_it_can_does_not_reach_the_host(sandbox: Sandbox) -> None:
    # kill(-1) as root outside a pid namespace would signal every process on the machine.
    sandbox.require_confined()
    result = sandbox.attack("import os, signal\nos.kill(-1, signal.SIGKILL)")
    sandbox.check_survived(result)


def test_ctypes_segfault_restarts_the_kernel(sandbox: Sandbox) -> None:
    result = sandbox.attack("import ctypes\nctypes.string_at(0)")
    error = sandbox.step(result).error
    assert "killed by signal 11" in error and RESTARTED in error
    sandbox.check_survived(result)


def test_sys_exit_is_an_ordinary_error(sandbox: Sandbox) -> None:
    result = sandbox.attack("kept = 1\nimport sys\nsys.exit(3)", then="print('alive' if kept else '')")
    assert "SystemExit: 3" in sandbox.step(result).error
    sandbox.check_survived(result)


def test_exit_and_quit_are_ordinary_errors(sandbox: Sandbox) -> None:
    result = sandbox.attack("kept = 1\nexit()", then="quit(2) if not kept else print('alive')")
    assert "SystemExit" in sandbox.step(result).error
    sandbox.check_survived(result)


def test_os_exit_restarts_the_kernel(sandbox: Sandbox) -> None:
    result = sandbox.attack("import os\nos._exit(7)")
    error = sandbox.step(result).error
    assert "exited with code 7" in error and RESTARTED in error
    sandbox.check_survived(result)


def test_detached_background_processes_do_not_outlive_the_step(sandbox: Sandbox) -> None:
    sandbox.require_confined()
    first, second = unique_sleep(600), unique_sleep(601)
    code = textwrap.dedent("""\
        import os, subprocess
        subprocess.Popen(['sleep', FIRST], start_new_session=True)
        if os.fork() == 0:          # a classic daemon: fork, setsid, fork, parent exits
            os.setsid()
            if os.fork() == 0:
                os.execvp('sleep', ['sleep', SECOND])
            os._exit(0)
        os.wait()
        print('spawned')""").replace("FIRST", repr(first)).replace("SECOND", repr(second))
    result = sandbox.attack(code)
    assert sandbox.step(result).stdout == "spawned\n"
    sandbox.check_survived(result)  # asserts no stray process of any kernel of the pool
    assert running(f"sleep {first}") == running(f"sleep {second}") == []


def test_a_background_thread_cannot_keep_calling_models(sandbox: Sandbox) -> None:
    code = textwrap.dedent("""\
        import builtins, threading, time
        builtins.SPINNER = calls = []
        def spin():
            while True:
                try:
                    calls.append(llm_query('spam'))
                except Exception:
                    time.sleep(0.05)
        threading.Thread(target=spin, daemon=True).start()
        deadline = time.monotonic() + 1.5  # within the step timeout
        while not calls and time.monotonic() < deadline:
            time.sleep(0.01)
        print('spinning', bool(calls))""")
    started = sandbox.pool.started
    result = sandbox.attack(code, then="print('alive')")
    assert sandbox.step(result).stdout == "spinning True\n"  # it did call models while the step ran
    sandbox.check_survived(result)
    calls_after = sandbox.lm.stats["sub"]
    # The next completion runs steps too; the spinning thread must not be in its interpreter.
    later = sandbox.attack("import builtins\nprint(hasattr(builtins, 'SPINNER'))")
    assert sandbox.step(later).stdout == "False\n"
    assert sandbox.lm.stats["sub"] == calls_after
    assert not [r for r in sandbox.lm.sub_requests[calls_after:] if r.prompt == "spam"]
    assert sandbox.pool.started > started  # the kernel with the thread was not reused
    sandbox.check_survived(later)



def test_tampering_with_the_kernels_own_helpers_does_not_reach_the_next_completion(sandbox: Sandbox) -> None:
    code = textwrap.dedent("""\
        import sys
        k = sys.modules['_rlm_in_kernel']
        k.load = k.get = lambda *a, **kw: None   # the next completion's context would never arrive
        k.reset = lambda: k._reply({'ok': True, 'threads': []})""")
    started = sandbox.pool.started
    result = sandbox.attack(code)
    sandbox.check_survived(result)
    later = sandbox.attack("print(context)")
    assert sandbox.step(later).stdout == "the context\n"
    assert sandbox.pool.started > started  # the tampered kernel was replaced, not trusted
    sandbox.check_survived(later)
