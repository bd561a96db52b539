"""Run each hostile snippet against the kernel sandbox and print the attack -> result table.

``python -m rlm.bench.sandbox_attacks`` runs every attack in a fresh host process whose
*initial* environment holds a canary API key, once per isolation mode, and prints the
markdown table that docs/security.md shows. A host that dies is reported, not hidden.
Attacks that would harm the machine where the mode cannot contain them (a fork bomb or
``kill(-1)`` as root) are not run; the table says so.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

CANARY = "sk-rlm-canary-attack-table"


def _code(text: str) -> str:
    return textwrap.dedent(text).strip("\n")


#: name -> (code, isolation flags of which one must hold for it to be safe to run here)
ATTACKS: dict[str, tuple[str, tuple[str, ...]]] = {
    "read key from os.environ": (
        _code("""\
import os
print([k for k, v in os.environ.items() if 'canary' in v])
"""),
        (),
    ),
    "read /proc/<ppid>/environ and every /proc/*/environ": (
        _code("""\
import os
hits = []
for p in ['%d' % os.getppid()] + os.listdir('/proc'):
    try:
        hits += [p] if b'canary' in open(f'/proc/{p}/environ', 'rb').read() else []
    except OSError:
        pass
print('hits', hits)
"""),
        (),
    ),
    "read the project's files": ("print(open(PROJECT + '/pyproject.toml').read()[:30])", ()),
    "list the host's home dir (~/.ssh ...)": (
        _code("""\
import os
print(os.listdir(HOME))
"""),
        (),
    ),
    "write outside the temp dir": (
        _code("""\
open(PROJECT + '/planted.txt', 'w').write('x')
print('wrote')
"""),
        (),
    ),
    "connect to a host port on 127.0.0.1": (
        _code("""\
import socket
s = socket.create_connection(('127.0.0.1', PORT), timeout=2)
s.sendall(b'data')
print('sent')
"""),
        (),
    ),
    "connect to an outside address": (
        _code("""\
import socket
socket.create_connection(('1.1.1.1', 53), timeout=2)
print('connected')
"""),
        (),
    ),
    "bridge request without the token": (
        _code("""\
import json, socket, struct, sys
rt = sys.modules['_rlm_kernel']._runtime
s = socket.socket(socket.AF_UNIX)
s.connect(rt.bridge._path)
b = json.dumps({'op': 'llm_query', 'args': {'prompt': 'x'}}).encode()
s.sendall(struct.pack('>I', len(b)) + b)
print(s.recv(300)[4:].decode())
"""),
        (),
    ),
    "bridge request with a forged token": (
        _code("""\
import json, socket, struct, sys
rt = sys.modules['_rlm_kernel']._runtime
s = socket.socket(socket.AF_UNIX)
s.connect(rt.bridge._path)
b = json.dumps({'token': 'forged', 'op': 'llm_query', 'args': {'prompt': 'x'}}).encode()
s.sendall(struct.pack('>I', len(b)) + b)
print(s.recv(300)[4:].decode())
"""),
        (),
    ),
    "malicious pickle over the bridge": (
        _code("""\
import pickle, socket, struct, sys, os
class E:
    def __reduce__(self):
        return (os.system, ('id',))
b = pickle.dumps(E())
s = socket.socket(socket.AF_UNIX)
s.connect(sys.modules['_rlm_kernel']._runtime.bridge._path)
s.sendall(struct.pack('>I', len(b)) + b)
print(s.recv(300)[4:].decode())
"""),
        (),
    ),
    "4 GiB message header over the bridge": (
        _code("""\
import socket, struct, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.modules['_rlm_kernel']._runtime.bridge._path)
s.sendall(struct.pack('>I', 2**32 - 1))
print(s.recv(300)[4:].decode())
"""),
        (),
    ),
    "replace llm_query to send data out": (
        _code("""\
import urllib.request
def llm_query(p, model=None):
    return urllib.request.urlopen('http://127.0.0.1:%d/?' % PORT + p, timeout=2).read()
llm_query('secret')
"""),
        (),
    ),
    "fork bomb": (
        _code("""\
import os
while True:
    os.fork()
"""),
        ("process_limit",),
    ),
    "memory bomb": ("x = bytearray(10**11)", ()),
    "memory bomb, growing": (
        _code("""\
h = []
while True:
    h.append(bytearray(10**8))
"""),
        (),
    ),
    "infinite loop": (
        _code("""\
while True:
    pass
"""),
        (),
    ),
    "infinite loop ignoring SIGINT": (
        _code("""\
import signal
signal.signal(signal.SIGINT, signal.SIG_IGN)
while True:
    pass
"""),
        (),
    ),
    "infinite recursion": (
        _code("""\
def f():
    return f()
f()
"""),
        (),
    ),
    "1 GiB print flood": (
        _code("""\
import sys
c = 'x' * 2**20
for _ in range(1024):
    sys.stdout.write(c)
"""),
        (),
    ),
    "1 GiB flood on fd 1 and fd 2 each": (
        _code("""\
import os
c = b'x' * 2**20
for fd in (1, 2):
    for _ in range(1024):
        os.write(fd, c)
print('written')
"""),
        (),
    ),
    "fill the disk": (
        _code("""\
c = b'x' * 2**20
for i in range(100):
    with open(f'f{i}', 'wb') as fh:
        for _ in range(60):
            fh.write(c)
"""),
        ("filesystem_hidden",),
    ),
    "os.kill(os.getppid(), 9)": (
        _code("""\
import os
os.kill(os.getppid(), 9)
"""),
        ("pid_namespace", "separate_user", "not_root"),
    ),
    "os.kill(-1, 9)": (
        _code("""\
import os
os.kill(-1, 9)
"""),
        ("pid_namespace", "separate_user"),
    ),
    "ctypes segfault": (
        _code("""\
import ctypes
ctypes.string_at(0)
"""),
        (),
    ),
    "sys.exit()": (
        _code("""\
import sys
sys.exit(3)
"""),
        (),
    ),
    "os._exit()": (
        _code("""\
import os
os._exit(0)
"""),
        (),
    ),
    "detached background process": (
        _code("""\
import subprocess
subprocess.Popen(['sleep', '123'], start_new_session=True)
print('spawned')
"""),
        (),
    ),
    "setuid(0)": (
        _code("""\
import os
os.setuid(0)
"""),
        (),
    ),
}


NOT_RUN = {
    "fork bomb": "root is exempt from the process limit; it would exhaust the machine's pids",
    "fill the disk": "without bubblewrap only each file's size is limited",
    "os.kill(os.getppid(), 9)": "the kernel's parent is the host, same uid: it dies",
    "os.kill(-1, 9)": "same uid, no pid namespace: every process of the user dies, host included",
}

HOST = """
import json, os, socket, sys, threading
from rlm import RLM, SandboxConfig
from rlm.testing import ScriptedLM
name, mode, code = sys.argv[1], sys.argv[2], sys.argv[3]
got = []
srv = socket.socket(); srv.bind(('127.0.0.1', 0)); srv.listen()
def accept():
    while True:
        c, _ = srv.accept(); got.append(c.recv(100) or b'<connected>')
threading.Thread(target=accept, daemon=True).start()
code = code.replace('PORT', str(srv.getsockname()[1]))
with ScriptedLM(root=['```repl\\n' + code + '\\n```', "```repl\\nprint('alive')\\n```", 'FINAL(ok)']) as lm:
    config = SandboxConfig(isolation=mode, memory_mb=1536, max_file_mb=64, disk_mb=128, interrupt_grace=1.0)
    with RLM('root', base_url=lm.base_url, sandbox=config, step_timeout=2.0) as r:
        iso = r.kernels.isolation
        res = r.completion('ctx', 'q')
        left = [p for k in r.kernels.kernels for p in k.strays()]
out = res.steps[0].outputs[0]
text = json.dumps([o.__repr__() for s in res.steps for o in s.outputs])
print(json.dumps({'out': out.stdout[-200:], 'error': (out.error or '')[-300:], 'next': res.steps[1].outputs[0].stdout,
                  'leak': os.environ['OPENAI_API_KEY'] in text, 'received': [g.decode('latin1') for g in got],
                  'strays': left, 'sub_calls': lm.stats['sub'], 'iso': iso.__dict__}))
"""


def _isolation_flags(mode: str) -> dict[str, bool]:
    from ..repl.sandbox_env import SandboxConfig, resolve

    flags = dict(resolve(SandboxConfig(isolation=mode)).__dict__)
    flags["not_root"] = os.geteuid() != 0
    return flags


def _summary(result: dict[str, object]) -> str:
    reply = re.search(r'"message": "([^"]*)', str(result["out"]))
    if reply:  # a bridge refusal, as the kernel received it
        result = {**result, "out": "refused: " + reply.group(1)}
    error = str(result["error"]).strip().splitlines()
    first = error[-1] if error else ""
    if "restarted" in str(result["error"]):
        first = "kernel " + ("killed, " if "signal" in str(result["error"]) else "")
        first += "restarted: " + str(result["error"]).split(".")[0].replace("The sandbox process ", "")
    out = str(result["out"]).strip().replace("\n", " ")
    parts = [p for p in (first, out[:70] + ("..." if len(out) > 70 else "")) if p]
    return "; ".join(parts) or "no output"


def run_attack(name: str, mode: str, project: str) -> str:
    code, needs = ATTACKS[name]
    flags = _isolation_flags(mode)
    if needs and not any(flags.get(f) for f in needs):
        return "not run: " + NOT_RUN.get(name, "nothing here would contain it")
    code = code.replace("PROJECT", repr(project)).replace("HOME", repr(str(Path.home())))
    env = {**os.environ, "OPENAI_API_KEY": CANARY, "PYTHONPATH": project}
    try:
        done = subprocess.run(
            [sys.executable, "-c", HOST, name, mode, code],
            check=False, env=env, capture_output=True, text=True, timeout=120,
        )
    except subprocess.TimeoutExpired:
        return "HOST HUNG (timeout)"
    if done.returncode != 0 or not done.stdout.strip():
        return f"HOST DIED (exit {done.returncode})"
    result = json.loads(done.stdout.strip().splitlines()[-1])
    verdict = _summary(result)
    problems = []
    if result["leak"] or CANARY in done.stdout:
        problems.append("KEY LEAKED")
    if result["received"]:
        problems.append(f"host port received {result['received']}")
    if result["strays"]:
        problems.append("processes left behind")
    if "planted" in name or "write" in name:
        planted = Path(project, "planted.txt")
        if planted.exists():
            planted.unlink()
            problems.append("FILE WRITTEN")
    nxt = "next step ok" if result["next"] == "alive\n" else "NEXT STEP FAILED"
    return "; ".join([*problems, verdict, nxt])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rlm.bench.sandbox_attacks", description=__doc__)
    parser.add_argument("--modes", default="bwrap,none", help="comma-separated isolation modes (default bwrap,none)")
    args = parser.parse_args(argv)
    project = str(Path(__file__).resolve().parents[2])
    modes = args.modes.split(",")
    print(f"uid {os.geteuid()}; " + "; ".join(f"{m}: {_isolation_flags(m)}" for m in modes), flush=True)
    print("| attack | " + " | ".join(f"sandbox={m}" for m in modes) + " |")
    print("|---|" + "---|" * len(modes))
    for name in ATTACKS:
        cells = [run_attack(name, mode, project).replace("|", "/") for mode in modes]
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
