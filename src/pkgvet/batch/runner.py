"""The batch loop: tasks from the sources, minus those already in the store, through an engine
(local pool or Dask), each output written to the store in its own small transaction as it
arrives. Nothing accumulates in memory but counters."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from typing import Protocol

from pkgvet.batch.tasks import Source, Task
from pkgvet.batch.worker import Outcome, TaskOutput
from pkgvet.store import VERDICTS, ResultStore

# tasks are checked against the store in chunks of this many (two queries per chunk)
CHECK_CHUNK = 64


class Engine(Protocol):
    restarts: int

    def map_unordered(self, tasks: Iterator[Task]) -> Iterator[tuple[Task, TaskOutput]]: ...


@dataclass(slots=True)
class BatchSummary:
    """What a run did (counts of this run only; the store's totals are ``store.counts()``)."""

    targets: int = 0  # entries read from the sources
    skipped: int = 0  # entries already in the store (a previous run scanned them)
    scanned: int = 0  # results written by this run
    duplicates: int = 0  # results not written: their key was already stored
    verdicts: Counter[str] = field(default_factory=Counter)  # of the results written
    timeouts: int = 0  # of the error results: packages over the hard timeout
    restarts: int = 0  # worker processes replaced (timeouts, deaths, memory errors)
    elapsed_s: float = 0.0
    interrupted: bool = False

    @property
    def rate(self) -> float:
        return self.scanned / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def rows(self) -> list[tuple[str, str]]:
        """The summary as (label, value) rows, always the same rows in the same order."""
        rows = [
            ("entries", str(self.targets)),
            ("skipped (already in the store)", str(self.skipped)),
            ("scanned", str(self.scanned)),
        ]
        rows += [(f"  {v}", str(self.verdicts.get(v, 0))) for v in VERDICTS]
        rows += [
            ("  of the errors: hard timeouts", str(self.timeouts)),
            ("duplicates (same key twice)", str(self.duplicates)),
            ("workers replaced", str(self.restarts)),
            ("elapsed", f"{self.elapsed_s:.1f}s"),
            ("packages/s", f"{self.rate:.2f}"),
        ]
        return rows


def all_tasks(sources: Iterable[Source]) -> Iterator[Task]:
    for source in sources:
        yield from source.tasks()


def pending(
    tasks: Iterator[Task],
    store: ResultStore,
    *,
    retry_errors: bool = False,
    on_skip: Callable[[Task], None] | None = None,
) -> Iterator[Task]:
    """``tasks`` without those whose key (or, for names, whose job) is already stored; with
    ``retry_errors``, stored error results do not count. Checked in chunks, lazily."""
    while chunk := list(islice(tasks, CHECK_CHUNK)):
        keyed = [t.key for t in chunk if t.key is not None]
        jobs = [t.job for t in chunk if t.key is None]
        done_keys = store.done(keyed, by="key", errors=not retry_errors) if keyed else set()
        done_jobs = store.done(jobs, by="job", errors=not retry_errors) if jobs else set()
        for t in chunk:
            if (t.key in done_keys) if t.key is not None else (t.job in done_jobs):
                if on_skip is not None:
                    on_skip(t)
                continue
            yield t


def run_batch(
    sources: Iterable[Source],
    store: ResultStore,
    engine: Engine,
    *,
    retry_errors: bool = False,
    on_skip: Callable[[Task], None] | None = None,
    on_outcome: Callable[[Outcome, bool], None] | None = None,
) -> BatchSummary:
    """Scan every entry of ``sources`` not yet in ``store`` with ``engine``, writing results as
    they arrive. ``on_skip`` is called for each entry skipped, ``on_outcome`` for each result
    (with whether it was written). A KeyboardInterrupt stops the run: what was written stays,
    and the summary says ``interrupted``."""
    summary = BatchSummary()
    start = time.monotonic()

    def counted(tasks: Iterator[Task]) -> Iterator[Task]:
        for t in tasks:
            summary.targets += 1
            yield t

    def skipped(task: Task) -> None:
        summary.skipped += 1
        if on_skip is not None:
            on_skip(task)

    todo = pending(counted(all_tasks(sources)), store, retry_errors=retry_errors, on_skip=skipped)
    outputs = engine.map_unordered(todo)
    try:
        for _task, out in outputs:
            items = [(o.result, o.key, o.job) for o in out.outcomes]
            added = store.add_many(items, replace_errors=retry_errors)
            for o, a in zip(out.outcomes, added, strict=True):
                if a.inserted:
                    summary.scanned += 1
                    summary.verdicts[o.result.verdict.value] += 1
                    if o.result.error and o.result.error.startswith("hard timeout"):
                        summary.timeouts += 1
                else:
                    summary.duplicates += 1
                if on_outcome is not None:
                    on_outcome(o, a.inserted)
    except KeyboardInterrupt:
        summary.interrupted = True
    finally:
        close = getattr(outputs, "close", None)
        if close is not None:
            close()  # stops the workers now, not when the generator is collected
        summary.restarts = engine.restarts
        summary.elapsed_s = time.monotonic() - start
    return summary
