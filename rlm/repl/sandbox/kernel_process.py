"""One sandboxed ipykernel process, driven from the host with jupyter_client's async API.

The kernel gets a scrubbed environment (no keys), resource limits, a fresh temp dir,
its own uid when the host runs as root, and under bubblewrap a read-only view of the
system with no network and no view of host processes. The context arrives by a file
the kernel can read but not touch; ``llm_query``/``llm_batch``/``rlm_query`` call back
over ``Bridge``. A step that runs past its timeout is interrupted, and a kernel that
does not stop, dies or breaks a limit is replaced; the root is told in plain words.
Every kernel serves one completion: none ever runs code after another's.
How requests travel (jupyter_client's manager and channels) is connection.py's.
See docs/security.md.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import queue
import secrets
import time
from typing import TYPE_CHECKING, Any

from ...errors import SandboxError, SandboxTimeout
from ..base import ExecResult, Host
from . import procs
from .bridge import Bridge
from .config import Isolation, SandboxConfig
from .connection import KernelConnection, background
from .exchange import LoadEnded, Payload, Pipe, load_error, step_result, text_of, user_expression
from .isolation import pick_uid
from .launch import SANDBOX_HOME, bwrap_command, kernel_env, launcher_config
from .rundir import RunDir

if TYPE_CHECKING:
    import zmq.asyncio

log = logging.getLogger("rlm")

_CALL = "__import__('_rlm_in_kernel').{}({})"
#: How often a waiting host checks that the kernel is alive and within its limits.
_POLL_S = 0.25


class KernelLost(SandboxError):
    """The kernel died, stopped answering or broke a limit; it has been killed."""


class _Timeout(Exception):
    pass


class SandboxKernel:
    """One sandboxed kernel process with its run directory and bridge."""

    def __init__(
        self,
        config: SandboxConfig,
        isolation: Isolation,
        ctx: zmq.asyncio.Context,
        *,
        refused: list[str] | None = None,
    ) -> None:
        self.config = config
        self.isolation = isolation
        self.id = secrets.token_hex(6)
        self.uid = pick_uid() if isolation.separate_user else None
        self.files = RunDir(self.id, uid=self.uid)
        self.rundir = self.files.path
        self.home = SANDBOX_HOME if isolation.mode == "bwrap" else self.files.work
        self.bridge = Bridge(self.files.bridge, max_frame=config.max_bridge_mb * 2**20, max_batch=config.max_batch,
                             refused=refused)
        self.launched_pid: int | None = None
        self.procs = procs.SandboxProcesses(self.uid)
        self.conn = KernelConnection(ctx, self.files)
        self._dead = False

    # -- start --------------------------------------------------------------------------

    def _prepare_files(self) -> dict[str, str]:
        """Run directory, kernel files and kernelspec; returns the kernel's environment."""
        self.files.prepare(with_work=self.isolation.mode != "bwrap")
        script = os.path.join(self.rundir, "_rlm_launch.py")
        cfg = launcher_config(self.isolation, self.config, self.uid, home=self.home, sockdir=self.files.sock)
        inner = [self.config.python, script, json.dumps(cfg), "-f", "{connection_file}",
                 "--IPKernelApp.capture_fd_output=False", "--HistoryManager.enabled=False"]
        env = kernel_env(self.config, self.home, self.id)
        if self.isolation.mode == "bwrap":
            assert self.isolation.bwrap is not None
            argv = bwrap_command(self.isolation.bwrap, self.config, self.rundir, self.files.sock, env, inner)
        else:
            argv = inner
        # "signal", though steps are interrupted by message (``interrupt``, on a socket of our own): so that
        # jupyter_client's shutdown sends nothing. Its control socket may have connected to the kernel; once
        # the kernel is dead a send there blocks for good (the context never reconnects), and it would block
        # rlm's loop. The signal goes to a process group we have already killed.
        self.files.write_spec(json.dumps(
            {"argv": argv, "display_name": "rlm sandbox", "language": "python", "interrupt_mode": "signal"}))
        return env

    async def start(self) -> None:
        """Launch, wait until it answers, connect the bridge. Raises ``SandboxError``."""
        started = time.perf_counter()
        try:
            await self._start()
        except SandboxError:
            self.kill()
            raise
        except OSError as exc:
            self.kill()
            raise SandboxError(f"the sandbox kernel could not start: {exc}.{self._log_tail()}") from exc
        except BaseException:
            self.kill()
            raise
        log.debug("rlm sandbox %s started in %.2f s (%s)", self.id, time.perf_counter() - started, self.isolation.mode)

    async def _start(self) -> None:
        env = await asyncio.to_thread(self._prepare_files)
        cwd = self.home if self.isolation.mode != "bwrap" else self.rundir
        self.launched_pid = self.procs.launched = await self.conn.launch(env, cwd)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.start_timeout
        await self._wait_sockets(deadline)
        self.conn.connect()
        await self._wait_ready(deadline)
        await self.bridge.start()
        self.files.share_socket(self.bridge.path)
        # Without a network namespace, seccomp refuses every socket family but AF_UNIX.
        no_network = self.isolation.mode == "uid" and self.isolation.network_blocked
        args = f"{self.bridge.path!r}, {self.bridge.token.hex()!r}, {self.bridge.max_frame}, {no_network!r}"
        info = await self._wait(self.conn.execute(_CALL.format("install", args)), deadline - loop.time())
        if info.get("ok") is not True:
            raise SandboxError(f"the sandbox kernel could not install rlm's helpers: {info.get('error', info)}")
        known = self.procs.mark_known()
        if no_network and not all(procs.seccomp_filtered(p) for p in known):
            raise SandboxError("the sandbox kernel's network filter is not in place on every thread")

    async def _wait_sockets(self, deadline: float) -> None:
        """Until ipykernel has bound its five sockets; then (with a uid of its own) freeze their dir."""
        names = self.conn.socket_names()
        loop = asyncio.get_running_loop()
        while not self.files.sockets_ready(names):
            if loop.time() > deadline:
                raise SandboxTimeout(
                    f"the sandbox kernel did not start within {self.config.start_timeout:g} s.{self._log_tail()}")
            if not await self._alive():
                raise SandboxError(
                    f"the sandbox kernel exited during start-up (is ipykernel installed for {self.config.python}?)."
                    f"{self._log_tail()} Use RLM(sandbox='local') to run without the sandbox.")
            await asyncio.sleep(0.01)
        if not self.files.freeze_sockets():
            raise SandboxError("the sandbox kernel's socket directory was replaced during start-up")

    def _log_tail(self) -> str:
        text = self.files.log_tail()
        return f" Kernel log: {text}" if text else ""

    async def _wait_ready(self, deadline: float) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if loop.time() > deadline:
                raise SandboxTimeout(
                    f"the sandbox kernel did not answer within {self.config.start_timeout:g} s.{self._log_tail()}")
            if not await self._alive():
                raise SandboxError(f"the sandbox kernel exited during start-up.{self._log_tail()}")
            msg_id = self.conn.kernel_info()
            try:
                await self._reply(msg_id, 0.5)
                return
            except _Timeout:
                continue

    # -- messages -----------------------------------------------------------------------

    async def _alive(self) -> bool:
        return not self._dead and await self.conn.alive()

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
                msg = await self.conn.shell_message(min(_POLL_S, remaining))
            except queue.Empty:
                if loop.time() >= next_check:
                    next_check = loop.time() + 1.0
                    self._watch()
                if not await self._alive():
                    raise KernelLost(self._death()) from None
                continue
            if not isinstance(msg, dict):
                continue
            parent = msg.get("parent_header")
            if isinstance(parent, dict) and parent.get("msg_id") == msg_id:
                content = msg.get("content")
                return dict(content) if isinstance(content, dict) else {}

    async def _wait(self, msg_id: str, timeout: float) -> dict[str, Any]:
        """The result the call left in ``_rlm_in_kernel.last``, read back as a user expression; untrusted."""
        content = await self._reply(msg_id, timeout)
        if content.get("status") == "error":
            return {"error": f"{text_of(content.get('ename')) or 'Error'}: {text_of(content.get('evalue'))}"}
        result = user_expression(content)
        if result is None:
            raise KernelLost("the sandbox kernel answered without a result; it has been replaced")
        return result

    def _death(self) -> str:
        code = self.conn.exit_code()
        how = f"was killed by signal {-code}" if isinstance(code, int) and code < 0 else f"exited with code {code}"
        if isinstance(code, int) and code > 128:
            how = f"was killed by signal {code - 128}"
        tail = self._log_tail() if not self.procs.known else ""
        self.kill()
        return f"The sandbox process {how} during the step (a crash, os._exit, or a killed parent).{tail}"

    def _watch(self) -> None:
        """Between limits the kernel cannot see: processes and memory summed over the sandbox."""
        breach = self.procs.over_limits(self.config.max_processes, self.config.memory_mb)
        if breach is not None:
            self.kill()
            raise KernelLost(f"{breach}, so the sandbox was killed.")

    def processes(self) -> list[int]:
        """Host pids of every live process of this sandbox (empty once it is killed)."""
        return self.procs.pids()

    def strays(self) -> list[int]:
        """Processes root code started that are still alive (the kernel's own are not)."""
        return self.procs.strays()

    # -- what the REPL uses ---------------------------------------------------------------

    async def call(self, name: str, args: str, timeout: float) -> dict[str, Any]:
        """One helper call in the kernel, with no interrupt on timeout (used for load/get)."""
        try:
            return await self._wait(self.conn.execute(_CALL.format(name, args)), timeout)
        except _Timeout:
            self.kill()
            raise KernelLost(f"the sandbox kernel did not answer {name}() within {timeout:g} s") from None

    async def load(self, payload: Payload, query: str = "", tools: tuple[str, ...] = ()) -> dict[str, Any]:
        """Hand the context over: down a pipe the host fills as the kernel reads, or a descriptor of the user's file.

        Returns the kernel's reply, untrusted: for documents, the description it wrote of them.
        """
        return await self._hand_over(payload, "load", f"{query!r}, {tools!r}", "the context")

    async def put(self, name: str, payload: Payload) -> dict[str, Any]:
        """A value under ``name`` in the kernel, handed over as the context is; the kernel's reply, untrusted."""
        return await self._hand_over(payload, "put", repr(name), name)

    async def _hand_over(self, payload: Payload, call: str, rest: str, what: str) -> dict[str, Any]:
        """The kernel takes one descriptor from the bridge and reads the value from it.

        A pipe, not a file in the run directory: the host's write and the kernel's read
        overlap, and nothing goes to disk (a 1 GiB write there took 5.6 s, docs/performance.md).
        The writer gives up once the call ends, whatever the kernel did with the pipe.
        """
        pipe = writer = None
        if payload.source is not None and self.isolation.takes_descriptors:
            offer = self.bridge.offer_fd(await asyncio.to_thread(payload.source.open))
        else:
            assert payload.write is not None
            pipe = Pipe()
            offer = self.bridge.offer_fd(pipe.read_fd)
            writer = asyncio.ensure_future(asyncio.to_thread(pipe.fill, payload.write))
        try:
            reply = await self.call(call, f"{offer!r}, {payload.kind!r}, {rest}",
                                    self.config.start_timeout + payload.seconds)
        finally:
            self.bridge.withdraw_fd(offer)
            if pipe is not None and writer is not None:
                pipe.ended.set()
                try:
                    await asyncio.shield(writer)
                except (LoadEnded, BrokenPipeError):
                    pass  # the kernel stopped reading: its reply says why
                finally:
                    pipe.close()
        if "error" in reply:
            raise load_error(what, text_of(reply["error"]))
        return reply

    async def interrupt(self) -> None:
        """An interrupt_request on our control socket (bubblewrap lets no signal in); none to a dead kernel."""
        if not self._dead:
            self.conn.interrupt()

    async def run_step(self, code: str, host: Host, timeout: float, cap: int) -> ExecResult:
        """One step; its output kept to ``cap`` characters (head and tail) in the kernel, and again here."""
        started = time.perf_counter()
        self.bridge.open_step(host)
        msg_id = self.conn.execute(_CALL.format("step", f"{code!r}, {cap}"))
        note = None
        try:
            try:
                data = await self._wait(msg_id, timeout)
            except _Timeout:
                # The bridge stays open: a step blocked in llm_query gets its
                # KeyboardInterrupt inside the call, and the call is cancelled right after.
                await self.interrupt()
                note = (f"Step timed out after {timeout:g} s and was interrupted; variables assigned before "
                        "the interruption are kept. Split the work into smaller steps.")
                try:
                    data = await self._wait(msg_id, self.config.interrupt_grace)
                except _Timeout:
                    self.kill()
                    raise KernelLost(f"Step timed out after {timeout:g} s and did not stop when interrupted.") from None
        except asyncio.CancelledError:
            if not self._dead:
                background(self.interrupt())
            raise
        finally:
            self.bridge.close_step()
            if not self._dead:
                self.procs.kill_strays()
        return step_result(data, note, time.perf_counter() - started, cap)

    def kill(self) -> None:
        """Kill every process of this sandbox and remove its files. Idempotent, any thread, never raises."""
        self.kill_processes()
        self.files.remove()

    def kill_processes(self) -> None:
        self._dead = True
        self.procs.kill_all()

    def abandon(self) -> None:
        """Release every socket without awaiting (the pool was garbage-collected)."""
        self.bridge.abandon()
        self.conn.release_sockets()
        self.conn.abandon()

    async def aclose(self) -> None:
        """Kill, then remove the files off the loop (a tree root code made may be large)."""
        self.kill_processes()
        await asyncio.to_thread(self.files.remove)
        await self.bridge.close()
        self.conn.release_sockets()
        await self.conn.shutdown()  # reaps the process
