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
#: so neither rlm nor the kernel's run directory needs to be importable there.
_BOOT = ("import importlib.util,sys;d=sys.argv[1];s=importlib.util.spec_from_file_location('_rlm_documents',"
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

    def worker_count(self, files: int) -> int:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        return max(1, min(files, self.workers or min(4, cores)))


# -- the worker's side ------------------------------------------------------------------


def _readers() -> dict[str, Callable[[bytes], dict[str, Any]]]:
    from . import ebook, markup, notebook, office, pdf

    return {"pdf": pdf.extract, "docx": office.extract_docx, "pptx": office.extract_pptx,
            "xlsx": office.extract_xlsx, "html": markup.extract, "epub": ebook.extract, "ipynb": notebook.extract}


def serve(memory_mb: int) -> None:
    """The worker's loop: a job (JSON, then the file's bytes) in, a result (JSON, then any bytes) out."""
    import resource

    readers = _readers()
    for module in ("pypdfium2", "lxml.etree"):  # imported before the cap: they are the worker's own memory
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
        self.proc = subprocess.Popen([sys.executable, "-I", "-c", _BOOT, package, str(limits.memory_mb)],
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
        code = self.proc.wait()
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


def run_jobs(jobs: list[Job], limits: Limits) -> list[tuple[dict[str, Any], bytes]]:
    """Each job's (result, bytes) in order; a job that overran, crashed or broke its worker gets ``error``."""
    results: list[tuple[dict[str, Any], bytes] | None] = [None] * len(jobs)
    pending = list(range(len(jobs)))[::-1]
    workers: list[_Worker] = []
    stop_all = time.monotonic() + limits.total_seconds
    selector = selectors.DefaultSelector()
    try:
        for _ in range(limits.worker_count(len(jobs))):
            workers.append(_Worker(limits))
        while pending or any(w.job is not None for w in workers):
            for i, worker in enumerate(workers):
                if worker.job is None and pending:
                    if time.monotonic() > stop_all:
                        for job in pending:
                            results[job] = ({"error": f"not read: reading took over {limits.total_seconds:g} s in "
                                                      "all"}, b"")
                        pending.clear()
                        break
                    job = pending.pop()
                    try:
                        worker.send(job, *jobs[job], limits.seconds)
                    except (BrokenPipeError, OSError):
                        results[job] = ({"error": worker.why_dead(limits.memory_mb)}, b"")
                        workers[i] = _replace(worker, limits, selector)
                        continue
                    selector.register(worker.out, selectors.EVENT_READ, worker)
            busy = [w for w in workers if w.job is not None]
            if not busy:
                continue
            wait = max(0.0, min(w.deadline for w in busy) - time.monotonic())
            for key, _ in selector.select(wait):
                _collect(key.data, results, workers, limits, selector)
            now = time.monotonic()
            for i, worker in enumerate(workers):
                if worker.job is not None and now > worker.deadline:
                    results[worker.job] = ({"error": f"took more than {limits.seconds:g} s to read (stopped)"}, b"")
                    workers[i] = _replace(worker, limits, selector)
    finally:
        for worker in workers:
            worker.stop()
        selector.close()
    return [r if r is not None else ({"error": "not read"}, b"") for r in results]


def _collect(worker: _Worker, results: list[Any], workers: list[_Worker], limits: Limits,
             selector: selectors.BaseSelector) -> None:
    try:
        chunk = os.read(worker.out, 1 << 20)
    except BlockingIOError:
        return
    if not chunk:
        assert worker.job is not None
        results[worker.job] = ({"error": worker.why_dead(limits.memory_mb)}, b"")
        workers[workers.index(worker)] = _replace(worker, limits, selector)
        return
    worker.buffer += chunk
    done = worker.result()
    if done is not None:
        assert worker.job is not None
        results[worker.job] = done
        worker.job = None
        selector.unregister(worker.out)


def _replace(worker: _Worker, limits: Limits, selector: selectors.BaseSelector) -> _Worker:
    """A fresh worker for one that is gone or overran (it is killed first)."""
    try:
        selector.unregister(worker.out)
    except (KeyError, ValueError):
        pass
    worker.job = None
    worker.stop()
    return _Worker(limits)


#: A PDF over this many bytes is read in shares, one per worker, side by side.
PDF_SHARE_BYTES = 1 << 20


def read_all(files: list[tuple[str, bytes]], limits: Limits) -> list[dict[str, Any]]:
    """Each ``(format, bytes)`` read by its reader in a worker: the reader's dict, or ``{"error": why}``."""
    jobs: list[Job] = []
    owners: list[int] = []
    for i, (fmt, data) in enumerate(files):
        shares = min(limits.worker_count(len(files) * 4), -(-len(data) // PDF_SHARE_BYTES)) if fmt == "pdf" else 1
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
