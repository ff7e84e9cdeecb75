"""``pkgvet diff``: what a new release adds compared with an older one (see :mod:`pkgvet.diff`)."""

from __future__ import annotations

import sys
from contextlib import ExitStack
from pathlib import Path
from typing import TextIO

import click

from pkgvet.archive import kind_of
from pkgvet.config import Limits, ScanConfig
from pkgvet.errors import PkgvetError
from pkgvet.models import ScanResult, Severity
from pkgvet.pipeline import error_result
from pkgvet.report.base import get_format

_SEVERITIES = [s.value for s in Severity]


class UsageFailure(click.ClickException):
    exit_code = 2


def _split(values: tuple[str, ...]) -> frozenset[str]:
    return frozenset(v.strip().upper() for item in values for v in item.split(",") if v.strip())


@click.command("diff")
@click.argument("args", nargs=-1, required=True)
@click.option(
    "-f",
    "--format",
    "fmt",
    default="text",
    show_default=True,
    type=click.Choice(["text", "summary", "json", "jsonl", "markdown"]),
    help="Report format.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the report to this file instead of standard output.",
)
@click.option(
    "--fail-on",
    default="high",
    show_default=True,
    type=click.Choice(_SEVERITIES),
    help="Exit 1 when a diff finding of this severity or worse is found.",
)
@click.option(
    "--min-severity",
    default="low",
    show_default=True,
    type=click.Choice(_SEVERITIES),
    help="Hide diff findings below this severity.",
)
@click.option("--select", multiple=True, metavar="RULES", help="Only these diff ids (PD...).")
@click.option("--ignore", multiple=True, metavar="RULES", help="Skip these diff ids.")
@click.option("--password", default="infected", show_default=True, help="Zip password.")
@click.option(
    "--time-budget",
    default=120.0,
    show_default=True,
    type=float,
    help="Seconds allowed per pair of releases.",
)
@click.option(
    "--index-url",
    metavar="URL",
    help="Index for NAME OLD NEW (default: $PIP_INDEX_URL, else PyPI; JSON API only).",
)
@click.option(
    "--dist",
    type=click.Choice(["best", "sdist", "wheel", "all"]),
    default="best",
    show_default=True,
    help="Which files of each release to compare (all: sdist with sdist, wheel with wheel).",
)
def diff_command(
    args: tuple[str, ...],
    fmt: str,
    output: Path | None,
    fail_on: str,
    min_severity: str,
    select: tuple[str, ...],
    ignore: tuple[str, ...],
    password: str,
    time_budget: float,
    index_url: str | None,
    dist: str,
) -> None:
    """Report what changed between two releases, as findings on the new one.

    \b
    pkgvet diff NAME OLD_VERSION NEW_VERSION   (fetched from the index, sha256-checked)
    pkgvet diff OLD.tar.gz NEW.tar.gz          (local archives or unpacked directories)

    Both releases are read statically, never installed or run. Findings (PD001...) are new
    install hooks, install-time calls, capabilities, exec sites, encoded payloads, credential
    paths, binaries, load-time files and changed author/maintainer/home-page metadata. Exit
    codes: 0 nothing at or above --fail-on, 1 a finding at or above it, 2 an error.
    """
    config = ScanConfig(
        limits=Limits(time_budget_s=time_budget),
        select=_split(select),
        ignore=_split(ignore),
        password=password.encode(),
        min_severity=Severity(min_severity),
        use_model=False,
    )
    if len(args) == 2:
        results = [_local(Path(args[0]), Path(args[1]), config)]
    elif len(args) == 3:
        results = _remote(args[0], args[1], args[2], config, index_url, dist)
    else:
        raise UsageFailure("give NAME OLD NEW, or OLD_ARCHIVE NEW_ARCHIVE")
    formatter = get_format(fmt)
    with ExitStack() as stack:
        out: TextIO = (
            stack.enter_context(output.open("w", encoding="utf-8")) if output else sys.stdout
        )
        if fmt in ("text", "markdown", "summary"):
            prefix = "### " if fmt == "markdown" else ""
            for r in results:
                out.write(f"{prefix}pkgvet diff: {r.target}\n\n")
        for r in results:
            formatter.write_result(r, out)
        formatter.finish(results, out)
    from pkgvet.commands.scan import exit_code

    sys.exit(exit_code(results, Severity(fail_on)))


def _local(old: Path, new: Path, config: ScanConfig) -> ScanResult:
    from pkgvet.diff import diff_paths

    for p in (old, new):
        if not p.exists():
            raise UsageFailure(f"{p}: no such file or directory")
    return diff_paths(old, new, config, target=f"{old} → {new}")


def _remote(
    name: str, old: str, new: str, config: ScanConfig, index_url: str | None, dist: str
) -> list[ScanResult]:
    from pkgvet.collect.index import IndexClient
    from pkgvet.diff import diff_paths
    from pkgvet.remote import Spec, fetch

    label = f"{name} {old} → {new}"
    try:
        with IndexClient(index_url) as client:
            old_files = fetch(Spec(name, old), client, dist)
            new_files = fetch(Spec(name, new), client, dist)
    except PkgvetError as exc:
        return [error_result(label, "remote", exc.diagnostics())]
    results = []
    for new_label, new_path in new_files:
        kind = kind_of(new_path.name)
        old_label, old_path = next(
            ((lbl, p) for lbl, p in old_files if kind_of(p.name) == kind), old_files[0]
        )
        results.append(diff_paths(old_path, new_path, config, target=f"{old_label} → {new_label}"))
    return results
