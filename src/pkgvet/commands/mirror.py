"""``pkgvet mirror-audit``: which known-malicious releases does an index still serve (see
:mod:`pkgvet.mirror`)."""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import cast

import click

from pkgvet.mirror import (
    DEFAULT_MAX_BYTES,
    Api,
    KnownRelease,
    MirrorError,
    from_dataset,
    from_known_store,
    from_manifest,
    run_audit,
    write_report,
)


class UsageFailure(click.ClickException):
    exit_code = 2


@click.command("mirror-audit")
@click.argument("index_url")
@click.option(
    "--known-store",
    "known_store",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The known-malicious store of `pkgvet known import` (default when no other input is "
    "given: $PKGVET_CACHE_DIR/known.sqlite, else ~/.cache/pkgvet/known.sqlite).",
)
@click.option(
    "--dataset",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="A dataset of malicious packages in the name/version/file layout (files are hashed).",
)
@click.option(
    "--manifest",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A manifest TSV with path (name/version/file) and sha256 columns.",
)
@click.option(
    "--api",
    type=click.Choice(["auto", "simple", "json"]),
    default="auto",
    show_default=True,
    help="simple: PEP 691 JSON, falling back to PEP 503 HTML; json: the PyPI JSON API "
    "(/pypi/NAME/json). auto: simple when the URL's last path part is a simple index, else json.",
)
@click.option(
    "--out",
    "-o",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("build/mirror-audit"),
    show_default=True,
    help="Directory for report.md, report.json and purge-list.txt.",
)
@click.option("--concurrency", "-c", type=click.IntRange(1, 64), default=8, show_default=True)
@click.option("--timeout", type=click.FloatRange(min=0.1), default=20.0, show_default=True)
@click.option("--retries", type=click.IntRange(0, 10), default=2, show_default=True)
@click.option(
    "--verify-hashes",
    is_flag=True,
    help="When the index publishes no sha256 for a file of a known release that has known "
    "digests, download it into memory, hash it and discard it (never written or opened).",
)
@click.option(
    "--max-bytes", type=click.IntRange(min=1), default=DEFAULT_MAX_BYTES, show_default=True
)
@click.option("--limit", type=click.IntRange(min=1), help="Check only the first N known releases.")
@click.option(
    "--progress/--no-progress", default=None, help="Progress bar (default: on a terminal)."
)
def mirror_audit_command(
    index_url: str,
    known_store: Path | None,
    dataset: Path | None,
    manifest: Path | None,
    api: str,
    out: Path,
    concurrency: int,
    timeout: float,
    retries: int,
    verify_hashes: bool,
    max_bytes: int,
    limit: int | None,
    progress: bool | None,
) -> None:
    """Check which known-malicious releases INDEX_URL still serves, with file hashes compared,
    and write what it should purge. Exit 1 when any known-malicious file is served, 0 when none
    is, 2 on a usage error. Package files are never downloaded unless --verify-hashes needs
    their bytes."""
    releases: list[KnownRelease] = []
    try:
        if known_store is None and dataset is None and manifest is None:
            from pkgvet.known import default_store_path

            known_store = default_store_path()
        if known_store is not None:
            releases += from_known_store(known_store)
        if dataset is not None:
            releases += from_dataset(dataset)
        if manifest is not None:
            releases += from_manifest(manifest)
    except MirrorError as exc:
        raise UsageFailure(exc.diagnostics()) from exc
    if limit is not None:
        releases = releases[:limit]
    if not releases:
        raise UsageFailure("no known-malicious releases to check")
    show = sys.stderr.isatty() if progress is None else progress
    names = len({r.name for r in releases})
    click.echo(f"checking {len(releases):,} releases of {names:,} projects", err=True)
    audit = functools.partial(
        run_audit,
        index_url,
        releases,
        api=cast(Api, api),
        concurrency=concurrency,
        timeout=timeout,
        retries=retries,
        verify_hashes=verify_hashes,
        max_bytes=max_bytes,
    )
    try:
        if show:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

            with Progress(
                TextColumn("querying"),
                BarColumn(),
                MofNCompleteColumn(),
                console=Console(stderr=True),
                transient=True,
            ) as bar:
                task = bar.add_task("q", total=names)
                report = audit(progress=lambda n: bar.update(task, advance=n))
        else:
            report = audit()
    except MirrorError as exc:
        raise UsageFailure(exc.diagnostics()) from exc
    write_report(report, out)
    s = report.summary()
    click.echo(
        f"{s['releases_served']:,} of {s['known_releases']:,} known-malicious releases still "
        f"served ({s['releases_served_pct']}%), {s['files_to_purge']:,} files to purge, "
        f"{s['releases_with_errors']:,} not checked; report: {out / 'report.md'}"
    )
    if s["releases_with_errors"] and s["releases_with_errors"] == s["known_releases"]:
        sys.exit(2)  # nothing could be checked: an unreachable or broken index
    sys.exit(1 if s["files_to_purge"] else 0)
