"""The host's jupyter_client end of one sandbox kernel: its manager, its shell and control channels.

``SandboxKernel`` decides what to ask the kernel and what to trust of its answers; this
is how the asking travels. Every request is an ``execute`` whose result the kernel leaves
in ``_rlm_in_kernel.last``, read back as a user expression of the same request (public
protocol; the execute reply's ``payload`` is deprecated). The host never subscribes to
iopub, and interrupts go as messages on a control socket of the host's own: signals do
not cross bubblewrap's pid namespace.
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
from typing import TYPE_CHECKING, Any

from .rundir import RunDir

if TYPE_CHECKING:  # imported when a kernel starts: `import rlm` stays light
    import zmq.asyncio
    from jupyter_client.manager import AsyncKernelManager

log = logging.getLogger("rlm")

#: Where each call's result is read: a user expression of the same execute request (public API).
_RESULT = {"rlm": "__import__('_rlm_in_kernel').last"}


class KernelConnection:
    """One kernel's manager (the process) and client (the channels), from launch to shutdown."""

    def __init__(self, ctx: zmq.asyncio.Context, files: RunDir) -> None:
        self.ctx = ctx
        self.files = files
        self.manager: AsyncKernelManager | None = None
        self._client: Any = None
        self._control: Any = None

    async def launch(self, env: dict[str, str], cwd: str) -> int:
        """Start the kernelspec's process (stderr to the run directory's log); returns its pid."""
        from jupyter_client.kernelspec import KernelSpecManager
        from jupyter_client.manager import AsyncKernelManager

        km = AsyncKernelManager(
            kernel_name="rlm-sandbox", kernel_spec_manager=KernelSpecManager(kernel_dirs=[self.files.spec_dir]),
            context=self.ctx, transport="ipc", ip=os.path.join(self.files.sock, "zmq"),
            connection_file=self.files.connection_file,
        )
        self.manager = km
        km.write_connection_file()
        self.files.share_connection_file()
        log_fd = self.files.open_log()
        try:
            # Popen gets the scrubbed environment too: under bubblewrap it is also what
            # the sandbox's pid 1 shows in /proc/1/environ.
            await km.start_kernel(env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=log_fd)
        finally:
            os.close(log_fd)
        assert km.provisioner is not None
        pid: int = km.provisioner.pid  # type: ignore[attr-defined]
        return pid

    def socket_names(self) -> list[str]:
        """The names of the sockets ipykernel will bind in the socket directory."""
        info = self.manager.get_connection_info() if self.manager is not None else {}
        return [f"zmq-{info[k]}" for k in ("shell_port", "iopub_port", "stdin_port", "control_port", "hb_port")]

    def connect(self) -> None:
        """Connect once, now, to the sockets ipykernel bound before any model code ran.

        The context never reconnects (see pool.py), so a socket root code replaces later
        is never followed.
        """
        assert self.manager is not None
        self._client = self.manager.client(context=self.ctx)
        self._client.start_channels(shell=True, iopub=False, stdin=False, hb=False, control=False)
        self._control = self.manager.connect_control()

    async def alive(self) -> bool:
        return self.manager is not None and await self.manager.is_alive()

    def exit_code(self) -> int | None:
        """The launched process's exit status, None while it runs (or when it never started)."""
        km = self.manager
        return km.provisioner.process.poll() if km and km.provisioner else None  # type: ignore[attr-defined]

    def kernel_info(self) -> str:
        """A ``kernel_info_request``; its reply says the kernel is ready."""
        return str(self._client.kernel_info())

    def execute(self, code: str) -> str:
        """Send ``code`` with the user expression that reads its result back; returns the request's id."""
        return str(self._client.execute(code, silent=False, store_history=False, user_expressions=_RESULT,
                                        allow_stdin=False, stop_on_error=False))

    async def shell_message(self, timeout: float) -> Any:
        """The next message on the shell channel; ``queue.Empty`` when none came within ``timeout``."""
        return await self._client.get_shell_msg(timeout=timeout)

    def interrupt(self) -> None:
        """An interrupt_request on our control socket; a kernel that went away is left to the reply's wait."""
        import zmq

        if self.manager is None or self._control is None:
            return
        try:
            self.manager.session.send(self._control, self.manager.session.msg("interrupt_request", content={}))
        except zmq.Again:  # the send timed out: the wait for the step's reply says what happened
            log.debug("rlm sandbox: the interrupt could not be sent")

    def release_sockets(self) -> None:
        """Close our zmq sockets (their file descriptors and eventfds); on the loop, or at exit."""
        client, control = self._client, self._control
        self._client = self._control = None
        try:
            if client is not None:
                client.stop_channels()
        finally:
            if control is not None:
                control.close(linger=0)

    def abandon(self) -> None:
        """The manager's own control socket closed without awaiting (on the runtime loop when it still runs)."""
        if self.manager is None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        background(_awaited(self.manager.shutdown_kernel(now=True)), loop)

    async def shutdown(self) -> None:
        """Reap the process (killed already) and close the manager's sockets."""
        if self.manager is None:
            return
        import zmq

        try:
            await asyncio.wait_for(self.manager.shutdown_kernel(now=True), 5.0)
        except (asyncio.TimeoutError, OSError, RuntimeError, zmq.ZMQError):
            pass


_tasks: set[asyncio.Task[Any]] = set()


def background(coro: Any, loop: asyncio.AbstractEventLoop | None = None) -> None:
    """Run ``coro`` without awaiting it, holding the task until it ends (the loop only keeps weak refs)."""
    task = (loop or asyncio.get_running_loop()).create_task(coro)
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)


async def _awaited(awaitable: Any) -> None:
    await awaitable
