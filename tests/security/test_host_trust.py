"""The host trusts nothing the kernel can write or say: its files, its links, its threads, its memory."""

from __future__ import annotations

import os
import platform
import textwrap
import time

import pytest
from sandbox_modes import running, unique_sleep
from security_harness import CANARY, Sandbox


def test_the_run_directory_cannot_be_written_so_no_link_or_fifo_is_ever_followed(
        sandbox: Sandbox, outside_dir: str) -> None:
    sandbox.require("filesystem_hidden", "separate_user")
    target = os.path.join(outside_dir, "secret.txt")
    code = textwrap.dedent(f"""\
        import os, sys
        rundir = os.path.dirname(sys.modules['_rlm_in_kernel']._runtime.bridge._path)
        results = []
        for name in ['context-2.str', 'context-2.pickle', 'kernel.log', 'planted']:
            for plant in (lambda p: os.symlink({target!r}, p), os.mkfifo, lambda p: open(p, 'w').write('x')):
                try:
                    plant(os.path.join(rundir, name))
                    results.append('PLANTED ' + name)
                except OSError as e:
                    results.append(type(e).__name__)
        for sub in ('sock', 'spec'):
            try:
                open(os.path.join(rundir, sub, 'planted'), 'w').write('x' * 1000)
                results.append('PLANTED in ' + sub)
            except OSError as e:
                results.append(type(e).__name__)
        print(sorted(set(results)))""")
    result = sandbox.attack(code)
    out = sandbox.step(result).stdout
    assert "PLANTED" not in out and "Error" in out, out
    sandbox.check_survived(result)
    with open(target) as fh:
        assert fh.read() == CANARY  # neither overwritten nor chowned through a planted link
    assert os.stat(target).st_uid == os.geteuid()


def test_a_thread_left_by_start_new_thread_never_meets_the_next_completion(sandbox: Sandbox) -> None:
    code = textwrap.dedent("""\
        import _thread, builtins, time, sys
        builtins.SPY_WAS_HERE = True  # seen by any code that runs in this interpreter later
        def spy():
            while True:
                try:
                    ns = sys.modules['_rlm_in_kernel']._runtime.ns
                    if ns.get('context') != 'the context':
                        llm_query('leak ' + str(ns.get('context')))
                except Exception:
                    pass
                time.sleep(0.02)
        _thread.start_new_thread(spy, ())""")
    sandbox.attack(code)
    before = sandbox.lm.stats["sub"]
    sandbox.lm.root = ["```repl\nimport builtins\nprint(context, hasattr(builtins, 'SPY_WAS_HERE'))\n```",
                       "FINAL(done)"]
    later = sandbox.rlm.completion("the next user's document", "q")
    # another interpreter: the spy, which would have called at once on this context, is not in it
    assert sandbox.step(later).stdout == "the next user's document False\n"
    assert sandbox.lm.stats["sub"] == before
    assert not [r for r in sandbox.lm.sub_requests if r.prompt.startswith("leak")]


def test_the_key_is_in_no_memory_the_kernel_can_read(sandbox: Sandbox) -> None:
    sandbox.require_confined()
    code = textwrap.dedent(f"""\
        import os
        canary, hits, read = {CANARY!r}.encode(), [], 0
        for pid in [p for p in os.listdir('/proc') if p.isdigit()] + ['%d' % os.getppid()]:
            if pid == str(os.getpid()):
                continue  # our own memory holds the canary we search for
            try:
                maps = open(f'/proc/{{pid}}/maps').read().splitlines()
                mem = open(f'/proc/{{pid}}/mem', 'rb')
            except OSError:
                continue
            with mem:
                for line in maps:
                    lo, hi = (int(x, 16) for x in line.split()[0].split('-'))
                    if 'r' not in line.split()[1] or hi - lo > 2**28:
                        continue
                    try:
                        mem.seek(lo)
                        chunk = mem.read(hi - lo)
                    except (OSError, OverflowError, ValueError):
                        continue
                    read += len(chunk)
                    if canary in chunk:
                        hits.append(pid)
        print('hits', sorted(set(hits)), read > 0)""")
    result = sandbox.attack(code)
    assert sandbox.step(result).stdout.startswith("hits []"), sandbox.step(result)
    sandbox.check_survived(result)


@pytest.mark.skipif(platform.machine() != "x86_64", reason="the raw clone() call below is x86_64's")
def test_a_clone_parent_child_does_not_outlive_its_kernel(sandbox: Sandbox) -> None:
    sandbox.require_confined()
    sleep = unique_sleep(603)
    code = textwrap.dedent("""\
        import ctypes, os, signal
        libc = ctypes.CDLL(None, use_errno=True)
        CLONE_PARENT = 0x00008000
        pid = libc.syscall(56, CLONE_PARENT | signal.SIGCHLD, 0, 0, 0, 0)
        if pid == 0:
            os.execvp('sleep', ['sleep', SLEEP])
        print('cloned', pid > 0)""").replace("SLEEP", repr(sleep))
    result = sandbox.attack(code)
    assert sandbox.step(result).stdout == "cloned True\n"
    sandbox.check_survived(result)
    assert not running(f"sleep {sleep}")


def test_a_very_deep_directory_tree_is_removed_and_blocks_nothing(sandbox: Sandbox) -> None:
    code = textwrap.dedent("""\
        import os
        start, level = os.getcwd(), '/'.join(['d'] * 100)
        for i in range(15):  # 1,500 levels, a file at every hundredth
            os.makedirs(level)
            os.chdir(level)
            open('f', 'w').close()
        os.chdir(start)
        print('deep')""")
    dirs_before = {k.rundir for k in sandbox.pool.kernels}
    result = sandbox.attack(code)
    assert sandbox.step(result).stdout == "deep\n", sandbox.step(result)
    sandbox.check_survived(result)
    deadline = time.monotonic() + 20
    while (left := [d for d in _rundirs() if d not in dirs_before | {k.rundir for k in sandbox.pool.kernels}]):
        assert time.monotonic() < deadline, f"a finished completion's run directory was left behind: {left}"
        time.sleep(0.05)
    sandbox.check_survived(sandbox.attack("pass"))


def _rundirs() -> list[str]:
    import tempfile

    base = tempfile.gettempdir()
    return [os.path.join(base, n) for n in os.listdir(base) if n.startswith(f"rlm-sbx-{os.getpid()}-")]



def test_without_bubblewrap_the_kernel_writes_only_in_its_own_dir(sandbox: Sandbox) -> None:
    if sandbox.isolation.mode != "uid" or not sandbox.isolation.landlock:
        pytest.skip("Landlock confines writes of a kernel that sees the host's filesystem (mode uid); "
                    "under bubblewrap /tmp is the sandbox's own, and mode none confines nothing")
    probe = f"/tmp/rlm-landlock-probe-{os.getpid()}"
    code = textwrap.dedent(f"""\
        out = []
        for path in ({probe!r}, '/dev/shm/rlm-landlock-probe', '/var/tmp/rlm-landlock-probe', 'mine.txt'):
            try:
                open(path, 'w').write('x'); out.append('wrote')
            except OSError as e:
                out.append(type(e).__name__)
        open('/dev/null', 'w').write('fine')
        print(out)""")
    result = sandbox.attack(code)
    assert sandbox.step(result).stdout == "['PermissionError', 'PermissionError', 'PermissionError', 'wrote']\n"
    assert not os.path.exists(probe)
    sandbox.check_survived(result)


def test_without_a_network_namespace_no_socket_but_unix_can_be_made(sandbox: Sandbox) -> None:
    if sandbox.isolation.mode != "uid":
        pytest.skip("the seccomp filter stands in for a network namespace in mode uid only")
    sandbox.require("network_blocked")
    code = textwrap.dedent("""\
        import socket
        out = []
        for family, kind in ((socket.AF_INET, socket.SOCK_DGRAM), (socket.AF_INET6, socket.SOCK_STREAM),
                             (socket.AF_NETLINK, socket.SOCK_RAW), (socket.AF_PACKET, socket.SOCK_RAW)):
            try:
                socket.socket(family, kind).close(); out.append('made')
            except OSError as e:
                out.append(e.errno)
        a, b = socket.socketpair()
        print(out, 'unix ok')""")
    result = sandbox.attack(code)
    assert sandbox.step(result).stdout == "[13, 13, 13, 13] unix ok\n"
    sandbox.check_survived(result)
