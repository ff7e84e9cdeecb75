"""``pkgvet study``: the empirical study of Guo et al. (ASE 2023) reproduced on a dataset (see
:mod:`pkgvet.study` and ``docs/study.md``)."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from pkgvet.study.dataset import (
    Sample,
    StudyError,
    default_jobs,
    load_samples,
    match_results,
    read_results,
    records_from_results,
    scan_samples,
    subsample,
)

_DB_SUFFIXES = (".db", ".sqlite", ".sqlite3")


class UsageFailure(click.ClickException):
    exit_code = 2


def _is_db(text: str) -> bool:
    return "://" in text or text.lower().endswith(_DB_SUFFIXES)


def _store_results(db: str) -> list[dict[str, Any]]:
    try:
        from pkgvet.store import ResultStore, StoreError
    except ImportError as exc:
        raise UsageFailure(
            f"reading a results database needs SQLAlchemy: pip install 'pkgvet[store]' ({exc})"
        ) from exc
    try:
        with ResultStore(db) as store:
            return list(store.iter_results())
    except StoreError as exc:
        raise UsageFailure(exc.diagnostics()) from exc


@click.command("study")
@click.argument("dataset")
@click.option(
    "--out",
    "-o",
    "out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("build/study"),
    show_default=True,
    help="Directory for index.html, the CSV tables, summary.json and the plots.",
)
@click.option(
    "--results",
    "results_path",
    help="Scan results to study instead of scanning: a JSONL of `pkgvet scan -f jsonl` (or a "
    "records.jsonl from --save-records), or a results database of `pkgvet batch`. DATASET then "
    "only gives dates and the files for code attributes.",
)
@click.option("--jobs", "-j", type=click.IntRange(min=1), help="Worker processes (default: CPUs).")
@click.option(
    "--limit", type=click.IntRange(min=1), help="Study a seeded random sample of N packages."
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of --limit's sample.")
@click.option(
    "--no-model",
    is_flag=True,
    help="Rules-only verdicts (the study's facts come from rules either way).",
)
@click.option(
    "--save-records",
    is_flag=True,
    help="Also write DIR/records.jsonl (per-package records; reusable with --results).",
)
@click.option("--title", default="pkgvet study", show_default=True, help="Title of the report.")
@click.option(
    "--progress/--no-progress",
    default=None,
    help="Progress bar on standard error (default: on a terminal).",
)
def study_command(
    dataset: str,
    out: Path,
    results_path: str | None,
    jobs: int | None,
    limit: int | None,
    seed: int,
    no_model: bool,
    save_records: bool,
    title: str,
    progress: bool | None,
) -> None:
    """Characterise the malicious packages of DATASET as Guo et al. (ASE 2023) did, and compare.

    DATASET is a directory in the name/version/file layout (dated by its MANIFEST.tsv), a
    manifest TSV (a `path` column relative to it, dates from `added`), a JSONL of scan results,
    or a results database. Writes DIR/index.html (self-contained, plots inlined), one CSV per
    table, summary.json and the plots as PNG. Nothing in the dataset is executed.
    """
    from pkgvet.study.render import require_matplotlib

    try:
        require_matplotlib()
    except RuntimeError as exc:
        raise UsageFailure(str(exc)) from exc
    started = time.monotonic()
    jobs = jobs or default_jobs()
    show = sys.stderr.isatty() if progress is None else progress
    ds_path = Path(dataset)
    samples: list[Sample] = []
    results: list[dict[str, Any]] | None = None
    try:
        if results_path is None and (_is_db(dataset) and not ds_path.is_dir()):
            results = _store_results(dataset)
        elif results_path is None and dataset.endswith((".jsonl", ".json")) and ds_path.is_file():
            results = read_results(ds_path)
        else:
            samples = load_samples(ds_path)
            if results_path is not None:
                results = (
                    _store_results(results_path)
                    if _is_db(results_path)
                    else read_results(Path(results_path))
                )
    except StudyError as exc:
        raise UsageFailure(exc.diagnostics()) from exc

    if results is None:
        samples = subsample(samples, limit, seed)
        if not samples:
            raise UsageFailure(f"{dataset}: no packages found")
        click.echo(f"scanning {len(samples):,} packages with {jobs} processes", err=True)
        records = _with_bar(
            show,
            len(samples),
            "scanning",
            lambda cb: scan_samples(samples, jobs, not no_model, cb),
        )
    else:
        ready = [r for r in results if "result" in r]  # records.jsonl
        bare = [r for r in results if "result" not in r]
        root = ds_path if ds_path.is_dir() else None
        pairs = match_results(bare, samples, root)
        if limit is not None:
            import random

            pairs = sorted(
                random.Random(seed).sample(pairs, min(limit, len(pairs))), key=lambda p: p[0].id
            )
            ready = ready[:limit]
        click.echo(f"reading attributes of {len(pairs):,} results with {jobs} processes", err=True)
        records = ready + _with_bar(
            show, len(pairs), "reading", lambda cb: records_from_results(pairs, jobs, cb)
        )
    scanned_s = time.monotonic() - started

    from pkgvet.study.aggregate import aggregate, campaign_ids
    from pkgvet.study.facts import package_facts
    from pkgvet.study.render import write_study

    facts = [package_facts(r) for r in records]
    study = aggregate(facts, campaign_ids(facts), dataset=dataset)
    out.mkdir(parents=True, exist_ok=True)
    if save_records:
        with (out / "records.jsonl").open("w", encoding="utf-8") as fh:
            for r in records:
                fh.write(json.dumps(r, ensure_ascii=False) + "\n")
    study.summary["run"] = {
        "jobs": jobs,
        "model": not no_model,
        "limit": limit,
        "seed": seed,
        "scan_seconds": round(scanned_s, 1),
    }
    write_study(study, out, title)
    total = time.monotonic() - started
    study.summary["run"]["total_seconds"] = round(total, 1)
    (out / "summary.json").write_text(
        json.dumps(study.summary, indent=2, ensure_ascii=False) + "\n", "utf-8"
    )
    s = study.summary
    click.echo(
        f"{s['packages']:,} packages ({s['errors']:,} unreadable) studied in {total:.0f}s; "
        f"report: {out / 'index.html'}",
        err=True,
    )


def _with_bar(
    show: bool,
    total: int,
    label: str,
    run: Callable[[Callable[[dict[str, Any]], None] | None], list[dict[str, Any]]],
) -> list[dict[str, Any]]:
    if not show:
        return run(None)
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[errors]} unreadable"),
    )
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(label, total=total, errors=0)
        errors = 0

        def step(row: dict[str, Any]) -> None:
            nonlocal errors
            errors += bool((row.get("result") or {}).get("error"))
            bar.update(task, advance=1, errors=errors)

        return run(step)
