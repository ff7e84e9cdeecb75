"""The Dask engine of ``pkgvet batch``: the same per-package task
(:func:`pkgvet.batch.worker.run_task`) submitted to a Dask distributed cluster, with the same
bounded window, results written to the store by the client (the process running ``pkgvet
batch``). Needs the ``dask`` extra (``pip install 'pkgvet[dask]'``) on the client and on every
worker, with the same pkgvet version.

Workers read package files by the path the client enumerated: directory and manifest sources
must be on a filesystem every worker sees at the same path. Names are fetched by the workers
(into their ``$PKGVET_CACHE_DIR``).

Limits: the per-package time budget applies inside the task. The hard timeout is measured from
when the scheduler reports the task processing on a worker; when it expires the package gets an
error result, its future is cancelled and that worker is restarted through its nanny (a Python
thread cannot be stopped otherwise). Memory is bounded by the workers' own ``--memory-limit``
(the nanny restarts a worker past it; a package that keeps killing workers becomes an error
result once Dask gives up on it); ``--max-memory`` sets it only for a cluster pkgvet starts
itself.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from pkgvet.batch.tasks import Task
from pkgvet.batch.worker import TaskOutput, WorkerOptions, failed, run_task
from pkgvet.errors import PkgvetError

if TYPE_CHECKING:
    from distributed import Client, Future

_POLL_S = 1.0


class DaskError(PkgvetError):
    """The Dask cluster cannot be reached or used."""


class DaskEngine:
    """Runs tasks on a Dask cluster at ``address``; without one, on a ``LocalCluster`` of
    ``jobs`` single-threaded worker processes on loopback."""

    def __init__(
        self,
        options: WorkerOptions,
        *,
        address: str | None,
        jobs: int,
        timeout: float,
        window: int | None = None,
        max_memory_mb: int = 0,
    ) -> None:
        self.options = options
        self.address = address
        self.jobs = max(1, jobs)
        self.timeout = timeout
        self.window = window
        self.max_memory_mb = max_memory_mb
        self.restarts = 0
        self.nthreads = 0

    def _connect(self) -> tuple[Client, Any]:
        try:
            from distributed import Client, LocalCluster
        except ImportError as exc:
            raise DaskError(
                "--engine dask needs Dask distributed: pip install 'pkgvet[dask]'"
            ) from exc
        logging.getLogger("distributed").setLevel(logging.WARNING)
        try:
            if self.address is not None:
                return Client(self.address, timeout=30), None
            cluster = LocalCluster(
                n_workers=self.jobs,
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",
                dashboard_address=None,
                memory_limit=f"{self.max_memory_mb}MiB" if self.max_memory_mb > 0 else None,
            )
            return Client(cluster), cluster
        except (OSError, TimeoutError, ValueError) as exc:
            where = self.address or "a local cluster"
            raise DaskError(f"cannot connect to the Dask scheduler at {where}: {exc}") from exc

    def map_unordered(self, tasks: Iterator[Task]) -> Iterator[tuple[Task, TaskOutput]]:
        """Scan ``tasks`` on the cluster, yielding each with its output as it completes."""
        from distributed import wait

        client, cluster = self._connect()
        run = uuid.uuid4().hex[:12]
        inflight: dict[str, tuple[Task, Future]] = {}
        running_since: dict[str, float] = {}
        try:
            self.nthreads = sum(client.nthreads().values()) or self.jobs
            window = self.window or 4 * self.nthreads
            seq = 0
            exhausted = False
            last_poll = 0.0
            while True:
                while not exhausted and len(inflight) < window:
                    task = next(tasks, None)
                    if task is None:
                        exhausted = True
                        break
                    key = f"pkgvet-scan-{run}-{seq}"
                    seq += 1
                    fut = client.submit(run_task, task, self.options, key=key, pure=False)
                    inflight[key] = (task, fut)
                if not inflight:
                    return
                try:
                    futures = [f for _t, f in inflight.values()]
                    wait(futures, timeout=_POLL_S, return_when="FIRST_COMPLETED")
                except Exception:  # a timeout, or futures cancelled by the cluster: seen below
                    pass
                for key, (task, fut) in list(inflight.items()):
                    if fut.done():
                        del inflight[key]
                        running_since.pop(key, None)
                        yield task, _output(task, fut)
                now = time.monotonic()
                if inflight and now - last_poll >= _POLL_S:
                    last_poll = now
                    yield from self._expire(client, inflight, running_since, now)
        finally:
            for _task, fut in inflight.values():
                fut.cancel()
            client.close()
            if cluster is not None:
                cluster.close()

    def _expire(
        self,
        client: Client,
        inflight: dict[str, tuple[Task, Future]],
        running_since: dict[str, float],
        now: float,
    ) -> Iterator[tuple[Task, TaskOutput]]:
        """Error results for tasks processing longer than the timeout; their workers are
        restarted."""
        where: dict[str, str] = {}
        for addr, keys in client.processing().items():
            for k in keys:
                where[str(k)] = str(addr)
        for key in list(inflight):
            if key in where:
                running_since.setdefault(key, now)
            started = running_since.get(key)
            if started is None or now - started < self.timeout:
                continue
            task, fut = inflight.pop(key)
            running_since.pop(key, None)
            fut.cancel()
            msg = f"hard timeout: no result after {self.timeout:g}s"
            addr = where.get(key)
            if addr is not None:
                try:
                    client.restart_workers([addr], raise_for_error=False)
                    self.restarts += 1
                    msg += ", its Dask worker was restarted"
                except Exception:  # best effort: the error result is what matters
                    msg += ", its Dask worker could not be restarted"
            yield task, TaskOutput([failed(task, msg + "; not analysed")])


def _output(task: Task, fut: Future) -> TaskOutput:
    try:
        if fut.status == "finished":
            out = fut.result()
            if isinstance(out, TaskOutput):
                return out
            return TaskOutput([failed(task, f"the Dask task returned {type(out).__name__}")])
        if fut.cancelled():
            return TaskOutput([failed(task, "the Dask task was cancelled; not analysed")])
        exc = fut.exception()
        what = f"{type(exc).__name__}: {exc}" if exc is not None else fut.status
        return TaskOutput([failed(task, f"the Dask task failed ({what}); not analysed")])
    except Exception as exc:  # a lost worker, a deserialisation error: one package, not the run
        return TaskOutput(
            [failed(task, f"the Dask task failed ({type(exc).__name__}); not analysed")]
        )
    finally:
        fut.release()
