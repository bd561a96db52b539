"""The one place a served request becomes an rlm run (the seam between the protocols and rlm).

A ``Service`` holds, for the server's whole life, one ``RLM`` per served model name,
all sharing one upstream limiter, one cache and one kernel pool: concurrent requests
queue for the same upstream slots instead of each bringing their own. A ``Job`` is a
query over a context (text, a confined document, a server-made file); ``complete`` runs
it with the server's limits, feeds its trace events to a listener, and writes its trace
(scrubbed of secrets) to the trace directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import re
import secrets
import stat
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, cast

from .. import RLM, Endpoint, Limits, SandboxConfig, runtime
from ..core.estimate import Estimate
from ..core.result import RLMResult
from ..datasets.maps import Admit, MapResult
from ..lm.cache import as_cache
from ..repl.contexts import DirectoryContext, TextFile, load_context
from ..trace.events import Event, Subscriber
from ..trace.jsonl import JsonlWriter
from ..trace.redact import Redactor
from .config import ModelRoute, ServeConfig
from .errors import RequestError
from .paths import Confined
from .uploads import Uploads

log = logging.getLogger("rlm.serve")
#: How long a stopped run may take to unwind before its documents are closed anyway.
UNWIND_S = 60.0
#: Models one server builds at most (``--any-model`` makes one per upstream name a client asks for).
MAX_MODELS = 64
#: Fresh kernels kept warm, at most (each about 60 MB).
WARM_KERNELS = 4
Listener = Callable[[Event], None]
T = TypeVar("T")
#: What a trace's file name looks like (``TraceFile``'s names); anything else is not one.
TRACE_NAME = re.compile(r"^[A-Za-z0-9._-]{1,200}\.jsonl$")


@dataclass
class Job:
    """One question over one context. ``context``: a str, a ``Confined`` document or ``Uploads`` (files sent)."""

    route: ModelRoute
    query: str
    context: Any = ""
    schema: Any = None
    _released: bool = field(default=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def claim_release(self) -> bool:
        """True the first time only: a job's documents are released once, whoever asks."""
        with self._lock:
            first, self._released = not self._released, True
        return first


@dataclass
class Prepared:
    """A job ready to run: its route's RLM and its context, loaded."""

    job: Job
    rlm: RLM
    context: Any


@dataclass
class Finished:
    """A run's result and where its trace was saved (None when the server keeps no traces)."""

    result: RLMResult
    trace: Path | None


class TraceFile:
    """The trace of one run, written line by line as it happens (scrubbed); and whether the run is over.

    Its name is random (``secrets.token_urlsafe``): it is what a client needs to read the
    trace back (``/v1/traces/NAME``, ``rlm://traces/NAME``), so no client can guess another's.
    The file is the server user's only (0600, in a 0700 directory). ``finished`` is set
    once the run's coroutine has ended on rlm's loop, whichever way: only then is nothing
    of the job's read any more.
    """

    def __init__(self, directory: Path | None) -> None:
        self.writer = JsonlWriter(directory, name=f"{secrets.token_urlsafe(16)}.jsonl", private=True) \
            if directory is not None else None
        self.finished = threading.Event()
        self.submitted = False

    @property
    def path(self) -> Path | None:
        """Where the trace is, once its first event was written."""
        return self.writer.path if self.writer is not None else None

    def __call__(self, event: Event) -> None:
        if self.writer is not None:
            self.writer(event)

    def close(self) -> None:
        """Close the file (a run cancelled before its end event would leave it open)."""
        if self.writer is not None:
            self.writer.close()


def private_dir(path: Path) -> Path:
    """``path`` made if missing (its parents too), and readable by this user only (0700)."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


class Service:
    """What every request shares. Build once, ``await aclose()`` at shutdown."""

    def __init__(self, config: ServeConfig) -> None:
        self.config = config
        self.redactor = Redactor(config.secrets)
        self.cache = as_cache(config.cache)
        self._rlms: dict[str, RLM] = {}
        # A directory of this server's own, so a restart does not mix runs.
        stamp = f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
        self.trace_dir = Path(config.trace_dir) / stamp if config.trace_dir else None
        self._first: RLM | None = None
        for route in config.models:  # a route the upstream cannot price fails at start, not per request
            self.rlm(route)

    def route(self, name: object) -> ModelRoute:
        """The route for a client's model name, or ``RequestError(404)``."""
        route = self.config.route(name) if isinstance(name, str) else None
        if route is None:
            raise RequestError(404, f"the model {name!r} does not exist on this server; GET /v1/models lists them",
                               param="model", code="model_not_found")
        return route

    def rlm(self, route: ModelRoute) -> RLM:
        """The route's RLM, made on first use with the server's limits and the shared limiter, cache and kernels."""
        known = self._rlms.get(route.name)
        if known is not None:
            return known
        if len(self._rlms) >= MAX_MODELS:
            raise RequestError(400, f"this server already serves {MAX_MODELS} models, its limit; ask for one of "
                                    "GET /v1/models", param="model", code="too_many_models")
        if self._first is None:
            cfg = self.config
            # Kernels kept started, so a burst of requests does not wait for each one to boot.
            sandbox = SandboxConfig(warm_kernels=min(cfg.max_runs, WARM_KERNELS)) if cfg.sandbox == "kernel" \
                else "local"
            rlm = self._first = RLM(
                route.root, route.sub, base_url=cfg.base_url, api_key=cfg.api_key or "no-key", sandbox=sandbox,
                max_concurrent=cfg.upstream_concurrency, max_iterations=cfg.max_iterations, max_depth=cfg.max_depth,
                budget=cfg.budget, progress=False, limits=Limits(step_timeout=cfg.step_timeout),
                endpoint=Endpoint(rpm=cfg.rpm, tpm=cfg.tpm, cache=self.cache))
        else:  # one limiter, kernel pool, cache and clients for every route: the upstream sees one client
            rlm = self._first.sibling(route.root, route.sub)
        self._rlms[route.name] = rlm
        return rlm

    def read_trace(self, name: str) -> bytes | None:
        """A saved trace of this server's by file name (as written: scrubbed), or None; never through a link."""
        if self.trace_dir is None or not TRACE_NAME.match(name):
            return None
        try:
            top = os.open(self.trace_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, dir_fd=top)
            finally:
                os.close(top)
        except OSError:
            return None
        with os.fdopen(fd, "rb") as fh:
            return fh.read() if stat.S_ISREG(os.fstat(fh.fileno()).st_mode) else None

    def trace_file(self) -> TraceFile:
        return TraceFile(self.trace_dir)

    async def prepare(self, job: Job) -> Prepared:
        """The route's RLM and the loaded context, or ``RequestError`` (a model too many, a document unreadable).

        Separate from ``run`` so that a protocol can refuse with a real status before it
        starts answering (a stream). The caller releases the job if it goes no further.
        """
        rlm = self.rlm(job.route)
        context = await off_loop(lambda: self.load(job.context))
        return Prepared(job, rlm, context)

    async def run(self, prepared: Prepared, listener: Listener | None = None,
                  trace: TraceFile | None = None) -> Finished:
        """Run a prepared job; its events go (scrubbed) to ``trace`` and ``listener`` as they happen, on rlm's thread.

        Raises what the run raised (``rlm.errors``); cancelling the caller's task stops the
        run, and its trace so far is kept. The job is released whichever way it ends.
        """
        trace = trace or self.trace_file()
        subscribers: list[Subscriber] = [self.redactor.subscriber(trace)]
        if listener is not None:
            subscribers.append(listener)
        job = prepared.job
        try:
            async def on_rlm_loop() -> RLMResult:
                try:
                    return await prepared.rlm.acompletion(prepared.context, job.query, schema=job.schema,
                                                          subscribers=subscribers, view=False)
                finally:
                    trace.finished.set()

            trace.submitted = True
            result = await asyncio.wrap_future(runtime.submit(on_rlm_loop()))
        finally:
            self.release(job, trace)
        return Finished(result, trace.path)

    async def complete(self, job: Job, listener: Listener | None = None, trace: TraceFile | None = None) -> Finished:
        """``prepare`` then ``run``: raises ``RequestError`` for a job it cannot take, else what the run raised."""
        try:
            prepared = await self.prepare(job)
        except BaseException:
            self.release(job, trace)
            raise
        return await self.run(prepared, listener, trace)

    def load(self, context: Any) -> Any:
        """The context as the run takes it: a confined document opened through its checked descriptor."""
        if isinstance(context, Uploads):  # files a client sent: written now, in a directory the server made
            return _named(load_context(context.write()), "uploaded files")
        if not isinstance(context, Confined):
            return context
        try:
            loaded = load_context(Path(context.path if context.is_dir else context.real))
            identity = (getattr(loaded, "device", None), getattr(loaded, "inode", None))
            if not context.is_dir and identity[0] is None:  # a file type that does not check: the checked inode
                loaded = load_context(Path(context.path))
            elif not context.is_dir and identity != context.identity:
                raise RequestError(409, f"document {context.name!r} was replaced while it was opened", param="path")
        except (OSError, ValueError) as exc:
            raise RequestError(400, f"document {context.name!r} cannot be read: {exc}", param="path") from None
        if isinstance(loaded, DirectoryContext) or (isinstance(loaded, TextFile) and loaded.path == context.real):
            context.done = True  # read whole (a directory), or reopened by its real path, identity checked (a file)
        return _named(loaded, context.name)  # the name the root sees: the document's, not /proc/self/fd/N

    def release(self, job: Job, trace: TraceFile | None = None) -> None:
        """Close the job's documents and trace file and remove its files, once its run (if any) has unwound.

        A thread waits for that when it has not yet; the caller never does.
        """
        trace = trace or TraceFile(None)
        if not job.claim_release():
            return
        documents = [c for c in (job.context,) if isinstance(c, Confined)]
        for confined in documents:
            if confined.done:  # the run no longer reads through its descriptor
                confined.close()

        def release() -> None:
            ended = not trace.submitted or trace.finished.wait(UNWIND_S)
            trace.close()
            if not ended:
                # A descriptor's number is reused once closed: a run still reading /proc/self/fd/N must end
                # first, or it could read whatever the number names next. Better left open than that.
                log.warning("a stopped run did not unwind in %s s; its documents stay open", UNWIND_S)
                return
            for confined in documents:
                confined.close()
            if isinstance(job.context, Uploads):
                job.context.remove()

        if trace.finished.is_set() or not trace.submitted:
            release()
        else:
            threading.Thread(target=release, name="rlm-serve-release", daemon=True).start()

    async def estimate(self, route: ModelRoute, context: Any, query: str) -> Estimate:
        """What ``query`` over ``context`` is likely to cost on ``route``; no model is called."""
        rlm = self.rlm(route)
        return await off_loop(lambda: rlm.estimate(self.load(context), query))

    async def map_rlm(self, route: ModelRoute, contexts: Iterable[Any], query: str, checkpoint: Path,
                      admit: Admit, listener: Listener | None = None) -> MapResult:
        """One completion of ``query`` per context, resumable from ``checkpoint``; each under the server's budget.

        Each completion runs inside ``admit()`` (a run slot of the server's): a map runs at
        most as many completions at once as the server has free.
        """
        rlm = self.rlm(route)
        subscribers = [listener] if listener is not None else []
        loaded = await off_loop(lambda: [self.load(c) for c in contexts])
        return await rlm.amap_rlm(loaded, query, checkpoint=checkpoint, max_concurrent=self.config.max_runs,
                                  subscribers=subscribers, view=False, admit=admit)

    async def map(self, route: ModelRoute, prompts: list[str], checkpoint: Path,
                  listener: Listener | None = None) -> MapResult:
        """One sub-call per prompt (the route's sub-model), resumable from ``checkpoint``."""
        rlm = self.rlm(route)
        subscribers = [listener] if listener is not None else []
        return await rlm.amap(prompts, checkpoint=checkpoint, model=route.sub, subscribers=subscribers, view=False)

    async def aclose(self) -> None:
        """Stop the kernels (once: the routes share them)."""
        if self._first is not None:
            await self._first.aclose()


def _named(loaded: Any, name: str) -> Any:
    """A loaded directory described by ``name`` rather than the path it was read through."""
    if dataclasses.is_dataclass(loaded) and not isinstance(loaded, type) and hasattr(loaded, "root"):
        return dataclasses.replace(cast(Any, loaded), root=name)
    return loaded


async def off_loop(work: Callable[[], T], undo: Callable[[T], None] | None = None) -> T:
    """``work()`` in a thread, so the server's loop stays free (reading files, walking a folder, big JSON).

    A caller cancelled meanwhile still waits for the thread (it may read the job's
    documents, which are closed after), then ``undo``es what it made.
    """
    running = asyncio.ensure_future(asyncio.to_thread(work))
    try:
        return await asyncio.shield(running)
    except asyncio.CancelledError:
        with contextlib.suppress(BaseException):
            made = await running
            if undo is not None:
                undo(made)
        raise


def hop(loop: asyncio.AbstractEventLoop, listener: Callable[[Event], None]) -> Listener:
    """A subscriber for rlm's thread that hands each event to ``listener`` on ``loop``."""

    def forward(event: Event) -> None:
        if not loop.is_closed():
            loop.call_soon_threadsafe(listener, event)

    return forward
