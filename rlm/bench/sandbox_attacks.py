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
s.sendall(struct.pack('>32sI', bytes(32), len(b)) + b)
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
rt = sys.modules['_rlm_kernel']._runtime
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
rt = sys.modules['_rlm_kernel']._runtime
s = socket.socket(socket.AF_UNIX)
s.connect(rt.bridge._path)
s.sendall(struct.pack('>32sI', rt.bridge._token, 2**32 - 1))
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
        ("process_limit+confined",),
    ),
    "memory bomb": ("x = bytearray(10**11)", ("pid_namespace", "separate_user")),
    "memory bomb, growing": (
        _code("""\
h = []
while True:
    h.append(bytes(10**8))
"""),
        ("pid_namespace", "separate_user"),
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
        ("pid_namespace", "separate_user"),
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
        ("pid_namespace", "separate_user"),
    ),
    "setuid(0)": (
        _code("""\
import os
os.setuid(0)
"""),
        (),
    ),
    "plant a symlink / FIFO in the run dir (host would follow it)": (
        _code("""\
import os, sys
rundir = os.path.dirname(sys.modules['_rlm_kernel']._runtime.bridge._path)
out = []
for name in ('context-2.str', 'context-2.pickle', 'planted'):
    for plant in (lambda p: os.symlink(TARGET, p), os.mkfifo):
        try:
            plant(os.path.join(rundir, name)); out.append('PLANTED')
        except OSError as e:
            out.append(type(e).__name__)
print(sorted(set(out)))
"""),
        (),
    ),
    "write into the run dir's socket dir (fill the host's /tmp)": (
        _code("""\
import os, sys
sock = os.path.join(os.path.dirname(sys.modules['_rlm_kernel']._runtime.bridge._path), 'sock')
open(os.path.join(sock, 'fill'), 'wb').write(b'x' * 2**20)
print('WROTE')
"""),
        (),
    ),
    "thread left running, spying on the next completion": (
        _code("""\
import _thread, sys, time
def spy():
    while True:
        try:
            ns = sys.modules['_rlm_kernel']._runtime.ns
            if ns.get('context') != 'ctx':
                llm_query('LEAK ' + str(ns.get('context')))
        except Exception:
            pass
        time.sleep(0.02)
_thread.start_new_thread(spy, ())
print('spying')
"""),
        (),
    ),
    "patch the kernel's helpers for the next completion": (
        _code("""\
import sys
k = sys.modules['_rlm_kernel']
k.load = k.get = lambda *a, **kw: None
print('patched')
"""),
        (),
    ),
    "scan every readable process memory for the key": (
        _code("""\
import os
needle, hits = bytes(reversed(b'elbat-kcatta-yranac-mlr-ks')), []
for pid in [p for p in os.listdir('/proc') if p.isdigit() and p != str(os.getpid())]:
    try:
        maps = open(f'/proc/{pid}/maps').read().splitlines()
        mem = open(f'/proc/{pid}/mem', 'rb')
    except OSError:
        continue
    with mem:
        for line in maps:
            lo, hi = (int(x, 16) for x in line.split()[0].split('-'))
            if 'r' in line.split()[1] and hi - lo < 2**28:
                try:
                    mem.seek(lo); hits += [pid] if needle in mem.read(hi - lo) else []
                except (OSError, OverflowError, ValueError):
                    pass
print('hits', sorted(set(hits)))
"""),
        ("pid_namespace", "separate_user"),
    ),
    "clone(CLONE_PARENT) child (x86_64)": (
        _code("""\
import ctypes, os, signal
libc = ctypes.CDLL(None, use_errno=True)
pid = libc.syscall(56, 0x00008000 | signal.SIGCHLD, 0, 0, 0, 0)
if pid == 0:
    os.execvp('sleep', ['sleep', '124'])
print('cloned', pid > 0)
"""),
        ("pid_namespace", "separate_user"),
    ),
    "directory tree 1,500 levels deep": (
        _code("""\
import os
start, level = os.getcwd(), '/'.join(['d'] * 100)
for _ in range(15):
    os.makedirs(level); os.chdir(level)
os.chdir(start)
print('deep')
"""),
        (),
    ),
    "bridge: 4 GiB length under a wrong token": (
        _code("""\
import socket, struct, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.modules['_rlm_kernel']._runtime.bridge._path)
s.sendall(struct.pack('>32sI', bytes(32), 2**32 - 1))
print(s.recv(300)[4:].decode())
"""),
        (),
    ),
    "bridge: JSON nested 200,000 deep": (
        _code("""\
import socket, struct, sys
rt = sys.modules['_rlm_kernel']._runtime
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
    s.connect(sys.modules['_rlm_kernel']._runtime.bridge._path)
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
    print(str(e)[:60])
"""),
        (),
    ),
    "chunk(text, max_tokens=1) on the host's tokenizer": (
        _code("""\
try:
    chunk('word ' * 300_000, max_tokens=1)
except ValueError as e:
    print(str(e)[:60])
"""),
        (),
    ),
    "llm_query with a model nobody configured": (
        _code("""\
try:
    llm_query('x', model='gpt-5-pro')
except ValueError as e:
    print(str(e)[:60])
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


#: Why an attack is not run in a mode that does not confine it: signal, fork and memory attacks
#: run only where the kernel has its own pid namespace or uid.
NOT_RUN = {
    "fork bomb": "not confined: a fork bomb would exhaust the machine's pids",
    "fill the disk": "without bubblewrap only each file's size is limited",
    "os.kill(os.getppid(), 9)": "not confined: the kernel's parent is the host, same uid: it would die",
    "os.kill(-1, 9)": "not confined: every process of the user (as root: of the machine) would die",
    "memory bomb": "not confined: only run where the kernel has its own pid namespace or uid",
    "memory bomb, growing": "not confined: only run where the kernel has its own pid namespace or uid",
    "detached background process": "not confined: a process re-parented to init escapes the host's view",
    "scan every readable process memory for the key": "not confined: same uid, the host's memory is readable",
    "clone(CLONE_PARENT) child (x86_64)": "not confined: the child becomes the host's and escapes",
}

HOST = """
import json, os, socket, sys, threading
from rlm import RLM, SandboxConfig
from rlm.testing import ScriptedLM
name, settings, code = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
got = []
srv = socket.socket(); srv.bind(('127.0.0.1', 0)); srv.listen()
def accept():
    while True:
        c, _ = srv.accept(); got.append(c.recv(100) or b'<connected>')
threading.Thread(target=accept, daemon=True).start()
code = code.replace('PORT', str(srv.getsockname()[1]))
steps = ['```repl\\n' + code + '\\n```', "```repl\\nprint('alive')\\n```", 'FINAL(ok)',
         "```repl\\nimport time; time.sleep(0.3); print(context)\\n```", 'FINAL(ok)']
with ScriptedLM(root=steps) as lm:
    config = SandboxConfig(memory_mb=1536, max_file_mb=64, disk_mb=128, interrupt_grace=1.0, **settings)
    with RLM('root', base_url=lm.base_url, sandbox=config, step_timeout=2.0) as r:
        iso = r.kernels.isolation
        res = r.completion('ctx', 'q')
        left = [p for k in r.kernels.kernels for p in k.strays()]
        calls = lm.stats['sub']
        nxt = r.completion('NEXT-CONTEXT', 'q')
        later_calls = lm.stats['sub'] - calls
        refused = len(r.kernels.refused)
out = res.steps[0].outputs[0]
text = json.dumps([o.__repr__() for s in res.steps for o in s.outputs])
print(json.dumps({'out': out.stdout[-200:], 'error': (out.error or '')[-300:], 'next': res.steps[1].outputs[0].stdout,
                  'out_chars': len(out.stdout), 'leak': os.environ['OPENAI_API_KEY'] in text,
                  'received': [g.decode('latin1') for g in got], 'strays': left, 'sub_calls': calls,
                  'next_completion': nxt.steps[0].outputs[0].stdout, 'later_calls': later_calls,
                  'refused': refused, 'iso': iso.describe()}))
"""


def mode_settings(mode: str) -> dict[str, object] | None:
    """SandboxConfig fields for ``mode`` here, or None where it cannot run.

    ``uid`` needs a Python other users can read: this one, or else the system's of the same
    version with this environment's packages on PYTHONPATH (as the tests do).
    """
    from ..repl.sandbox.isolation import _world_traversable, bwrap_path

    if mode == "bwrap":
        return {"isolation": "bwrap"} if bwrap_path() else None
    if mode != "uid":
        return {"isolation": mode}
    if os.geteuid() != 0:
        return None
    if _world_traversable(sys.executable):
        return {"isolation": "uid"}
    import site

    python = f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}"
    packages = [p for p in site.getsitepackages() if os.path.isdir(p)]
    if not os.path.exists(python) or not all(_world_traversable(p) for p in packages):
        return None
    return {"isolation": "uid", "python": python, "extra_env": {"PYTHONPATH": os.pathsep.join(packages)}}


def _isolation_flags(settings: dict[str, object]) -> dict[str, bool]:
    from ..repl.sandbox.config import SandboxConfig
    from ..repl.sandbox.isolation import resolve

    iso = resolve(SandboxConfig(**settings))  # type: ignore[arg-type]
    flags = {k: bool(v) for k, v in iso.__dict__.items() if isinstance(v, bool)}
    flags["process_limit+confined"] = iso.process_limit and iso.host_processes_safe
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
    if int(str(result.get("out_chars", 0))) > 1_000_000:
        out = f"{result['out_chars']:,} characters reached the host (capped there)"
    parts = [p for p in (first, out[:70] + ("..." if len(out) > 70 else "")) if p]
    return "; ".join(parts) or "no output"


def run_attack(name: str, mode: str, project: str) -> str:
    code, needs = ATTACKS[name]
    settings = mode_settings(mode)
    if settings is None:
        return "mode not available here"
    flags = _isolation_flags(settings)
    if needs and not any(flags.get(f) for f in needs):
        return "not run: " + NOT_RUN.get(name, "nothing here would contain it")
    target = Path(project, "planted-target.txt")
    target.write_text("untouched")
    code = (code.replace("PROJECT", repr(project)).replace("HOME", repr(str(Path.home())))
            .replace("TARGET", repr(str(target))))
    env = {**os.environ, "OPENAI_API_KEY": CANARY, "PYTHONPATH": project}
    env.pop("RLM_SANDBOX_ISOLATION", None)
    try:
        done = subprocess.run(
            [sys.executable, "-c", HOST, name, json.dumps(settings), code],
            check=False, env=env, capture_output=True, text=True, timeout=180,
        )
    except subprocess.TimeoutExpired:
        return "HOST HUNG (timeout)"
    finally:
        untouched = target.exists() and target.read_text() == "untouched" and target.stat().st_uid == os.geteuid()
        target.unlink(missing_ok=True)
    if done.returncode != 0 or not done.stdout.strip():
        return f"HOST DIED (exit {done.returncode})"
    result = json.loads(done.stdout.strip().splitlines()[-1])
    verdict = _summary(result)
    problems = []
    if result["leak"] or CANARY in done.stdout:
        problems.append("KEY LEAKED")
    if result["received"]:
        problems.append(f"host port received {result['received']}")
    if re.search(r"hits \[.+\]", str(result["out"])):
        problems.append("KEY FOUND")
    if result["strays"]:
        problems.append("processes left behind")
    if not untouched:
        problems.append("HOST FILE CHANGED")
    if "planted" in name or "write" in name:
        planted = Path(project, "planted.txt")
        if planted.exists():
            planted.unlink()
            problems.append("FILE WRITTEN")
    if result["later_calls"] or result["next_completion"] != "NEXT-CONTEXT\n":
        problems.append("THE NEXT COMPLETION WAS AFFECTED")
    nxt = "next step ok" if result["next"] == "alive\n" else "NEXT STEP FAILED"
    if result["refused"]:
        nxt += f"; {result['refused']} refused"
    return "; ".join([*problems, verdict, nxt])


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--modes", default="bwrap,uid,none", help="comma-separated isolation levels")
    parser.add_argument("--only", default="", help="run only attacks whose name contains this")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rlm.bench.sandbox_attacks", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))


def run(args: argparse.Namespace) -> int:
    """Print the markdown table of every attack per isolation level (docs/security.md)."""
    project = str(Path(__file__).resolve().parents[2])
    modes = args.modes.split(",")
    described = {m: (_isolation_flags(mode_settings(m) or {}) if mode_settings(m) else "n/a") for m in modes}
    print(f"uid {os.geteuid()}; " + "; ".join(f"{m}: {d}" for m, d in described.items()), flush=True)
    print("| attack | " + " | ".join(f"sandbox={m}" for m in modes) + " |")
    print("|---|" + "---|" * len(modes))
    for name in ATTACKS:
        if args.only and args.only not in name:
            continue
        cells = [run_attack(name, mode, project).replace("|", "/") for mode in modes]
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
