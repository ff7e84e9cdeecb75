"""``pkgvet known``: import OSV ``MAL-`` advisories and look packages up (see
:mod:`pkgvet.known`)."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import click

from pkgvet.known import (
    KnownError,
    KnownStore,
    canonical,
    default_store_path,
    import_osv,
    open_store_if_present,
)

_STORE_OPTION = click.option(
    "--store",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The SQLite store (default: $PKGVET_CACHE_DIR/known.sqlite, else "
    "~/.cache/pkgvet/known.sqlite).",
)


class UsageFailure(click.ClickException):
    exit_code = 2


@click.group("known")
def known_command() -> None:
    """Known-malicious packages from OSV MAL- advisories (github.com/ossf/malicious-packages).

    Once imported, `pkgvet scan` looks every package up before analysing it (PV000).
    """


@known_command.command("import")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@_STORE_OPTION
def import_command(path: Path, store: Path | None) -> None:
    """Import OSV JSON files from a directory tree or a .zip (PyPI entries only; withdrawn
    entries are skipped and removed from the store)."""
    target = store or default_store_path()
    try:
        stats = import_osv(path, target)
    except KnownError as exc:
        raise UsageFailure(exc.diagnostics()) from exc
    for why in stats.skipped[:20]:
        click.echo(f"skipped {why}", err=True)
    if len(stats.skipped) > 20:
        click.echo(f"… and {len(stats.skipped) - 20} more skipped", err=True)
    click.echo(
        f"{stats.advisories} PyPI advisories stored in {target} ({stats.files} JSON files read, "
        f"{stats.withdrawn} withdrawn, {stats.other_ecosystems} other ecosystems, "
        f"{stats.invalid} invalid)"
    )


def _open(store: Path | None) -> KnownStore:
    target = store or default_store_path()
    try:
        opened = open_store_if_present(target)
    except KnownError as exc:
        raise UsageFailure(exc.diagnostics()) from exc
    if opened is None:
        raise UsageFailure(f"no known-malicious store at {target}; run 'pkgvet known import'")
    return opened


@known_command.command("check")
@click.argument("package")
@_STORE_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print the matches as JSON.")
def check_command(package: str, store: Path | None, as_json: bool) -> None:
    """Look up NAME, NAME==VERSION or a sha256. Exit 1 when it is known malicious, 0 when not,
    2 without a store. NAME alone lists every advisory of the name."""
    with _open(store) as db:
        text = package.strip()
        if re.fullmatch(r"[0-9a-fA-F]{64}", text):
            matches = [(m.advisory_id, m.summary, m.how, m.detail) for m in db.by_sha256(text)]
        elif "==" in text:
            name, _, version = text.partition("==")
            matches = [
                (m.advisory_id, m.summary, m.how, m.detail)
                for m in db.check(name.strip(), version.strip())
            ]
        else:
            matches = [
                (adv, summary, "name", "all versions" if all_v else ", ".join(vs[:20]))
                for adv, summary, all_v, vs in db.by_name(text)
            ]
    if as_json:
        doc = [{"advisory": a, "summary": s, "match": h, "detail": d} for a, s, h, d in matches]
        click.echo(json.dumps({"package": text, "known_malicious": bool(matches), "matches": doc}))
    elif not matches:
        click.echo(f"{text}: not in the known-malicious store")
    else:
        shown = text if re.fullmatch(r"[0-9a-fA-F]{64}", text) else canonical(text.split("==")[0])
        click.echo(f"{shown}: KNOWN MALICIOUS")
        for adv, summary, how, detail in matches:
            click.echo(f"  {adv}  {summary}  [{how}{': ' + detail if detail else ''}]")
    sys.exit(1 if matches else 0)


@known_command.command("stats")
@_STORE_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print the counts as JSON.")
def stats_command(store: Path | None, as_json: bool) -> None:
    """Counts of the store: advisories, packages, sha256 digests, last import."""
    with _open(store) as db:
        stats = db.stats()
    if as_json:
        click.echo(json.dumps(stats))
        return
    for key, value in stats.items():
        click.echo(f"{key.replace('_', ' ')}: {value}")
