"""Triage decisions exported as training labels: a TSV file ``pkgvet train --labels`` reads.

Format (UTF-8, tab-separated, one header line, ``\\n`` line ends)::

    name	version	filename	sha256	label	note	decided_at

- ``name``: canonical project name; ``version``: as published (empty when unknown);
- ``filename`` and ``sha256``: the distribution file that was scanned and judged (the same
  identity as the collector's manifests, so the bytes are found in the collector's cache at
  ``dists/<sha[:2]>/<sha>/<filename>`` or fetched again and verified);
- ``label``: ``malicious`` (a reviewer confirmed it) or ``benign`` (a reviewer marked the
  verdict a false positive);
- ``note``: the reviewer's note, tabs and line breaks folded to spaces;
- ``decided_at``: ISO 8601 UTC time of the decision.

Only each release's latest decision is exported: a reviewer who changes their mind overrides
the earlier label. Reading (:func:`read_labels`) needs only the standard library; exporting
from a service database needs the ``serve`` extra.
"""

from __future__ import annotations

import csv
import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

import click

from pkgvet.errors import PkgvetError

if TYPE_CHECKING:
    from pkgvet.service.db import Decision, ServiceStore

COLUMNS = ("name", "version", "filename", "sha256", "label", "note", "decided_at")
HEADER = "\t".join(COLUMNS) + "\n"
LABELS = ("malicious", "benign")
# the store's decision labels → training labels
DECISION_TO_LABEL = {"malicious": "malicious", "false_positive": "benign"}
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_FOLD = re.compile(r"[\t\r\n\x0b\x0c\x1c-\x1e\x85\u2028\u2029]+")


class LabelsError(PkgvetError):
    """A labels file that cannot be read (wrong header, bad row)."""


@dataclass(frozen=True, slots=True)
class LabelRow:
    """One labelled distribution file."""

    name: str
    version: str
    filename: str
    sha256: str
    label: str  # malicious | benign
    note: str
    decided_at: str

    @property
    def is_malicious(self) -> bool:
        return self.label == "malicious"

    def to_line(self) -> str:
        fields = [_FOLD.sub(" ", getattr(self, c)).strip() for c in COLUMNS]
        return "\t".join(fields) + "\n"


def row_of_decision(d: Decision) -> LabelRow:
    """The label row of a stored decision."""
    return LabelRow(
        name=d.name,
        version=d.version or "",
        filename=d.filename,
        sha256=d.sha256,
        label=DECISION_TO_LABEL[d.label],
        note=d.note,
        decided_at=d.created_at.isoformat(),
    )


def label_rows(store: ServiceStore) -> Iterator[LabelRow]:
    """Each decided release's latest decision, as a label row (in decision order)."""
    for d in store.iter_decisions(latest_only=True):
        if d.label in DECISION_TO_LABEL:
            yield row_of_decision(d)


def write_labels(rows: Iterable[LabelRow], out: TextIO) -> int:
    """Write the header and ``rows``; return how many rows were written."""
    out.write(HEADER)
    n = 0
    for row in rows:
        out.write(row.to_line())
        n += 1
    return n


def render_labels(rows: Iterable[LabelRow]) -> str:
    """The whole TSV document as text."""
    return HEADER + "".join(r.to_line() for r in rows)


def read_labels(path: Path) -> list[LabelRow]:
    """The rows of a labels file, checked: header, column count, label and sha256."""
    out: list[LabelRow] = []
    with path.open(encoding="utf-8", newline="") as fh:
        header = fh.readline()
        if header.rstrip("\r\n") != HEADER.rstrip("\n"):
            raise LabelsError(f"{path}: not a labels file (header {header[:80]!r})")
        for lineno, row in enumerate(csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE), 2):
            if not row or not any(row):
                continue
            if len(row) != len(COLUMNS):
                raise LabelsError(f"{path}:{lineno}: {len(row)} fields, expected {len(COLUMNS)}")
            label = LabelRow(*row)
            if label.label not in LABELS:
                raise LabelsError(f"{path}:{lineno}: label {label.label!r} is not one of {LABELS}")
            if not _SHA256.match(label.sha256):
                raise LabelsError(f"{path}:{lineno}: invalid sha256")
            out.append(label)
    return out


# -- the command ---------------------------------------------------------------------------


@click.group("labels")
def labels_command() -> None:
    """Triage decisions as training labels."""


@labels_command.command("export")
@click.option(
    "--db",
    metavar="PATH|URL",
    default=None,
    help="The service database (SQLite path or SQLAlchemy URL); default: `pkgvet serve "
    "--db`, else $PKGVET_DB_URL, else ./pkgvet-service.db.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the TSV here (default: standard output).",
)
@click.pass_context
def export_command(ctx: click.Context, db: str | None, output: Path | None) -> None:
    """Export each decided release's latest decision as a labels TSV for `pkgvet train
    --labels` (columns: name version filename sha256 label note decided_at)."""
    try:
        from pkgvet.service.db import ServiceStore, ServiceStoreError
        from pkgvet.service.settings import from_env
    except ImportError as exc:
        msg = f"needs the `serve` extra: pip install 'pkgvet[serve]' ({exc})"
        raise click.ClickException(msg) from exc
    parent_db = (ctx.find_object(dict) or {}).get("db")
    settings = from_env().with_options(db_url=db or parent_db)
    try:
        with ServiceStore(settings.database_url) as store:
            rows = list(label_rows(store))
    except ServiceStoreError as exc:
        raise click.ClickException(exc.diagnostics()) from exc
    if output is None:
        n = write_labels(rows, sys.stdout)
    else:
        output.parent.mkdir(parents=True, exist_ok=True)
        with output.open("w", encoding="utf-8", newline="") as fh:
            n = write_labels(rows, fh)
    click.echo(f"{n} labels exported", err=True)
