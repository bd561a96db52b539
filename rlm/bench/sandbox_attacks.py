"""Run each hostile snippet against the kernel sandbox and print the attack -> result table.

``python -m rlm.bench.sandbox_attacks`` runs every attack in a fresh host process whose
*initial* environment holds a canary API key, once per isolation mode, and prints the
markdown table that docs/security.md shows. A host that dies is reported, not hidden.
Attacks that would harm the machine where the mode cannot contain them (a fork bomb or
``kill(-1)`` as root) are not run; the table says so. The host listens on 127.0.0.1 and
on an abstract unix socket of its own, and records what reaches either; no attack
addresses anything else.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import subprocess
import sys
import tempfile
from pathlib import Path

from .attacks import every_attack
from .document_attacks import rows as document_rows

CANARY = "sk-rlm-canary-attack-table"
#: The limits every attack runs under (docs/security.md says them above the table).
LIMITS = {"memory_mb": 1536, "max_file_mb": 64, "interrupt_grace": 1.0}
#: The disk limit, at the levels that can hold one (isolation='none' refuses to start with it).
DISK_MB = 128
STEP_TIMEOUT = 2.0


HOST = """
import json, os, socket, sys, threading
from pathlib import Path
from rlm import RLM, Limits, SandboxConfig
from rlm.testing import ScriptedLM
name, settings, code, context, abstract, timeout = sys.argv[1:7]
got = []
def serve(srv):
    srv.listen()
    while True:
        c, _ = srv.accept(); got.append(c.recv(100) or b'<connected>')
tcp = socket.socket(); tcp.bind(('127.0.0.1', 0))
unix = socket.socket(socket.AF_UNIX); unix.bind('\\0' + abstract)
for srv in (tcp, unix):
    threading.Thread(target=serve, args=(srv,), daemon=True).start()
code = code.replace('PORT', str(tcp.getsockname()[1])).replace('ABSTRACT', repr('\\0' + abstract))
steps = ['```repl\\n' + code + '\\n```', "```repl\\nprint('alive')\\n```", 'FINAL(ok)',
         "```repl\\nimport time; time.sleep(0.3); print(context)\\n```", 'FINAL(ok)']
with ScriptedLM(root=steps) as lm:
    with RLM('root', base_url=lm.base_url, sandbox=SandboxConfig(**json.loads(settings)),
             limits=Limits(step_timeout=float(timeout))) as r:
        iso = r.kernels.isolation
        res = r.completion(Path(context) if context else 'ctx', 'q')
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
    from ..repl.sandbox.isolation import bwrap_path, world_traversable

    if mode == "bwrap":
        return {"isolation": "bwrap"} if bwrap_path() else None
    if mode != "uid":
        return {"isolation": mode}
    if os.geteuid() != 0:
        return None
    if world_traversable(sys.executable):
        return {"isolation": "uid"}
    import site

    python = f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}"
    packages = [p for p in site.getsitepackages() if os.path.isdir(p)]
    if not os.path.exists(python) or not all(world_traversable(p) for p in packages):
        return None
    return {"isolation": "uid", "python": python, "extra_env": {"PYTHONPATH": os.pathsep.join(packages)}}


def attack_settings(mode: str) -> dict[str, object] | None:
    """The whole ``SandboxConfig`` an attack runs under at ``mode``; None where the mode cannot run here."""
    settings = mode_settings(mode)
    if settings is None:
        return None
    return {**settings, **LIMITS, **({"disk_mb": DISK_MB} if mode != "none" else {})}


def _isolation_flags(settings: dict[str, object]) -> dict[str, bool]:
    from ..repl.sandbox.config import SandboxConfig
    from ..repl.sandbox.isolation import resolve

    iso = resolve(SandboxConfig(**settings))  # type: ignore[arg-type]
    flags = {k: bool(v) for k, v in iso.__dict__.items() if isinstance(v, bool)}
    flags["process_limit+confined"] = iso.process_limit and iso.host_processes_safe
    flags["disk_mb"] = iso.disk_mb is not None
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
    parts = [p for p in (first, out[:100] + ("..." if len(out) > 100 else "")) if p]
    return "; ".join(parts) or "no output"


def run_attack(name: str, mode: str, project: str) -> str:
    """One cell of the table: ``name`` at ``mode`` in a fresh host process, and what went wrong if anything."""
    attacks, not_run, contexts = every_attack()
    code, needs = attacks[name]
    settings = attack_settings(mode)
    if settings is None:
        return "mode not available here"
    flags = _isolation_flags(settings)
    if needs and not any(flags.get(f) for f in needs):
        return "not run: " + not_run.get(name, "nothing here would contain it")
    target = Path(project, "planted-target.txt")
    target.write_text("untouched")
    code = (code.replace("PROJECT", repr(project)).replace("HOME", repr(str(Path.home())))
            .replace("TARGET", repr(str(target))))
    env = {**os.environ, "OPENAI_API_KEY": CANARY, "PYTHONPATH": project}
    env.pop("RLM_SANDBOX_ISOLATION", None)
    try:
        with tempfile.TemporaryDirectory(prefix="rlm-attack-") as scratch:
            context = str(contexts[name](Path(scratch))) if name in contexts else ""
            done = subprocess.run(
                [sys.executable, "-c", HOST, name, json.dumps(settings), code, context,
                 f"rlm-attack-{secrets.token_hex(8)}", str(STEP_TIMEOUT)],
                check=False, env=env, capture_output=True, text=True, timeout=180,
            )
    except subprocess.TimeoutExpired:
        return "HOST HUNG (timeout)"
    finally:
        untouched = target.exists() and target.read_text() == "untouched" and target.stat().st_uid == os.geteuid()
        target.unlink(missing_ok=True)
    if done.returncode != 0 or not done.stdout.strip():
        return f"HOST DIED (exit {done.returncode}): {done.stderr.strip()[-200:]}"
    return _verdict(name, json.loads(done.stdout.strip().splitlines()[-1]), done.stdout, untouched, project)


def _verdict(name: str, result: dict[str, object], stdout: str, untouched: bool, project: str) -> str:
    problems = []
    if result["leak"] or CANARY in stdout:
        problems.append("KEY LEAKED")
    if result["received"]:
        problems.append(f"a host listener received {result['received']}")
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
    if result["next"] != "alive\n":
        problems.append("NEXT STEP FAILED")
    refused = [f"{result['refused']} refused"] if result["refused"] else []
    return "; ".join([*problems, _summary(result), *refused])


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--modes", default="bwrap,uid,none", help="comma-separated isolation levels")
    parser.add_argument("--only", action="append", default=[],
                        help="run only attacks whose name contains this (may be given more than once)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rlm.bench.sandbox_attacks", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))


def run(args: argparse.Namespace) -> int:
    """Print the markdown table of every attack per isolation level (docs/security.md)."""
    project = str(Path(__file__).resolve().parents[2])
    modes = args.modes.split(",")
    for mode in modes:
        settings = attack_settings(mode)
        print(f"{mode}: " + (_describe(settings) if settings else "not available here"), flush=True)
    print(f"host uid {os.geteuid()}; step timeout {STEP_TIMEOUT:g} s; " + ", ".join(
        f"{k}={v}" for k, v in {**LIMITS, "disk_mb": DISK_MB}.items()) + " (disk_mb not at none)\n")
    print("| attack | " + " | ".join(f"sandbox={m}" for m in modes) + " |")
    print("|---|" + "---|" * len(modes))
    for name in every_attack()[0]:
        if args.only and not any(part in name for part in args.only):
            continue
        cells = [_markdown(run_attack(name, mode, project)) for mode in modes]
        print(f"| {_markdown(name)} | " + " | ".join(cells) + " |", flush=True)
    if not args.only or any(part in "document" for part in args.only):  # hostile files (document_attacks.py)
        for line in document_rows(modes, attack_settings):
            print(line, flush=True)
    return 0


def _markdown(cell: str) -> str:
    """A table cell as markdown shows it: no column break, no text taken for an HTML tag."""
    return cell.replace("|", "/").replace("<", "&lt;")


def _describe(settings: dict[str, object]) -> str:
    from ..repl.sandbox.config import SandboxConfig
    from ..repl.sandbox.isolation import resolve

    return resolve(SandboxConfig(**settings)).describe()  # type: ignore[arg-type]


if __name__ == "__main__":
    sys.exit(main())
