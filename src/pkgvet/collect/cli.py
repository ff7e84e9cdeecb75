"""The ``collect`` command: sample projects, download their files, write a manifest.

With ``--from-manifest`` it instead re-fetches the files an existing manifest
pins, to rebuild the cache on another machine.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)

from pkgvet.collect.index import (
    DEFAULT_MAX_BYTES,
    VERSION_POLICIES,
    CollectError,
    Download,
    IndexClient,
    ManifestError,
    SpecError,
    VersionPolicy,
    cache_dir,
)
from pkgvet.collect.manifest import ManifestRow, append_row, manifest_names, read_manifest
from pkgvet.collect.sampling import Target, select_targets


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened to one target: a manifest row, or the error that stopped it."""

    target: Target
    row: ManifestRow | None
    from_cache: bool
    error: CollectError | None


@dataclass(slots=True)
class RunSummary:
    """Counts for one run of either mode."""

    collected: int = 0
    """Rows whose file is in the cache at the end (downloaded or already there)."""
    cached: int = 0
    """Of ``collected``, files that were already in the cache."""
    failures: Counter[str] = field(default_factory=Counter)
    """Failure count per :attr:`CollectError.reason`."""

    def line(self, verb: str = "collected", skipped: int | None = None) -> str:
        """Render the one-line summary printed at the end of a run."""
        failed = sum(self.failures.values())
        text = f"{verb} {self.collected} ({self.collected - self.cached} downloaded, "
        text += f"{self.cached} cached)"
        if skipped is not None:
            text += f", {skipped} already in manifest"
        text += f", failed {failed}"
        if failed:
            reasons = ", ".join(f"{reason} {n}" for reason, n in self.failures.most_common())
            text += f" ({reasons})"
        return text


@dataclass(frozen=True, slots=True)
class RestoreOutcome:
    """What happened to one pinned manifest row in ``--from-manifest`` mode."""

    row: ManifestRow
    from_cache: bool
    error: CollectError | None


def restore_manifest(
    rows: list[ManifestRow],
    client: IndexClient,
    *,
    cache: Path | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    jobs: int = 8,
    on_outcome: Callable[[RestoreOutcome], None] | None = None,
) -> RunSummary:
    """Make the exact file pinned by each row present in the cache, with ``jobs`` threads.

    A row whose file is cached with the right sha256 costs no request; the
    others go through :meth:`IndexClient.fetch_pinned`.  The size cap is
    raised to the row's own size when that is larger.  Per-row failures are
    counted, never raised.
    """
    store = cache if cache is not None else cache_dir()
    summary = RunSummary()
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures: dict[Future[Download], ManifestRow] = {
            pool.submit(
                client.fetch_pinned,
                row.name,
                row.filename,
                row.sha256,
                cache=store,
                max_bytes=max(max_bytes, row.size),
            ): row
            for row in rows
        }
        try:
            for future in as_completed(futures):
                row = futures[future]
                try:
                    download = future.result()
                except CollectError as exc:
                    summary.failures[exc.reason] += 1
                    outcome = RestoreOutcome(row, False, exc)
                else:
                    summary.collected += 1
                    summary.cached += download.from_cache
                    outcome = RestoreOutcome(row, download.from_cache, None)
                if on_outcome is not None:
                    on_outcome(outcome)
        finally:
            for future in futures:
                future.cancel()
    return summary


def pending_targets(targets: Iterable[Target], out: Path) -> list[Target]:
    """Drop the targets whose name is already in the output manifest (resume)."""
    done = manifest_names(out)
    return [t for t in targets if t.name not in done]


def run_collection(
    targets: list[Target],
    out: Path,
    client: IndexClient,
    *,
    policy: VersionPolicy = "latest",
    seed: int = 0,
    cache: Path | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    jobs: int = 8,
    on_outcome: Callable[[Outcome], None] | None = None,
) -> RunSummary:
    """Collect ``targets`` with ``jobs`` threads, appending a row to ``out`` per success.

    Rows are appended from this thread as each download completes, so an
    interrupted run keeps what it finished; pass :func:`pending_targets` to
    resume.  Per-project failures are counted, never raised.
    """
    store = cache if cache is not None else cache_dir()
    summary = RunSummary()
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures: dict[Future[Download], Target] = {
            pool.submit(
                client.fetch, t.name, policy=policy, seed=seed, cache=store, max_bytes=max_bytes
            ): t
            for t in targets
        }
        try:
            for future in as_completed(futures):
                outcome = _record(futures[future], future, out, summary)
                if on_outcome is not None:
                    on_outcome(outcome)
        finally:
            for future in futures:
                future.cancel()
    return summary


def _record(target: Target, future: Future[Download], out: Path, summary: RunSummary) -> Outcome:
    try:
        download = future.result()
        row = ManifestRow(
            name=target.name,
            version=download.version,
            filename=download.file.filename,
            sha256=download.file.sha256,
            size=download.size,
            upload_time=download.file.upload_time,
            stratum=target.stratum,
            rank=target.rank,
        )
        append_row(out, row)
    except CollectError as exc:
        summary.failures[exc.reason] += 1
        return Outcome(target, None, False, exc)
    summary.collected += 1
    summary.cached += download.from_cache
    return Outcome(target, row, download.from_cache, None)


@click.command("collect")
@click.argument("specs", metavar="[SPEC]...", nargs=-1)
@click.option(
    "--out",
    "out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Manifest to append to; names already in it are skipped (required with SPEC).",
)
@click.option(
    "--from-manifest",
    "from_manifest",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Re-fetch exactly the files this manifest pins into the cache (no SPEC, no --out).",
)
@click.option(
    "--jobs", type=click.IntRange(min=1), default=8, show_default=True, help="Parallel downloads."
)
@click.option("--index-url", help="Simple index URL [default: $PIP_INDEX_URL or PyPI].")
@click.option(
    "--version-policy",
    type=click.Choice(VERSION_POLICIES),
    default="latest",
    show_default=True,
    help="latest: highest final version; random: a seeded random version.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for tail:N and random.")
@click.option(
    "--names-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Names to draw tail:N from (one per line, or a TSV with names first).",
)
@click.option(
    "--max-size-mb",
    type=click.FloatRange(min=0, min_open=True),
    default=DEFAULT_MAX_BYTES / 2**20,
    show_default=True,
    help="Skip files larger than this.",
)
@click.option(
    "--exclude-manifest",
    "exclude_manifests",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Never sample names listed in this manifest (repeatable).",
)
def collect_command(
    specs: tuple[str, ...],
    out: Path | None,
    from_manifest: Path | None,
    jobs: int,
    index_url: str | None,
    version_policy: VersionPolicy,
    seed: int,
    names_file: Path | None,
    max_size_mb: float,
    exclude_manifests: tuple[Path, ...],
) -> None:
    """Download benign distributions (as bytes, never installed) and record them.

    SPEC is top:N, tail:N (needs --names-file), names:a,b,c or a file of names.
    Files go to $PKGVET_CACHE_DIR (default ~/.cache/pkgvet); one row per file
    is appended to the --out manifest as each download completes.

    With --from-manifest MANIFEST, the files MANIFEST pins are fetched into
    the cache instead (each checked against its pinned sha256); the exit
    status is 1 unless every file is present at the end.
    """
    if from_manifest is not None:
        if specs or out is not None:
            raise click.UsageError("--from-manifest takes no SPEC and no --out")
        _restore(from_manifest, index_url, jobs, int(max_size_mb * 2**20))
        return
    if not specs:
        raise click.UsageError("give at least one SPEC, or --from-manifest MANIFEST")
    if out is None:
        raise click.UsageError("--out is required with SPEC")
    try:
        exclude: set[str] = set()
        for manifest in exclude_manifests:
            exclude |= manifest_names(manifest)
        targets = select_targets(specs, names_file=names_file, seed=seed, exclude=exclude)
        pending = pending_targets(targets, out)
    except SpecError as exc:
        raise click.UsageError(str(exc)) from exc
    except ManifestError as exc:
        raise click.ClickException(str(exc)) from exc
    skipped = len(targets) - len(pending)
    progress = _progress()
    with progress, IndexClient(index_url, max_connections=2 * jobs) as client:
        task = progress.add_task("collecting", total=len(pending), failed=0)
        failed = 0

        def report(outcome: Outcome) -> None:
            nonlocal failed
            if outcome.error is not None:
                failed += 1
                progress.console.print(f"[red]failed[/red] {escape(str(outcome.error))}")
            progress.update(task, advance=1, failed=failed)

        summary = run_collection(
            pending,
            out,
            client,
            policy=version_policy,
            seed=seed,
            max_bytes=int(max_size_mb * 2**20),
            jobs=jobs,
            on_outcome=report,
        )
    click.echo(summary.line(skipped=skipped))


def _progress() -> Progress:
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("failed {task.fields[failed]}"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=False,
    )


def _restore(manifest: Path, index_url: str | None, jobs: int, max_bytes: int) -> None:
    try:
        rows = read_manifest(manifest)
    except ManifestError as exc:
        raise click.ClickException(str(exc)) from exc
    progress = _progress()
    with progress, IndexClient(index_url, max_connections=2 * jobs) as client:
        task = progress.add_task("restoring", total=len(rows), failed=0)
        failed = 0

        def report(outcome: RestoreOutcome) -> None:
            nonlocal failed
            if outcome.error is not None:
                failed += 1
                row = outcome.row
                progress.console.print(
                    f"[red]failed[/red] {escape(row.filename)} (pinned {escape(row.version)}): "
                    f"{escape(str(outcome.error))}",
                    soft_wrap=True,
                )
            progress.update(task, advance=1, failed=failed)

        summary = restore_manifest(rows, client, max_bytes=max_bytes, jobs=jobs, on_outcome=report)
    click.echo(summary.line("present"))
    if summary.failures:
        raise SystemExit(1)
