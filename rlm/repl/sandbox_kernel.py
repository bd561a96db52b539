"""One sandboxed ipykernel process, driven from the host with jupyter_client's async API.

The kernel gets a scrubbed environment (no keys), resource limits, a fresh temp dir,
its own uid when the host runs as root, and under bubblewrap a read-only view of the
system with no network and no view of host processes. The context arrives by file;
``llm_query``/``llm_batch``/``rlm_query`` call back over ``Bridge``. A step that runs
past its timeout is interrupted, and a kernel that does not stop, dies or breaks a
limit is replaced; the root is told in plain words. See docs/security.md.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import queue
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import zmq
import zmq.asyncio
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import AsyncKernelManager

from ..errors import SandboxError
from . import procs
from .base import ExecResult, Host
from .bridge import Bridge
from .sandbox_env import (
    SANDBOX_HOME,
    Isolation,
    SandboxConfig,
    bwrap_command,
    kernel_env,
    launcher_config,
    pick_uid,
)

log = logging.getLogger("rlm")

#: Copied into each run directory: the launcher the kernelspec runs, and what root code sees.
_KERNEL_FILES = {"_rlm_launch.py": "_kernel_launch.py", "_rlm_kernel.py": "_kernel_side.py"}
_CALL = "__import__('_rlm_kernel').{}({})"
#: How often a waiting host checks that the kernel is alive and within its limits.
_POLL_S = 0.25


#: Run directories are named ``rlm-sbx-<host pid>-<id>-*`` so leftovers of a killed host can be found.
RUNDIR_PREFIX = "rlm-sbx-"


def remove_stale_rundirs() -> int:
    """Remove run directories whose host process is gone (it was SIGKILLed and could not clean up)."""
    removed = 0
    base = tempfile.gettempdir()
    for name in os.listdir(base):
        if not name.startswith(RUNDIR_PREFIX):
            continue
        pid = name[len(RUNDIR_PREFIX):].split("-", 1)[0]
        path = os.path.join(base, name)
        if not pid.isdigit() or os.path.exists(f"/proc/{pid}") or _bridge_answers(path):
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed += 1
    return removed


def _bridge_answers(rundir: str) -> bool:
    """A host in another pid namespace sharing this /tmp still serves its bridge: keep its files."""
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(0.5)
        try:
            sock.connect(os.path.join(rundir, "bridge.sock"))
        except OSError:
            return False
    return True


class KernelLost(SandboxError):
    """The kernel died, stopped answering or broke a limit; it has been killed."""


class _Timeout(Exception):
    pass


class SandboxKernel:
    """One sandboxed kernel process with its run directory and bridge."""

    def __init__(self, config: SandboxConfig, isolation: Isolation, ctx: zmq.asyncio.Context) -> None:
        self.config = config
        self.isolation = isolation
        self.id = secrets.token_hex(6)
        self.uid = pick_uid() if isolation.separate_user else None
        self.rundir = tempfile.mkdtemp(prefix=f"{RUNDIR_PREFIX}{os.getpid()}-{self.id}-")
        self.home = SANDBOX_HOME if isolation.mode == "bwrap" else os.path.join(self.rundir, "work")
        self.bridge = Bridge(os.path.join(self.rundir, "bridge.sock"), max_frame=config.max_bridge_mb * 2**20)
        self.uses = 0
        self.dirty = False
        self.kernel_pid: int | None = None
        self.launched_pid: int | None = None
        self._known: set[int] = set()
        self._ctx = ctx
        self._km: AsyncKernelManager | None = None
        self._kc: Any = None
        self._dead = False

    # -- start --------------------------------------------------------------------------

    def _own(self, path: str) -> None:
        if self.uid is not None:
            os.chown(path, self.uid, self.uid)

    def _prepare_files(self) -> dict[str, str]:
        """Run directory, kernel files and kernelspec; returns the kernel's environment."""
        os.chmod(self.rundir, 0o700)
        self._own(self.rundir)
        for name, source in _KERNEL_FILES.items():
            shutil.copyfile(Path(__file__).with_name(source), os.path.join(self.rundir, name))
            os.chmod(os.path.join(self.rundir, name), 0o444)
        script = os.path.join(self.rundir, "_rlm_launch.py")
        if self.isolation.mode == "none":
            os.mkdir(self.home, 0o700)
            self._own(self.home)
        cfg = launcher_config(self.isolation, self.config, self.uid)
        inner = [self.config.python, script, json.dumps(cfg), "-f", "{connection_file}",
                 "--IPKernelApp.capture_fd_output=False", "--HistoryManager.enabled=False"]
        env = kernel_env(self.config, self.home, self.id)
        argv = bwrap_command(self.config, self.rundir, env, inner) if self.isolation.mode == "bwrap" else inner
        spec = Path(self.rundir, "spec", "rlm-sandbox")
        spec.mkdir(parents=True)
        spec.joinpath("kernel.json").write_text(json.dumps(
            {"argv": argv, "display_name": "rlm sandbox", "language": "python", "interrupt_mode": "message"}))
        return env

    async def start(self) -> None:
        """Launch, wait until it answers, connect the bridge. Raises ``SandboxError``."""
        started = time.perf_counter()
        try:
            await self._start()
        except BaseException:
            self.kill()
            raise
        log.debug("rlm sandbox %s started in %.2f s (%s)", self.id, time.perf_counter() - started, self.isolation.mode)

    async def _start(self) -> None:
        env = self._prepare_files()
        km = AsyncKernelManager(
            kernel_name="rlm-sandbox", kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(Path(self.rundir, "spec"))]),
            context=self._ctx, transport="ipc", ip=os.path.join(self.rundir, "zmq"),
            connection_file=os.path.join(self.rundir, "kernel.json"),
        )
        self._km = km
        km.write_connection_file()
        self._own(km.connection_file)
        log_file = await asyncio.to_thread(open, os.path.join(self.rundir, "kernel.log"), "wb")
        try:
            # Popen gets the scrubbed environment too: under bubblewrap it is also what
            # the sandbox's pid 1 shows in /proc/1/environ.
            await km.start_kernel(env=env, cwd=self.home if self.isolation.mode == "none" else self.rundir,
                                  stdout=subprocess.DEVNULL, stderr=log_file)
        finally:
            log_file.close()
        assert km.provisioner is not None
        self.launched_pid = km.provisioner.pid  # type: ignore[attr-defined]
        self._kc = km.client(context=self._ctx)
        self._kc.start_channels(shell=True, iopub=False, stdin=False, hb=False, control=False)
        deadline = asyncio.get_running_loop().time() + self.config.start_timeout
        await self._wait_ready(deadline)
        await self.bridge.start(self.uid)
        args = f"{self.bridge.path!r}, {self.bridge.token!r}, {self.bridge.max_frame}, {self.config.max_capture_chars}"
        msg_id = self._send(_CALL.format("install", args))
        info = await self._wait(msg_id, deadline - asyncio.get_running_loop().time())
        self.kernel_pid = info["pid"] if self.isolation.mode == "none" else None
        self._known = {p.pid for p in self._processes()}
        if self.kernel_pid is None and self.uid is not None and len(self._known) == 1:
            self.kernel_pid = next(iter(self._known))

    def _log_tail(self) -> str:
        try:
            text = Path(self.rundir, "kernel.log").read_bytes()[-2000:].decode("utf-8", "replace").strip()
        except OSError:
            return ""
        return f" Kernel log: {text}" if text else ""

    async def _wait_ready(self, deadline: float) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if loop.time() > deadline:
                raise SandboxError(
                    f"the sandbox kernel did not answer within {self.config.start_timeout:g} s.{self._log_tail()}")
            if not await self._alive():
                raise SandboxError(
                    f"the sandbox kernel exited during start-up (is ipykernel installed for {self.config.python}?)."
                    f"{self._log_tail()} Use RLM(sandbox='local') to run without the sandbox.")
            msg_id = self._kc.kernel_info()
            try:
                await self._reply(msg_id, 0.5)
                return
            except _Timeout:
                continue

    # -- messages -----------------------------------------------------------------------

    async def _alive(self) -> bool:
        return self._km is not None and not self._dead and await self._km.is_alive()

    def _send(self, code: str) -> str:
        return str(self._kc.execute(code, silent=False, store_history=False, allow_stdin=False, stop_on_error=False))

    async def _reply(self, msg_id: str, timeout: float) -> dict[str, Any]:
        """The shell reply to ``msg_id``; stale replies to earlier requests are dropped."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        next_check = loop.time() + 1.0
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise _Timeout
            try:
                msg = await self._kc.get_shell_msg(timeout=min(_POLL_S, remaining))
            except queue.Empty:
                if loop.time() >= next_check:
                    next_check = loop.time() + 1.0
                    self._watch()
                if not await self._alive():
                    raise KernelLost(self._death()) from None
                continue
            if msg.get("parent_header", {}).get("msg_id") == msg_id:
                return dict(msg.get("content") or {})

    async def _wait(self, msg_id: str, timeout: float) -> dict[str, Any]:
        content = await self._reply(msg_id, timeout)
        for item in content.get("payload") or []:
            if isinstance(item, dict) and item.get("source") == "rlm" and isinstance(item.get("data"), dict):
                return dict(item["data"])
        if content.get("status") == "error":
            return {"error": f"{content.get('ename', 'Error')}: {content.get('evalue', '')}"}
        raise KernelLost("the sandbox kernel answered without a result; it has been replaced")

    def _death(self) -> str:
        code = self._km.provisioner.process.poll() if self._km and self._km.provisioner else None  # type: ignore[attr-defined]
        how = f"was killed by signal {-code}" if isinstance(code, int) and code < 0 else f"exited with code {code}"
        if isinstance(code, int) and code > 128:
            how = f"was killed by signal {code - 128}"
        tail = self._log_tail() if not self._known else ""
        self.kill()
        return f"The sandbox process {how} during the step (a crash, os._exit, or a killed parent).{tail}"

    def _processes(self) -> list[procs.ProcInfo]:
        if self.uid is not None:
            return procs.by_uid(self.uid)
        if self.launched_pid is None:
            return []
        return procs.descendants(self.launched_pid)

    def _watch(self) -> None:
        """Between limits the kernel cannot see: processes and memory summed over the sandbox."""
        found = self._processes()
        rss = sum(p.rss_pages for p in found) * os.sysconf("SC_PAGE_SIZE")
        if len(found) > self.config.max_processes:
            self.kill()
            raise KernelLost(f"The step started more than {self.config.max_processes} processes, so the sandbox was killed.")
        if rss > self.config.memory_mb * 2**20:
            self.kill()
            raise KernelLost(f"The step's processes used more than {self.config.memory_mb} MiB together, "
                             "so the sandbox was killed.")

    def processes(self) -> list[int]:
        """Host pids of every live process of this sandbox (empty once it is killed)."""
        return [p.pid for p in self._processes()]

    def strays(self) -> list[int]:
        """Processes root code started that are still alive (the kernel's own are not)."""
        return [pid for pid in self.processes() if pid not in self._known]

    def kill_strays(self) -> int:
        """Kill processes a step left behind (background, detached, forked); keep the kernel."""
        killed = 0
        for _ in range(50):
            strays = self.strays()
            if not strays:
                break
            killed += procs.kill(strays)
        return killed

    # -- what the REPL uses ---------------------------------------------------------------

    async def call(self, name: str, args: str, timeout: float) -> dict[str, Any]:
        """One helper call in the kernel, with no interrupt on timeout (used for load/get/reset)."""
        try:
            return await self._wait(self._send(_CALL.format(name, args)), timeout)
        except _Timeout:
            self.kill()
            raise KernelLost(f"the sandbox kernel did not answer {name}() within {timeout:g} s") from None

    async def load(self, value: Any) -> None:
        kind = "str" if isinstance(value, str) else "json"
        path = os.path.join(self.rundir, f"context.{'txt' if kind == 'str' else 'json'}")

        def write() -> None:
            with open(path, "w", encoding="utf-8") as fh:
                fh.write(value) if kind == "str" else json.dump(value, fh)
            self._own(path)

        await asyncio.to_thread(write)
        await self.call("load", f"{path!r}, {kind!r}", self.config.start_timeout)

    async def run_step(self, code: str, host: Host, timeout: float) -> ExecResult:
        started = time.perf_counter()
        self.bridge.open_step(host)
        msg_id = self._send(_CALL.format("step", repr(code)))
        note = None
        try:
            try:
                data = await self._wait(msg_id, timeout)
            except _Timeout:
                # The bridge stays open: a step blocked in llm_query gets its
                # KeyboardInterrupt inside the call, and the call is cancelled right after.
                await self._km.interrupt_kernel()  # type: ignore[union-attr]
                note = (f"Step timed out after {timeout:g} s and was interrupted; variables assigned before "
                        "the interruption are kept. Split the work into smaller steps.")
                try:
                    data = await self._wait(msg_id, self.config.interrupt_grace)
                except _Timeout:
                    self.kill()
                    raise KernelLost(f"Step timed out after {timeout:g} s and did not stop when interrupted.") from None
        except asyncio.CancelledError:
            self.dirty = True
            if self._km is not None and not self._dead:
                asyncio.ensure_future(self._km.interrupt_kernel())
            raise
        finally:
            self.bridge.close_step()
            if not self._dead:
                self.kill_strays()
        return _result(data, note, time.perf_counter() - started)

    async def reset(self) -> bool:
        """Ready for the next completion? False if it must be replaced instead."""
        self.bridge.close_step()
        if self._dead:
            return False
        try:
            self.kill_strays()
            data = await self.call("reset", "", self.config.interrupt_grace + 5.0)
        except SandboxError:
            return False
        self.dirty = False
        return data.get("ok") is True

    def kill(self) -> None:
        """Kill every process of this sandbox and remove its files. Idempotent, any thread."""
        self._dead = True
        if self.launched_pid is not None:
            procs.kill_group(self.launched_pid)
            procs.kill([self.launched_pid])
        for _ in range(20):
            left = [p.pid for p in self._processes()]
            if not left or not procs.kill(left):
                break
        shutil.rmtree(self.rundir, ignore_errors=True)

    async def aclose(self) -> None:
        self.kill()
        await self.bridge.close()
        if self._kc is not None:
            self._kc.stop_channels()
        if self._km is not None:
            try:  # reaps the process and closes the manager's control socket
                await asyncio.wait_for(self._km.shutdown_kernel(now=True), 5.0)
            except (asyncio.TimeoutError, OSError, RuntimeError):
                pass


def _result(data: dict[str, Any], note: str | None, seconds: float) -> ExecResult:
    """Untrusted data from the kernel, checked field by field."""
    def text(key: str) -> str | None:
        value = data.get(key)
        return value if isinstance(value, str) else None

    error = text("error")
    if note is not None:
        error = note if error in (None, "KeyboardInterrupt") else f"{note}\n{error}"
    return ExecResult(text("stdout") or "", text("stderr") or "", error, seconds, text("final"))
