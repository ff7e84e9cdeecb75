"""The service's bounded worker pool: queued scans run in ``workers`` processes of
:class:`pkgvet.batch.pool.LocalPool` (spawned, ``RLIMIT_AS`` memory limit, per-package time
budget, hard timeout after which the worker is killed, recycling after N packages), so a slow or
hostile package costs one worker for at most the hard timeout and never stalls the others.

``LocalPool.map_unordered`` consumes a finite iterator; a service's queue never ends and must
not block the collection of results while it waits for work, so :class:`ScanQueue` drives the
pool's worker management (``_start``, ``_assign``, ``_collect``, ``_stop``) from its own
dispatcher thread, which waits on the busy workers' pipes and on a wake-up pipe written by
:meth:`ScanQueue.submit`.

The queue itself lives in the database: a scan is ``queued`` when its row is written, so
:meth:`ScanQueue.start` puts every ``queued`` or ``running`` scan found at startup back in line
(a restart loses nothing). Results are written by the dispatcher thread as they arrive.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections import deque
from dataclasses import replace
from multiprocessing.connection import Connection, wait
from typing import TYPE_CHECKING, Any

from pkgvet import __version__
from pkgvet.batch.pool import LocalPool
from pkgvet.batch.tasks import Task
from pkgvet.batch.worker import TaskOutput, WorkerOptions, testing_hooks
from pkgvet.config import Limits, ScanConfig
from pkgvet.remote import parse_spec

if TYPE_CHECKING:
    from pkgvet.models import ScanResult
    from pkgvet.service.db import Job, ServiceStore
    from pkgvet.service.settings import ServiceSettings

log = logging.getLogger("pkgvet.service")


def worker_options(settings: ServiceSettings) -> WorkerOptions:
    """The options every scan worker gets: the per-package time budget, the memory limit, the
    index to fetch names from, and code fingerprints kept for similar-release search."""
    limits = replace(
        Limits(),
        time_budget_s=settings.time_budget_s,
        max_archive_bytes=max(Limits().max_archive_bytes, settings.max_upload_bytes),
    )
    config = ScanConfig(limits=limits, use_model=settings.use_model, keep_features=True)
    hooks = testing_hooks()
    return WorkerOptions(
        config=config,
        index_url=settings.index_url,
        dist="best",
        max_memory_mb=settings.max_memory_mb,
        testing_hang=hooks["testing_hang"],
        testing_oom=hooks["testing_oom"],
    )


def document(result: ScanResult) -> dict[str, Any]:
    """The ``pkgvet scan --format json`` document of one result."""
    from pkgvet.report.json_format import SCHEMA, SCHEMA_VERSION, result_to_dict

    return {
        "$schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "tool": {"name": "pkgvet", "version": __version__},
        "results": [result_to_dict(result)],
    }


def task_of(job: Job) -> Task:
    """The pool task of a queued scan (its ``job`` text names the scan, for the logs)."""
    if job.source in ("upload", "watch") and job.blob_path is not None:
        label = job.filename or os.path.basename(job.blob_path)
        return Task("path", job=f"scan {job.scan_id}: {label}", path=job.blob_path, label=label)
    if job.requested:
        try:
            spec = parse_spec(job.requested)
        except Exception as exc:  # a request the API accepted: should not happen
            return Task("invalid", job=f"scan {job.scan_id}", error=str(exc))
        if spec is not None:
            return Task(
                "name",
                job=f"scan {job.scan_id}: {job.requested}",
                name=spec.name,
                version=spec.version,
            )
    return Task(
        "invalid",
        job=f"scan {job.scan_id}",
        label=job.filename,
        error="the uploaded file is no longer available (not kept); submit it again",
    )


class ScanQueue:
    """Queued scans, run by a bounded pool; see the module documentation."""

    def __init__(self, store: ServiceStore, settings: ServiceSettings) -> None:
        self.store = store
        self.settings = settings
        self.pool = LocalPool(
            settings.workers,
            worker_options(settings),
            timeout=settings.hard_timeout,
            max_tasks_per_worker=settings.max_tasks_per_worker,
        )
        self._queue: deque[int] = deque()
        self._queued: set[int] = set()
        self._lock = threading.Lock()
        self._rfd, self._wfd = os.pipe()
        os.set_blocking(self._wfd, False)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._running: dict[int, int] = {}  # id(worker) -> scan id
        self.completed = 0

    # -- control ----------------------------------------------------------------------------

    def start(self) -> int:
        """Queue every unfinished scan of the database and start dispatching; how many were
        queued again."""
        pending = self.store.pending_jobs()
        for job in pending:
            self.submit(job.scan_id)
        self._thread = threading.Thread(target=self._run, name="pkgvet-dispatch", daemon=True)
        self._thread.start()
        return len(pending)

    def stop(self) -> None:
        """Stop dispatching and stop the workers (a scan in progress stays ``running`` in the
        database and is queued again at the next start)."""
        self._stop.set()
        self._wake()
        if self._thread is not None:
            self._thread.join(30)
        for w in list(self.pool.workers):
            self.pool._stop(w, kill=True)
        for fd in (self._rfd, self._wfd):
            with contextlib.suppress(OSError):
                os.close(fd)

    def submit(self, scan_id: int) -> bool:
        """Put a queued scan in line (once); False when it already is."""
        with self._lock:
            if scan_id in self._queued:
                return False
            self._queued.add(scan_id)
            self._queue.append(scan_id)
        self._wake()
        return True

    @property
    def depth(self) -> int:
        """Scans waiting for a worker."""
        with self._lock:
            return len(self._queue)

    @property
    def busy(self) -> int:
        """Scans being scanned now."""
        return sum(1 for w in self.pool.workers if w.task is not None)

    def _wake(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self._wfd, b"x")

    # -- the dispatcher thread ----------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._step()
            except Exception:  # keep dispatching: one bad scan must not stop the service
                log.exception("dispatcher error")
                time.sleep(0.5)

    def _next_job(self) -> tuple[int, Job | None] | None:
        with self._lock:
            if not self._queue:
                return None
            scan_id = self._queue.popleft()
            self._queued.discard(scan_id)
        try:
            return scan_id, self.store.job(scan_id)
        except Exception:  # the database is unreachable: keep the scan in line, retry
            with self._lock:
                if scan_id not in self._queued:
                    self._queued.add(scan_id)
                    self._queue.appendleft(scan_id)
            raise

    def _step(self) -> None:
        pool = self.pool
        while len([w for w in pool.workers if w.task is not None]) < pool.jobs:
            nxt = self._next_job()
            if nxt is None:
                break
            scan_id, job = nxt
            if job is None:
                continue
            worker = next((w for w in pool.workers if w.task is None), None)
            if worker is None:
                worker = pool._start()
                pool.workers.append(worker)
            self.store.mark_running(scan_id)
            task = task_of(job)
            worker = pool._assign(worker, task)
            self._running[id(worker)] = scan_id
        busy = [w for w in pool.workers if w.task is not None]
        handles: list[Connection | int] = [self._rfd]
        handles += [w.conn for w in busy]
        handles += [w.proc.sentinel for w in busy]
        timeout = None
        if busy:
            first = min(w.started for w in busy) + pool.timeout
            timeout = max(0.0, first - time.monotonic())
        ready = wait(handles, timeout=timeout)
        if self._rfd in ready:
            with contextlib.suppress(BlockingIOError, OSError):
                os.read(self._rfd, 4096)
        for w in busy:
            done = pool._collect(w, ready)
            if done is not None:
                task, out = done
                scan_id = self._running.pop(id(w))
                self._record(scan_id, task, out)

    def _record(self, scan_id: int, task: Task, out: TaskOutput) -> None:
        """Write a finished task's result (the first, when a name gave several files)."""
        try:
            if not out.outcomes:
                self.store.fail_scan(scan_id, "no result (internal error, please report)")
                return
            result = out.outcomes[0].result
            filename = task.label
            if task.kind == "name":
                filename = _filename_of_label(result.target)
            elif task.kind == "path" and task.label:
                result.target = task.label  # the upload's name, not the blob's path
            fingerprint = result.fingerprint
            result.features = None
            self.store.finish_scan(
                scan_id, document(result), filename=filename, fingerprint=fingerprint
            )
            self.completed += 1
        except Exception as exc:
            log.exception("cannot record scan %s", scan_id)
            with contextlib.suppress(Exception):
                self.store.fail_scan(scan_id, f"cannot record the result: {exc}")


def _filename_of_label(label: str) -> str | None:
    """``name==version (filename)`` → ``filename``."""
    if label.endswith(")") and "(" in label:
        return label[label.rfind("(") + 1 : -1]
    return None


__all__ = ["ScanQueue", "document", "task_of", "worker_options"]
