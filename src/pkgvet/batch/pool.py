"""The local engine of ``pkgvet batch``: a pool of worker processes, one task at a time each.

Why not :class:`concurrent.futures.ProcessPoolExecutor`: it cannot tell which process runs
which task, so a hung package could only be stopped by killing the whole pool (and every other
package in flight with it). Here the parent owns each worker's pipe and process:

- a task that gives no result within ``timeout`` seconds (wall clock, from when it was handed to
  the worker) gets an error result, and only its worker is killed and replaced;
- a worker that dies (killed by the kernel's OOM killer, a crash) costs its one package an
  error result, and is replaced;
- each worker caps its address space (``RLIMIT_AS``, ``max_memory_mb``): an allocation past it
  is a MemoryError, an error result, and the worker is replaced (its heap may be fragmented);
- a worker is retired and replaced after ``max_tasks_per_worker`` packages (bounded leaks);
- a worker whose parent is gone (``kill -9``) exits within a second instead of scanning on.

Workers are started with the ``spawn`` method: no state (database connections, the progress
bar's thread) is inherited from the parent. At most ``jobs`` tasks are in flight, and tasks are
drawn from the (lazy) task iterator only when a worker is free.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import pickle
import signal
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess

from pkgvet.batch.tasks import Task
from pkgvet.batch.worker import (
    TaskOutput,
    WorkerOptions,
    failed,
    run_task,
    set_memory_limit,
    warm_up,
)


def _worker_main(conn: Connection, options: WorkerOptions) -> None:
    """A worker process: tasks in, outputs out, until told to stop (None) or the pipe closes
    (the parent is gone)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles ^C and stops workers
    _exit_with_parent()
    set_memory_limit(options.max_memory_mb)
    warm_up(options)
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):
            return
        if task is None:
            return
        out = run_task(task, options)
        try:
            conn.send(out)
        except (OSError, ValueError, pickle.PicklingError, MemoryError):
            return
        if out.recycle:
            return


def _exit_with_parent() -> None:
    """A worker whose parent is gone (killed with SIGKILL: no cleanup ran) exits within a
    second, even in the middle of a package, instead of scanning on as an orphan."""
    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(1.0)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, name="pkgvet-parent-watch", daemon=True).start()


@dataclass(slots=True)
class _Worker:
    proc: BaseProcess
    conn: Connection
    task: Task | None = None
    started: float = 0.0
    done: int = 0


class LocalPool:
    """Runs tasks in ``jobs`` worker processes; see the module documentation."""

    def __init__(
        self,
        jobs: int,
        options: WorkerOptions,
        *,
        timeout: float,
        max_tasks_per_worker: int = 500,
    ) -> None:
        self.jobs = max(1, jobs)
        self.options = options
        self.timeout = timeout
        self.max_tasks = max(1, max_tasks_per_worker)
        self.ctx = multiprocessing.get_context("spawn")
        self.workers: list[_Worker] = []
        self.restarts = 0  # workers replaced after a timeout, a death or a memory error

    def _start(self) -> _Worker:
        parent, child = self.ctx.Pipe(duplex=True)
        proc = self.ctx.Process(
            target=_worker_main, args=(child, self.options), name="pkgvet-batch", daemon=True
        )
        proc.start()
        child.close()
        return _Worker(proc, parent)

    def _stop(self, w: _Worker, *, kill: bool) -> None:
        if kill:
            w.proc.kill()
        else:
            with contextlib.suppress(OSError, ValueError):
                w.conn.send(None)
        w.proc.join(5)
        if w.proc.is_alive():
            w.proc.kill()
            w.proc.join(5)
        w.conn.close()
        if w in self.workers:
            self.workers.remove(w)

    def _assign(self, w: _Worker, task: Task) -> _Worker:
        """Hand ``task`` to ``w`` (or to a fresh worker when ``w``'s pipe is broken)."""
        for _ in range(2):
            try:
                w.conn.send(task)
            except (OSError, ValueError):
                self._stop(w, kill=True)
                self.restarts += 1
                w = self._start()
                self.workers.append(w)
                continue
            w.task, w.started = task, time.monotonic()
            return w
        raise OSError("cannot start a worker process")

    def map_unordered(self, tasks: Iterator[Task]) -> Iterator[tuple[Task, TaskOutput]]:
        """Scan ``tasks``, yielding each with its output as soon as it is done."""
        exhausted = False
        try:
            while True:
                while not exhausted:  # a task for every idle worker (started when needed)
                    idle = next((w for w in self.workers if w.task is None), None)
                    if idle is None and len(self.workers) >= self.jobs:
                        break
                    task = next(tasks, None)
                    if task is None:
                        exhausted = True
                        break
                    if idle is None:
                        idle = self._start()
                        self.workers.append(idle)
                    self._assign(idle, task)
                busy = [w for w in self.workers if w.task is not None]
                if not busy:
                    if exhausted:
                        return
                    continue
                first_deadline = min(w.started for w in busy) + self.timeout
                handles: list[Connection | int] = [w.conn for w in busy]
                handles += [w.proc.sentinel for w in busy]
                ready = wait(handles, timeout=max(0.0, first_deadline - time.monotonic()))
                for w in busy:
                    done = self._collect(w, ready)
                    if done is not None:
                        yield done
        finally:
            for w in list(self.workers):
                self._stop(w, kill=w.task is not None)

    def _collect(self, w: _Worker, ready: Sequence[object]) -> tuple[Task, TaskOutput] | None:
        """``w``'s task and output when it finished, died or timed out; else None."""
        task = w.task
        assert task is not None
        if w.conn in ready or w.proc.sentinel in ready:
            try:
                out = w.conn.recv() if w.conn.poll() else None
            except (EOFError, OSError, pickle.UnpicklingError, MemoryError, AttributeError):
                out = None
            if isinstance(out, TaskOutput):
                w.task = None
                w.done += 1
                if out.recycle or w.done >= self.max_tasks or not w.proc.is_alive():
                    self.restarts += out.recycle
                    self._stop(w, kill=False)
                return task, out
            w.proc.join(1)
            self._stop(w, kill=True)
            self.restarts += 1
            return task, TaskOutput([failed(task, _death(w.proc.exitcode))])
        if time.monotonic() - w.started >= self.timeout:
            self._stop(w, kill=True)
            self.restarts += 1
            msg = f"hard timeout: no result after {self.timeout:g}s, the worker was killed"
            return task, TaskOutput([failed(task, msg + "; not analysed")])
        return None


def _death(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            how = f"killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            how = f"killed by signal {-exitcode}"
        if exitcode == -signal.SIGKILL:
            how += ", perhaps by the out-of-memory killer"
    else:
        how = f"exit code {exitcode}"
    return f"the worker process died ({how}) while scanning; not analysed"
