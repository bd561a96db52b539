"""Attacks on what the host serves the kernel: the bridge, and the caps the host keeps on its side.

Part of ``ATTACKS`` (``rlm.bench.attacks``); each runs under every isolation level.
"""

from __future__ import annotations

import textwrap


def _code(text: str) -> str:
    return textwrap.dedent(text).strip("\n")


BRIDGE_ATTACKS: dict[str, tuple[str, tuple[str, ...]]] = {
    "bridge request without the token": (
        _code("""\
import json, socket, struct, sys
rt = sys.modules['_rlm_in_kernel']._runtime
s = socket.socket(socket.AF_UNIX)
s.connect(rt.bridge._path)
b = json.dumps({'op': 'llm_query', 'args': {'prompt': 'x'}}).encode()
s.sendall(struct.pack('>32sI', bytes(32), len(b)) + b)
print(s.recv(300)[4:].decode())
"""),
        (),
    ),
    "bridge request with a forged token": (
        _code("""\
import json, socket, struct, sys
rt = sys.modules['_rlm_in_kernel']._runtime
s = socket.socket(socket.AF_UNIX)
s.connect(rt.bridge._path)
b = json.dumps({'op': 'llm_query', 'args': {'prompt': 'x'}}).encode()
forged = rt.bridge._token[:-1] + bytes([rt.bridge._token[-1] ^ 1])
s.sendall(struct.pack('>32sI', forged, len(b)) + b)
print(s.recv(300)[4:].decode())
"""),
        (),
    ),
    "malicious pickle over the bridge (with the token)": (
        _code("""\
import pickle, socket, struct, sys, os
class E:
    def __reduce__(self):
        return (os.system, ('id',))
rt = sys.modules['_rlm_in_kernel']._runtime
b = pickle.dumps(E())
s = socket.socket(socket.AF_UNIX)
s.connect(rt.bridge._path)
s.sendall(struct.pack('>32sI', rt.bridge._token, len(b)) + b)
print(s.recv(300)[4:].decode())
"""),
        (),
    ),
    "4 GiB length under the right token": (
        _code("""\
import socket, struct, sys
rt = sys.modules['_rlm_in_kernel']._runtime
s = socket.socket(socket.AF_UNIX)
s.connect(rt.bridge._path)
s.sendall(struct.pack('>32sI', rt.bridge._token, 2**32 - 1))
print(s.recv(300)[4:].decode())
"""),
        (),
    ),
    "bridge: 4 GiB length under a wrong token": (
        _code("""\
import socket, struct, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.modules['_rlm_in_kernel']._runtime.bridge._path)
s.sendall(struct.pack('>32sI', bytes(32), 2**32 - 1))
print(s.recv(300)[4:].decode())
"""),
        (),
    ),
    "bridge: JSON nested 200,000 deep": (
        _code("""\
import socket, struct, sys
rt = sys.modules['_rlm_in_kernel']._runtime
s = socket.socket(socket.AF_UNIX)
s.connect(rt.bridge._path)
b = b'[' * 200000 + b']' * 200000
s.sendall(struct.pack('>32sI', rt.bridge._token, len(b)) + b)
print(s.recv(300)[4:].decode())
"""),
        (),
    ),
    "bridge: 40 connections at once": (
        _code("""\
import select, socket, sys, time
socks = [socket.socket(socket.AF_UNIX) for _ in range(40)]
for s in socks:
    s.connect(sys.modules['_rlm_in_kernel']._runtime.bridge._path)
time.sleep(0.3)
print('closed by host', sum(s.recv(1) == b'' for s in select.select(socks, [], [], 0.5)[0]))
"""),
        (),
    ),
    "llm_batch of 10**5 prompts, max_concurrent=10**5": (
        _code("""\
try:
    llm_batch(['x'] * 100_000, max_concurrent=100_000)
except ValueError as e:
    print(str(e)[:100])
"""),
        (),
    ),
    "ask the host to tokenize (the op chunk used before it ran in the kernel)": (
        _code("""\
import json, socket, struct, sys
rt = sys.modules['_rlm_in_kernel']._runtime
s = socket.socket(socket.AF_UNIX)
s.connect(rt.bridge._path)
b = json.dumps({'op': 'helper', 'args': {'name': 'chunk', 'args': ['x ' * 10**6], 'kwargs': {}}}).encode()
s.sendall(struct.pack('>32sI', rt.bridge._token, len(b)) + b)
print(s.recv(300)[4:].decode()[:200])
"""),
        (),
    ),
    "llm_query with a model nobody configured": (
        _code("""\
try:
    llm_query('x', model='gpt-5-pro')
except ValueError as e:
    print(str(e)[:100])
"""),
        (),
    ),
    "a kernel that reports 9 M characters of output": (
        _code("""\
import sys
capture = sys.modules['_rlm_steps'].Capture
real = capture.getvalue
def once(self):
    capture.getvalue = real
    return 'x' * 9_000_000
capture.getvalue = once
"""),
        (),
    ),
}
