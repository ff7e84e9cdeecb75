"""``pkgvet batch``: scan dataset trees, collector manifests and lists of names at index scale,
in a pool of worker processes (or on a Dask cluster), into a resumable results store.

SQLAlchemy (the ``store`` extra) and Dask (the ``dask`` extra) are imported only when this
command runs, never by ``pkgvet scan``. See docs/batch.md.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import click

from pkgvet.commands.model_options import check_model, model_file_options
from pkgvet.config import Limits, ScanConfig
from pkgvet.errors import PkgvetError
from pkgvet.models import Severity

if TYPE_CHECKING:
    from pkgvet.batch.runner import BatchSummary, Engine
    from pkgvet.batch.tasks import Source
    from pkgvet.batch.worker import WorkerOptions
    from pkgvet.store import ResultStore

_SEVERITIES = [s.value for s in Severity]


class BatchFailure(click.ClickException):
    """A failure before or outside the scans (bad usage, no store): exit code 2."""

    exit_code = 2


def _split(values: tuple[str, ...]) -> frozenset[str]:
    return frozenset(v.strip().upper() for item in values for v in item.split(",") if v.strip())


@click.command("batch")
@click.argument("sources", nargs=-1, type=click.Path(exists=True, path_type=Path))
@click.option(
    "--names",
    "names_files",
    multiple=True,
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="A text file of NAME or NAME==VERSION lines, fetched from the index as 'pkgvet scan "
    "NAME' does (repeatable).",
)
@click.option(
    "--db",
    default="results.db",
    show_default=True,
    metavar="PATH|URL",
    help="The results store: a SQLite file, or an SQLAlchemy URL such as "
    "postgresql+psycopg://user@host/db.",
)
@click.option(
    "-j",
    "--jobs",
    type=click.IntRange(min=1),
    default=None,
    help="Worker processes (default: the CPU count; with --engine dask and --address, the "
    "cluster's threads).",
)
@click.option(
    "--engine",
    type=click.Choice(["process", "dask"]),
    default="process",
    show_default=True,
    help="process: a local pool of worker processes; dask: a Dask distributed cluster "
    "(--address, else a local cluster of --jobs workers).",
)
@click.option(
    "--address",
    metavar="tcp://HOST:PORT",
    help="The Dask scheduler (with --engine dask). Workers read package files by path: "
    "SOURCES must be on a filesystem they share.",
)
@click.option(
    "--time-budget",
    default=120.0,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="Seconds of analysis allowed per package before it is an error result.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Hard wall-clock limit per package, enforced by the parent: past it the worker is "
    "killed and replaced, and the package is an error result (default: twice the time "
    "budget, at least the budget plus 60s).",
)
@click.option(
    "--max-memory",
    type=click.IntRange(min=0),
    default=1024,
    show_default=True,
    metavar="MB",
    help="Address-space limit of each worker process (RLIMIT_AS); a package that needs more "
    "is an error result. 0: no limit.",
)
@click.option(
    "--max-tasks-per-worker",
    type=click.IntRange(min=1),
    default=500,
    show_default=True,
    help="Replace a worker process after this many packages.",
)
@click.option(
    "--retry-errors",
    is_flag=True,
    help="Scan again the entries whose stored result is an error (the error row is replaced).",
)
@click.option(
    "--model/--no-model",
    "use_model",
    default=True,
    show_default=True,
    help="Score with the trained detector; --no-model gives the rules-only verdict.",
)
@model_file_options
@click.option(
    "--select",
    multiple=True,
    metavar="RULES",
    help="Only these rule ids or prefixes (comma-separated, repeatable).",
)
@click.option(
    "--ignore",
    multiple=True,
    metavar="RULES",
    help="Skip these rule ids or prefixes (comma-separated, repeatable).",
)
@click.option(
    "--min-severity",
    default="low",
    show_default=True,
    type=click.Choice(_SEVERITIES),
    help="Store findings of this severity or worse.",
)
@click.option(
    "--password",
    default="infected",
    show_default=True,
    help="Password for encrypted zips (the malware-dataset convention).",
)
@click.option(
    "--cache",
    "cache",
    type=click.Path(file_okay=False, path_type=Path),
    help="The collector's cache, for manifest sources (default: $PKGVET_CACHE_DIR, else "
    "~/.cache/pkgvet).",
)
@click.option(
    "--index-url",
    metavar="URL",
    help="Index for --names (default: $PIP_INDEX_URL, else PyPI); only its JSON API is used.",
)
@click.option(
    "--dist",
    type=click.Choice(["best", "sdist", "wheel", "all"]),
    default="best",
    show_default=True,
    help="Which files of a named release to scan.",
)
@click.option(
    "--known/--no-known",
    "use_known",
    default=True,
    show_default=True,
    help="Look packages up in the known-malicious store (pkgvet known import), when present.",
)
@click.option(
    "--known-store",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The known-malicious store (default: $PKGVET_CACHE_DIR/known.sqlite).",
)
@click.option(
    "--export",
    type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
    help="After the run (or alone, without SOURCES), write every stored result as JSON lines "
    "to this file ('-': standard output), in key order.",
)
@click.option(
    "--progress/--no-progress",
    default=None,
    help="Progress bar on standard error (default: when it is a terminal).",
)
def batch_command(
    sources: tuple[Path, ...],
    names_files: tuple[Path, ...],
    db: str,
    jobs: int | None,
    engine: str,
    address: str | None,
    time_budget: float,
    timeout: float | None,
    max_memory: int,
    max_tasks_per_worker: int,
    retry_errors: bool,
    use_model: bool,
    model_file: Path | None,
    model_sha256: str | None,
    select: tuple[str, ...],
    ignore: tuple[str, ...],
    min_severity: str,
    password: str,
    cache: Path | None,
    index_url: str | None,
    dist: str,
    use_known: bool,
    known_store: Path | None,
    export: Path | None,
    progress: bool | None,
) -> None:
    """Scan many packages into a results store, resumably.

    SOURCES are package files, package directories, trees of packages (such as the
    name/version/file layout of the pypi-malregistry dataset) or manifests written by 'pkgvet
    collect' (their files are read from the collector's cache). Results go to --db as they
    arrive; an entry whose result is already stored is skipped, so a killed run restarts where
    it stopped. Exit 0 when the run completes (whatever the verdicts), 2 on a usage or store
    error, 130 when interrupted. Results are keyed by package, not by model: score a candidate
    model (--model-file) into a store of its own.
    """
    if not sources and not names_files and export is None:
        raise BatchFailure("give SOURCES, --names FILE, or --export FILE")
    if address is not None and engine != "dask":
        raise BatchFailure("--address needs --engine dask")
    store = _open_store(db)
    with ExitStack() as stack:
        stack.callback(store.close)
        summary = None
        if sources or names_files:
            src = _sources(sources, names_files, cache)
            config = check_model(
                ScanConfig(
                    limits=Limits(time_budget_s=time_budget),
                    select=_split(select),
                    ignore=_split(ignore),
                    password=password.encode(),
                    min_severity=Severity(min_severity),
                    use_model=use_model,
                    model_path=str(model_file) if model_file else None,
                    model_sha256=model_sha256,
                )
            )
            from pkgvet.batch.worker import WorkerOptions, testing_hooks

            options = WorkerOptions(
                config=config,
                index_url=index_url,
                dist=dist,
                known=use_known,
                known_store=str(known_store) if known_store else None,
                max_memory_mb=max_memory,
                **testing_hooks(),
            )
            hard = timeout if timeout is not None else max(2 * time_budget, time_budget + 60)
            runner = _engine(engine, options, address, jobs, hard, max_tasks_per_worker)
            show = progress if progress is not None else sys.stderr.isatty()
            summary = _run(src, store, runner, retry_errors, show)
        to_stdout = export is not None and str(export) == "-"
        if summary is not None:
            _print_summary(summary, store, sys.stderr if to_stdout else sys.stdout)
        if export is not None:
            _export(store, export)
        if summary is not None and summary.interrupted:
            sys.exit(130)


def _open_store(db: str) -> ResultStore:
    try:
        import sqlalchemy  # noqa: F401
    except ImportError as exc:
        raise BatchFailure(
            "pkgvet batch needs SQLAlchemy for its results store: pip install 'pkgvet[store]'"
        ) from exc
    from pkgvet.store import ResultStore, StoreError

    try:
        return ResultStore(db)
    except StoreError as exc:
        raise BatchFailure(exc.diagnostics()) from exc


def _sources(
    sources: tuple[Path, ...], names_files: tuple[Path, ...], cache: Path | None
) -> list[Source]:
    from pkgvet.batch.tasks import ManifestSource, NamesSource, TreeSource, is_manifest

    out: list[Source] = []
    for s in sources:
        if s.is_file() and is_manifest(s):
            out.append(ManifestSource(s, cache))
        else:
            out.append(TreeSource(s))
    out.extend(NamesSource(f) for f in names_files)
    return out


def _engine(
    name: str,
    options: WorkerOptions,
    address: str | None,
    jobs: int | None,
    timeout: float,
    max_tasks: int,
) -> Engine:
    if name == "dask":
        try:
            import distributed  # noqa: F401
        except ImportError as exc:
            raise BatchFailure(
                "--engine dask needs Dask distributed: pip install 'pkgvet[dask]'"
            ) from exc
        from pkgvet.batch.dask_engine import DaskEngine

        return DaskEngine(
            options,
            address=address,
            jobs=jobs or os.cpu_count() or 1,
            timeout=timeout,
            window=4 * jobs if jobs and address else None,
            max_memory_mb=options.max_memory_mb,
        )
    from pkgvet.batch.pool import LocalPool

    return LocalPool(
        jobs or os.cpu_count() or 1, options, timeout=timeout, max_tasks_per_worker=max_tasks
    )


@contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """SIGTERM stops the run like ^C: workers are stopped, what was written stays."""

    def handler(_signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    try:
        old = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread (an embedding application)
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def _run(
    sources: list[Source], store: ResultStore, engine: Engine, retry_errors: bool, show: bool
) -> BatchSummary:
    from pkgvet.batch.runner import run_batch

    try:
        total = sum(s.count() for s in sources)  # names and paths only: no package is read
    except PkgvetError as exc:
        raise BatchFailure(exc.diagnostics()) from exc
    try:
        with _sigterm_interrupts():
            if not show:
                return run_batch(sources, store, engine, retry_errors=retry_errors)
            return _run_with_progress(sources, store, engine, retry_errors, total)
    except PkgvetError as exc:  # a source that went bad mid-run (results so far are stored)
        raise BatchFailure(exc.diagnostics()) from exc


def _run_with_progress(
    sources: list[Source], store: ResultStore, engine: Engine, retry_errors: bool, total: int
) -> BatchSummary:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    from pkgvet.batch.runner import run_batch
    from pkgvet.batch.tasks import Task
    from pkgvet.batch.worker import Outcome

    class RateColumn(ProgressColumn):
        def render(self, task: Any) -> Text:
            speed = task.finished_speed or task.speed
            return Text(f"{speed or 0:.1f} pkg/s")

    columns = (
        TextColumn("batch"),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        TextColumn(
            "{task.fields[skipped]} skipped · {task.fields[flagged]} flagged · "
            "{task.fields[errors]} errors"
        ),
    )
    counts: dict[str, Any] = {"skipped": 0, "flagged": 0, "errors": 0}
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task_id = bar.add_task("batch", total=total, **counts)

        def on_skip(_task: Task) -> None:
            counts["skipped"] += 1
            bar.update(task_id, total=max(0, total - counts["skipped"]), **counts)

        def on_outcome(o: Outcome, _inserted: bool) -> None:
            counts["flagged"] += o.result.verdict.value in ("malicious", "suspicious")
            counts["errors"] += o.result.verdict.value == "error"
            bar.update(task_id, advance=1, **counts)

        return run_batch(
            sources,
            store,
            engine,
            retry_errors=retry_errors,
            on_skip=on_skip,
            on_outcome=on_outcome,
        )


def _print_summary(summary: BatchSummary, store: ResultStore, out: TextIO) -> None:
    from rich.console import Console
    from rich.table import Table

    title = "pkgvet batch (interrupted)" if summary.interrupted else "pkgvet batch"
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column("", style="bold")
    table.add_column("", justify="right")
    for label, value in summary.rows():
        table.add_row(label, value)
    stored = store.counts()
    table.add_row("in the store", str(stored["total"]))
    Console(file=out, width=max(60, min(100, Console(file=out).width))).print(table)


def _export(store: ResultStore, path: Path) -> None:
    with ExitStack() as stack:
        out: TextIO = (
            sys.stdout
            if str(path) == "-"
            else stack.enter_context(path.open("w", encoding="utf-8"))
        )
        for doc in store.iter_results(order_by="key"):
            out.write(json.dumps(doc, ensure_ascii=False, sort_keys=True) + "\n")
