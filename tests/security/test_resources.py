"""Hostile root code that burns CPU, memory, processes, output and disk, or kills things."""

from __future__ import annotations

import glob
import os
import tempfile
import textwrap

from security_harness import DISK_MB, STEP_TIMEOUT, Sandbox

from rlm.repl.sandbox.rundir import RUNDIR_PREFIX
from rlm.testing import ScriptedRequest

RESTARTED = "The sandbox was restarted: every variable was lost"


def test_infinite_loop_is_interrupted_and_state_is_kept(sandbox: Sandbox) -> None:
    result = sandbox.attack("kept = 41\nwhile True:\n    pass", then="kept += 1\nprint('alive')")
    error = sandbox.step(result).error
    assert f"timed out after {STEP_TIMEOUT:g} s and was interrupted" in error and RESTARTED not in error
    sandbox.check_survived(result)


def test_loop_that_ignores_interrupts_gets_the_kernel_restarted(sandbox: Sandbox) -> None:
    code = "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass"
    result = sandbox.attack(code, then="print('alive' if 'signal' not in dir() else 'stale')")
    assert "did not stop when interrupted" in sandbox.step(result).error
    assert RESTARTED in sandbox.step(result).error
    sandbox.check_survived(result)


def test_loop_that_swallows_keyboard_interrupt_gets_the_kernel_restarted(sandbox: Sandbox) -> None:
    code = "while True:\n    try:\n        while True:\n            pass\n    except BaseException:\n        pass"
    result = sandbox.attack(code)
    assert RESTARTED in sandbox.step(result).error
    sandbox.check_survived(result)


def test_infinite_recursion_is_a_plain_error(sandbox: Sandbox) -> None:
    result = sandbox.attack("def f():\n    return f()\nf()")
    assert "RecursionError" in sandbox.step(result).error
    sandbox.check_survived(result)


def test_memory_bomb_is_a_memory_error(sandbox: Sandbox) -> None:
    sandbox.require_confined()
    result = sandbox.attack("x = bytearray(10**11)")
    assert "MemoryError" in sandbox.step(result).error
    # bytes(n) takes zeroed pages lazily: the hoard reaches the address-space limit in well
    # under a second, where zero-filling 4 GiB (bytearray) outran the 2 s step timeout on a
    # loaded machine. The limit that stops it is the same either way.
    result = sandbox.attack("hoard = []\nwhile True:\n    hoard.append(bytes(10**8))")
    assert "MemoryError" in sandbox.step(result).error
    sandbox.check_survived(result)


def test_fork_bomb_is_contained(sandbox: Sandbox) -> None:
    # Root is exempt from RLIMIT_NPROC: a fork bomb in a root kernel would take the machine down.
    sandbox.require_confined()
    sandbox.require("process_limit")
    result = sandbox.attack("import os\nwhile True:\n    os.fork()")
    error = sandbox.step(result).error
    assert "BlockingIOError" in error or "processes" in error
    sandbox.check_survived(result)


def test_gigabyte_of_print_output_is_capped(sandbox: Sandbox) -> None:
    code = "import sys\nchunk = 'x' * 2**20\nfor _ in range(1024):\n    sys.stdout.write(chunk)\nprint('END')"
    result = sandbox.attack(code)
    out = sandbox.step(result).stdout
    assert "characters omitted" in out and out.endswith("END\n") and len(out) < 2_100_000
    sandbox.check_survived(result)


def test_gigabyte_written_to_the_raw_file_descriptors_goes_nowhere(sandbox: Sandbox) -> None:
    code = textwrap.dedent("""\
        import os
        chunk = b'x' * 2**20
        for fd in (1, 2):
            for _ in range(1024):
                os.write(fd, chunk)
        print('done')""")
    replies = [f"```repl\n{code}\n```", "```repl\nprint('alive')\n```", "FINAL(done)"]
    logs_after_attack: list[int] = []

    def root(request: ScriptedRequest) -> str:
        # Each root call after the first comes while the kernel that ran the attack is still
        # lent out: its log (and every other kernel's of this process) is measured then.
        if len(replies) < 3:
            logs = glob.glob(os.path.join(tempfile.gettempdir(), f"{RUNDIR_PREFIX}{os.getpid()}-*", "kernel.log"))
            logs_after_attack.extend(os.path.getsize(log) for log in logs)
        return replies.pop(0)

    sandbox.lm.root = root
    result = sandbox.rlm.completion("the context", "q")
    assert sandbox.step(result).stdout == "done\n" and sandbox.step(result).error is None
    assert logs_after_attack and max(logs_after_attack) < 2**20
    sandbox.check_survived(result)


def test_a_file_larger_than_the_limit_cannot_be_written(sandbox: Sandbox) -> None:
    code = "try:\n    open('big', 'wb').write(b'x' * 65 * 2**20)\nexcept OSError as e:\n    print(e.errno)"
    result = sandbox.attack(code)
    assert sandbox.step(result).stdout == "27\n"  # EFBIG: RLIMIT_FSIZE, not a full disk
    sandbox.check_survived(result)


def test_filling_the_disk_stops_at_the_limit(sandbox: Sandbox) -> None:
    sandbox.require("disk_mb")  # a tmpfs of its own; with isolation='none' the kernel writes wherever you can
    code = textwrap.dedent("""\
        import os
        written = 0
        try:
            for i in range(64):
                with open(f'fill{i}', 'wb') as fh:
                    for _ in range(63):
                        fh.write(b'x' * 2**20)
                        fh.flush()
                        written += 1
        except OSError as e:
            print(type(e).__name__, e.errno)
        print(written)""")
    result = sandbox.attack(code)
    error, written = sandbox.step(result).stdout.splitlines()
    assert error == "OSError 28"  # ENOSPC: the total, not one file's size (that would be EFBIG, 27)
    assert sandbox.isolation.disk_mb - 8 <= int(written) <= sandbox.isolation.disk_mb == DISK_MB
    sandbox.check_survived(result)
