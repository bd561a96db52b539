"""Hostile root code looking for the API key and for files outside its temp dir."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from security_harness import CANARY, Sandbox

import rlm


def test_environment_holds_no_key(sandbox: Sandbox) -> None:
    result = sandbox.attack("import os, json\nprint(json.dumps(dict(os.environ)))")
    env = json.loads(sandbox.step(result).stdout)
    assert CANARY not in json.dumps(env)
    assert not [k for k in env if k.endswith(("_KEY", "_TOKEN", "_SECRET")) or k.startswith("OPENAI_")]
    assert env["RLM_SANDBOX"]  # the scrubbed environment is really the kernel's
    sandbox.check_survived(result)


def test_key_is_not_in_the_kernels_memory_or_namespace(sandbox: Sandbox) -> None:
    code = textwrap.dedent("""\
        import gc
        found = [type(o).__name__ for o in gc.get_objects() if isinstance(o, str) and 'sk-rlm-canary' in o]
        found += [k for k, v in globals().items() if 'sk-rlm-canary' in repr(v)[:10000]]
        print('found', len(found))
    """)
    result = sandbox.attack(code)
    assert sandbox.step(result).stdout == "found 0\n"
    sandbox.check_survived(result)


HOST_SCRIPT = textwrap.dedent("""\
    import json, sys
    from rlm import RLM, SandboxConfig
    from rlm.testing import ScriptedLM
    code = sys.argv[2]
    with ScriptedLM(root=["```repl\\n" + code + "\\n```", "FINAL(done)"]) as lm:
        with RLM("root", base_url=lm.base_url, sandbox=SandboxConfig(**json.loads(sys.argv[1]))) as r:
            out = r.completion("ctx", "q").steps[0].outputs[0]
    print(json.dumps([out.stdout, out.error]))
""")

PROC_SCAN = textwrap.dedent("""\
    import os
    seen, hits, needle = 0, [], bytes(reversed(b'yranac-mlr-ks'))  # not spelled out: our cmdline holds this code
    for pid in [os.getppid(), 1] + [int(p) for p in os.listdir('/proc') if p.isdigit()]:
        for name in ('environ', 'cmdline'):
            try:
                data = open(f'/proc/{pid}/{name}', 'rb').read()
            except OSError:
                continue
            seen += 1
            if needle in data:
                hits.append((pid, name))
    print('seen', seen, 'hits', hits)""")


def test_parent_and_other_processes_environ_do_not_leak_the_key(sandbox: Sandbox) -> None:
    """The host is a fresh process whose *initial* environment holds the key, as a shell export would."""
    sandbox.require_confined()
    env = {**os.environ, "OPENAI_API_KEY": CANARY, "PYTHONPATH": str(Path(rlm.__file__).parents[1])}
    config = sandbox.pool.config
    settings = json.dumps({"isolation": config.isolation, "python": config.python, "extra_env": dict(config.extra_env)})
    done = subprocess.run([sys.executable, "-c", HOST_SCRIPT, settings, PROC_SCAN],
                          check=False, env=env, capture_output=True, text=True, timeout=90)
    assert done.returncode == 0, done.stderr[-2000:]
    stdout, error = json.loads(done.stdout.strip().splitlines()[-1])
    assert error is None and stdout.startswith("seen ")
    assert int(stdout.split()[1]) > 0, "the scan read nothing, so it proves nothing"
    assert stdout.rstrip().endswith("hits []"), stdout
    assert CANARY not in done.stdout


def test_project_files_are_not_readable(sandbox: Sandbox) -> None:
    sandbox.require("filesystem_hidden")
    project = Path(rlm.__file__).parents[1]
    result = sandbox.attack(f"print(open({str(project / 'rlm' / 'core' / 'rlm.py')!r}).read()[:50])")
    assert "FileNotFoundError" in sandbox.step(result).error
    result = sandbox.attack("import rlm")
    assert "ModuleNotFoundError" in sandbox.step(result).error
    sandbox.check_survived(result)


def test_files_outside_the_temp_dir_are_not_readable(sandbox: Sandbox, outside_dir: str) -> None:
    sandbox.require("filesystem_hidden", "separate_user")
    result = sandbox.attack(f"print(open({outside_dir + '/secret.txt'!r}).read())")
    assert sandbox.step(result).error and ("FileNotFoundError" in sandbox.step(result).error
                                           or "PermissionError" in sandbox.step(result).error)
    sandbox.check_survived(result)


def test_home_directory_and_ssh_keys_are_not_readable(sandbox: Sandbox) -> None:
    sandbox.require("filesystem_hidden", "separate_user")
    home = Path.home()
    code = textwrap.dedent(f"""\
        import os
        found = []
        for path in ({str(home)!r}, {str(home / '.ssh')!r}):
            try:
                found += [n for n in os.listdir(path) if not n.startswith('.pyenv')]
            except OSError as exc:
                print(type(exc).__name__)
        print('found', found)""")
    result = sandbox.attack(code)
    assert sandbox.step(result).stdout.rstrip().endswith("found []")
    sandbox.check_survived(result)


def test_writes_outside_the_temp_dir_fail(sandbox: Sandbox, outside_dir: str) -> None:
    sandbox.require("filesystem_hidden", "separate_user")
    project = Path(rlm.__file__).parents[1]
    targets = [f"{outside_dir}/planted.txt", str(project / "planted.txt"), "/etc/planted.txt", "/usr/planted.txt"]
    code = "\n".join(
        f"try:\n    open({t!r}, 'w').write('x')\n    print('wrote')\nexcept OSError as e:\n    print(type(e).__name__)"
        for t in targets)
    result = sandbox.attack(code)
    # What counts is the host's filesystem: a write that lands in the sandbox's own
    # tmpfs (a checkout under /tmp, seen through a user namespace) harms nothing.
    assert not any(os.path.exists(t) for t in targets)
    assert sandbox.step(result).stdout.count("wrote") <= (1 if targets[1].startswith("/tmp/") else 0)
    sandbox.check_survived(result)


def test_own_temp_dir_is_writable_and_emptied_between_completions(sandbox: Sandbox) -> None:
    result = sandbox.attack("open('notes.txt', 'w').write('kept'); import os; print(os.getcwd())",
                            then="print(open('notes.txt').read())")
    assert sandbox.step(result, 1).stdout == "kept\n"
    result = sandbox.attack("import os; print(os.listdir('.'))")
    assert "notes.txt" not in sandbox.step(result).stdout
    sandbox.check_survived(result)


def test_privilege_escalation_fails(sandbox: Sandbox) -> None:
    sandbox.require("separate_user")
    result = sandbox.attack("import os\ntry:\n    os.setuid(0)\nexcept OSError as e:\n    print(type(e).__name__)")
    assert sandbox.step(result).stdout == "PermissionError\n"
    sandbox.check_survived(result)
