"""The per-package task of ``pkgvet batch``, run in a worker process (local pool or Dask).

A task never raises: whatever happens to one package (unreadable, over a limit, over its time
budget, out of memory, a bug) becomes an error result, and the batch goes on. Nothing here runs
package code. Imports stay light: no SQLAlchemy, no Dask.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from pkgvet.batch.tasks import Task, make_key
from pkgvet.config import ScanConfig
from pkgvet.errors import PkgvetError
from pkgvet.models import ScanResult

if TYPE_CHECKING:
    from pkgvet.collect.index import IndexClient
    from pkgvet.known import KnownStore

MiB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class WorkerOptions:
    """Everything a worker needs besides the task (sent once per worker, or with each Dask
    task)."""

    config: ScanConfig = field(default_factory=ScanConfig)
    index_url: str | None = None  # for names: --index-url, else $PIP_INDEX_URL, else PyPI
    dist: str = "best"
    known: bool = True  # look packages up in the known-malicious store, when there is one
    known_store: str | None = None
    max_memory_mb: int = 0  # RLIMIT_AS of a local worker process; 0: no limit
    # Test-only hooks (from $PKGVET_TESTING_HANG / $PKGVET_TESTING_OOM, read by the parent):
    # a task whose job contains the text sleeps forever / allocates past the memory limit.
    testing_hang: str | None = None
    testing_oom: str | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    """One result of a task, with its store key and the input entry it came from."""

    key: str
    job: str
    result: ScanResult


@dataclass(frozen=True, slots=True)
class TaskOutput:
    outcomes: list[Outcome]
    recycle: bool = False  # the worker process should not be reused (it ran out of memory)


def testing_hooks() -> dict[str, str | None]:
    """The test-only hooks from the environment (never set outside tests)."""
    return {
        "testing_hang": os.environ.get("PKGVET_TESTING_HANG") or None,
        "testing_oom": os.environ.get("PKGVET_TESTING_OOM") or None,
    }


def set_memory_limit(max_memory_mb: int) -> None:
    """Cap this process's address space (RLIMIT_AS) at ``max_memory_mb``: an allocation past it
    raises MemoryError in the scan, which becomes an error result. Not available everywhere
    (e.g. Windows): then nothing is capped."""
    if max_memory_mb <= 0:
        return
    try:
        import resource
    except ImportError:  # pragma: no cover - not POSIX
        return
    soft = max_memory_mb * MiB
    _old_soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


class _State:
    """Per-process state: the index client and the known-malicious store, opened once."""

    client: IndexClient | None = None
    client_url: str | None = None
    known: KnownStore | None = None
    known_opened = False


def _known(options: WorkerOptions) -> KnownStore | None:
    if not options.known:
        return None
    if not _State.known_opened:
        from pkgvet.known import open_store_if_present

        _State.known_opened = True
        try:
            path = Path(options.known_store) if options.known_store else None
            _State.known = open_store_if_present(path)
        except PkgvetError:
            _State.known = None
    return _State.known


def _client(options: WorkerOptions) -> IndexClient:
    from pkgvet.collect.index import IndexClient

    if _State.client is None or _State.client_url != options.index_url:
        _State.client = IndexClient(options.index_url)
        _State.client_url = options.index_url
    return _State.client


def warm_up(options: WorkerOptions) -> None:
    """Load rules, popular names and model before the first task, so no task pays for them."""
    from pkgvet.pipeline import prepare

    with contextlib.suppress(PkgvetError, OSError, ValueError):
        prepare(options.config)  # a broken model: the scan reports it


def run_task(task: Task, options: WorkerOptions) -> TaskOutput:
    """Scan one task's package(s); never raises."""
    start = time.monotonic()
    try:
        _testing(task, options)
        outcomes = _run(task, options)
        oom = any((o.result.error or "").startswith("out of memory") for o in outcomes)
        return TaskOutput(outcomes, recycle=oom)  # after a MemoryError: a fresh process
    except MemoryError:
        limit = f" of {options.max_memory_mb} MB" if options.max_memory_mb else ""
        msg = f"out of memory: over the per-worker memory limit{limit}; not analysed"
        return TaskOutput([failed(task, msg, start)], recycle=True)
    except Exception as exc:  # a bug must cost one package, never the batch
        msg = f"internal error, please report: {type(exc).__name__}: {exc}"
        return TaskOutput([failed(task, msg, start)])


def _testing(task: Task, options: WorkerOptions) -> None:
    if options.testing_hang and options.testing_hang in task.job:
        time.sleep(3600)
    if options.testing_oom and options.testing_oom in task.job:
        hog = bytearray((options.max_memory_mb or 64) * 2 * MiB)
        del hog


def _run(task: Task, options: WorkerOptions) -> list[Outcome]:
    from pkgvet.known import scan_with_known

    config = options.config
    if task.kind == "invalid" or (task.path is None and task.kind != "name"):
        return [failed(task, task.error or "nothing to scan")]
    if task.kind == "name":
        return _run_name(task, options)
    assert task.path is not None
    result = scan_with_known(Path(task.path), config, _known(options))
    _memory_error(result, options)
    if task.kind == "manifest":
        result.target = task.label or task.job
        if result.sha256 is not None and task.sha256 and result.sha256 != task.sha256:
            from pkgvet.pipeline import error_result

            msg = (
                f"cached file {task.path} has sha256 {result.sha256}, the manifest pins "
                f"{task.sha256}: not analysed"
            )
            result = error_result(result.target, result.kind, msg)
            result.sha256 = None
    key = task.key or make_key(result.sha256, task.job)
    return [Outcome(key, task.job, result)]


def _run_name(task: Task, options: WorkerOptions) -> list[Outcome]:
    from pkgvet.known import scan_with_known
    from pkgvet.remote import Spec, fetch

    assert task.name is not None
    spec = Spec(task.name, task.version)
    try:
        fetched = fetch(spec, _client(options), options.dist)
    except PkgvetError as exc:
        return [failed(task, exc.diagnostics())]
    out = []
    for label, path in fetched:
        result = scan_with_known(path, options.config, _known(options))
        _memory_error(result, options)
        result.target = label
        out.append(Outcome(make_key(result.sha256, label), task.job, result))
    return out


def _memory_error(result: ScanResult, options: WorkerOptions) -> None:
    """The pipeline reports a MemoryError it caught as an internal error: it is the limit."""
    if result.error and result.error.startswith("internal error") and "MemoryError" in result.error:
        limit = f" of {options.max_memory_mb} MB" if options.max_memory_mb else ""
        result.error = f"out of memory: over the per-worker memory limit{limit}; not analysed"


def failed(task: Task, message: str, start: float | None = None) -> Outcome:
    """The error result of a task (also built by the parent for a timeout or a dead worker)."""
    from pkgvet.archive import kind_of
    from pkgvet.pipeline import error_result

    target = task.label or task.path or task.job
    if task.path is not None:
        kind = "directory" if os.path.isdir(task.path) else kind_of(task.path)
    elif task.sha256 is not None and target.endswith(")") and "(" in target:
        kind = kind_of(target[target.rfind("(") + 1 : -1])  # name==version (filename)
    else:
        kind = "remote"
    result = error_result(target, kind, message, start)
    if task.kind in ("manifest", "invalid") and task.sha256:
        result.sha256 = task.sha256
    return Outcome(task.key or make_key(None, task.job), task.job, result)
