"""Readers run in worker processes, each file bounded in time and memory, so a bad file costs one line.

Why processes: a parser is native code fed untrusted bytes. A zip bomb, a PDF whose
objects never end, a recursive form XObject or a parser bug must not hang, kill or bloat
the process root code runs in. Each worker is a fresh Python (never a fork of a process
with threads) that imports the readers, caps its own address space (``RLIMIT_AS``) and
reads one file at a time; the parent gives each file a deadline and replaces a worker
that overruns it, crashes or dies, and the file's result is the reason, in one line.
Workers start only when a document needs one and run side by side, one per core.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

_FRAME = struct.Struct(">Q")
#: Frames a worker will read at most: a document over this is refused before it is sent.
MAX_INPUT = 1 << 31
#: How the worker is started: its package loaded from its directory under a private name,
#: so neither rlm nor the kernel's run directory needs to be importable there. The working
#: directory leaves the import path (root code can write there); ``PYTHONPATH`` stays, as the
#: kernel's own Python may need it to find the readers (``SandboxConfig(python=..., extra_env=...)``).
_BOOT = ("import sys;sys.path[:]=[p for p in sys.path if p not in ('','.')];import importlib.util;d=sys.argv[1];"
         "s=importlib.util.spec_from_file_location('_rlm_documents',"
         "d+'/__init__.py',submodule_search_locations=[d]);m=importlib.util.module_from_spec(s);"
         "sys.modules['_rlm_documents']=m;s.loader.exec_module(m);"
         "from _rlm_documents.worker import serve;serve(int(sys.argv[2]))")


@dataclass(frozen=True)
class Limits:
    """What one file may take: seconds of wall time, MB of memory beyond a worker's own."""

    seconds: float = 60.0
    memory_mb: int = 1024
    workers: int = 0  # 0: one per core, at most 4
    total_seconds: float = 900.0

    def worker_count(self, jobs: int | None = None) -> int:
        """Workers side by side: one per core (at most 4), or ``workers``; never more than there are jobs."""
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        most = self.workers or min(4, cores)
        return max(1, most if jobs is None else min(jobs, most))


# -- the worker's side ------------------------------------------------------------------


def _readers() -> dict[str, Callable[[bytes], dict[str, Any]]]:
    from . import ebook, markup, notebook, office, pdf

    return {"pdf": pdf.extract, "docx": office.extract_docx, "pptx": office.extract_pptx,
            "xlsx": office.extract_xlsx, "html": markup.extract, "epub": ebook.extract, "ipynb": notebook.extract}


def serve(memory_mb: int) -> None:
    """The worker's loop: a job (JSON, then the file's bytes) in, a result (JSON, then any bytes) out."""
    import resource

    readers = _readers()
    # Imported before the cap: the libraries are the worker's own memory, not a file's.
    for module in ("pypdfium2", "selectolax.lexbor", "lxml.etree"):
        try:
            __import__(module)
        except ImportError:
            pass
    own = _address_space()
    if own:
        try:
            limit = own + memory_mb * 2**20
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        except (ValueError, OSError):
            pass  # macOS refuses RLIMIT_AS; the deadline still holds
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    while True:
        header = _read_frame(stdin)
        if header is None:
            return
        job = json.loads(header)
        data = _read_frame(stdin) or b""
        extra = b""
        try:
            if job["op"] == "render":
                from . import pdf

                extra = pdf.render(data, int(job["page"]), float(job["scale"]))
                result: dict[str, Any] = {"ok": True}
            elif job["format"] == "pdf":
                from . import pdf

                result = {"ok": pdf.extract(data, int(job.get("part", 0)), int(job.get("of", 1)))}
            else:
                result = {"ok": readers[job["format"]](data)}
        except MemoryError:
            result = {"error": f"needs more than {memory_mb:,} MB of memory to read"}
        except RecursionError:
            result = {"error": "nested too deeply to read"}
        except ImportError as exc:
            result = {"error": f"its reader is not installed ({exc.name}): pip install rlm"}
        except (ValueError, IndexError, KeyError) as exc:
            result = {"error": str(exc) or type(exc).__name__}
        except Exception as exc:  # noqa: BLE001 - any reader failure is this file's reason, not the worker's end
            result = {"error": f"damaged or unreadable ({type(exc).__name__}: {exc})"[:300]}
        del data
        body = json.dumps(result).encode()
        stdout.write(_FRAME.pack(len(body)) + body + _FRAME.pack(len(extra)) + extra)
        stdout.flush()


def _address_space() -> int:
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _read_frame(stream: Any) -> bytes | None:
    head = stream.read(_FRAME.size)
    if len(head) < _FRAME.size:
        return None
    (size,) = _FRAME.unpack(head)
    if size > MAX_INPUT:
        raise SystemExit(2)
    return bytes(stream.read(size))


# -- the parent's side ------------------------------------------------------------------


class _Worker:
    """One worker process and the job it is on."""

    def __init__(self, limits: Limits) -> None:
        package = os.path.dirname(os.path.abspath(__file__))
        self.proc = subprocess.Popen([sys.executable, "-s", "-c", _BOOT, package, str(limits.memory_mb)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     close_fds=True)
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.out = self.proc.stdout.fileno()
        os.set_blocking(self.out, False)
        self.job: int | None = None
        self.deadline = 0.0
        self.buffer = bytearray()

    def send(self, job: int, header: dict[str, Any], data: bytes, seconds: float) -> None:
        assert self.proc.stdin is not None
        body = json.dumps(header).encode()
        self.job, self.deadline, self.buffer = job, time.monotonic() + seconds, bytearray()
        self.proc.stdin.write(_FRAME.pack(len(body)) + body + _FRAME.pack(len(data)))
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def result(self) -> tuple[dict[str, Any], bytes] | None:
        """The job's result once its two frames are in, else None."""
        buf = self.buffer
        if len(buf) < _FRAME.size:
            return None
        (size,) = _FRAME.unpack_from(buf)
        end = _FRAME.size + size
        if len(buf) < end + _FRAME.size:
            return None
        (extra,) = _FRAME.unpack_from(buf, end)
        if len(buf) < end + _FRAME.size + extra:
            return None
        return json.loads(bytes(buf[_FRAME.size : end])), bytes(buf[end + _FRAME.size :])

    def why_dead(self, memory_mb: int) -> str:
        """Why the worker stopped answering (it is killed if it has not ended within a moment)."""
        try:
            code = self.proc.wait(timeout=2.0)
        except subprocess.TimeoutExpired:
            self.stop()
            return "the reader stopped answering (killed)"
        if code < 0:
            name = signal.Signals(-code).name if -code in signal.valid_signals() else str(-code)
            return f"the reader crashed ({name}), or ran past its {memory_mb:,} MB of memory"
        return f"the reader stopped (exit code {code})"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                try:
                    stream.close()
                except OSError:
                    pass


Job = tuple[dict[str, Any], bytes]
Result = tuple[dict[str, Any], bytes]


class _Jobs:
    """Jobs handed to workers one at a time; a worker is started when a job needs it, and one that overran,
    crashed or died is stopped and its job ends with the reason."""

    def __init__(self, jobs: list[Job], limits: Limits) -> None:
        self.jobs, self.limits = jobs, limits
        self.results: list[Result | None] = [None] * len(jobs)
        self.pending = list(range(len(jobs)))[::-1]
        self.slots: list[_Worker | None] = [None] * limits.worker_count(len(jobs))
        self.selector = selectors.DefaultSelector()
        self.stop_all = time.monotonic() + limits.total_seconds

    def run(self) -> list[Result]:
        try:
            while self.pending or self._busy():
                self._hand_out()
                busy = self._busy()
                if not busy:
                    continue
                wait = max(0.0, min(w.deadline for _, w in busy) - time.monotonic())
                for key, _ in self.selector.select(wait):
                    self._collect(key.data)
                now = time.monotonic()
                for slot, worker in self._busy():
                    if now > worker.deadline:
                        self._end(slot, f"took more than {self.limits.seconds:g} s to read (stopped)")
        finally:
            for left in self.slots:
                if left is not None:
                    left.stop()
            self.selector.close()
        return [r if r is not None else ({"error": "not read"}, b"") for r in self.results]

    def _busy(self) -> list[tuple[int, _Worker]]:
        return [(i, w) for i, w in enumerate(self.slots) if w is not None and w.job is not None]

    def _hand_out(self) -> None:
        for slot, worker in enumerate(self.slots):
            if not self.pending:
                return
            if worker is not None and worker.job is not None:
                continue
            if time.monotonic() > self.stop_all:
                for job in self.pending:
                    self.results[job] = ({"error": f"not read: reading took over {self.limits.total_seconds:g} s "
                                                   "in all"}, b"")
                self.pending.clear()
                return
            if worker is None:
                worker = self.slots[slot] = _Worker(self.limits)
            job = self.pending.pop()
            try:
                worker.send(job, *self.jobs[job], self.limits.seconds)
            except OSError:
                self._end(slot, worker.why_dead(self.limits.memory_mb), registered=False)
                continue
            self.selector.register(worker.out, selectors.EVENT_READ, slot)

    def _collect(self, slot: int) -> None:
        worker = self.slots[slot]
        assert worker is not None and worker.job is not None
        try:
            chunk = os.read(worker.out, 1 << 20)
        except BlockingIOError:
            return
        if not chunk:
            self._end(slot, worker.why_dead(self.limits.memory_mb))
            return
        worker.buffer += chunk
        done = worker.result()
        if done is not None:
            self.results[worker.job] = done
            worker.job = None
            self.selector.unregister(worker.out)

    def _end(self, slot: int, why: str, *, registered: bool = True) -> None:
        """The worker in ``slot`` is done for: its job ends with ``why``, and it is stopped."""
        worker = self.slots[slot]
        assert worker is not None and worker.job is not None
        self.results[worker.job] = ({"error": why}, b"")
        if registered:
            self.selector.unregister(worker.out)
        worker.stop()
        self.slots[slot] = None


def run_jobs(jobs: list[Job], limits: Limits) -> list[Result]:
    """Each job's (result, bytes) in order; a job that overran, crashed or broke its worker gets ``error``."""
    return _Jobs(jobs, limits).run()


#: A PDF over this many bytes is read in shares, one per worker, side by side.
PDF_SHARE_BYTES = 1 << 20


def read_all(files: list[tuple[str, bytes]], limits: Limits) -> list[dict[str, Any]]:
    """Each ``(format, bytes)`` read by its reader in a worker: the reader's dict, or ``{"error": why}``."""
    jobs: list[Job] = []
    owners: list[int] = []
    for i, (fmt, data) in enumerate(files):
        shares = min(limits.worker_count(), -(-len(data) // PDF_SHARE_BYTES)) if fmt == "pdf" else 1
        for share in range(max(1, shares)):
            jobs.append(({"op": "extract", "format": fmt, "part": share, "of": max(1, shares)}, data))
            owners.append(i)
    pieces: list[list[dict[str, Any]]] = [[] for _ in files]
    for owner, (result, _) in zip(owners, run_jobs(jobs, limits), strict=True):
        found = result.get("ok")
        pieces[owner].append(found if isinstance(found, dict) else {"error": str(result.get("error"))})
    return [_joined(fmt, found) for (fmt, _), found in zip(files, pieces, strict=True)]


def _joined(fmt: str, found: list[dict[str, Any]]) -> dict[str, Any]:
    errors = [f for f in found if "error" in f]
    if errors:
        return errors[0]
    if len(found) == 1:
        return found[0]
    from . import pdf

    return pdf.merge(found)


def render(data: bytes, page: int, scale: float, limits: Limits) -> bytes:
    """A PDF page as PNG bytes, drawn in a worker; ``ValueError`` with the reason if it could not be."""
    [(result, png)] = run_jobs([({"op": "render", "page": page, "scale": scale}, data)],
                               Limits(limits.seconds, limits.memory_mb, 1, limits.total_seconds))
    if result.get("ok") is not True:
        raise ValueError(f"page {page} could not be drawn: {result.get('error')}")
    return png
