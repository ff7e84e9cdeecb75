"""The collection manifest: one TSV row per collected distribution file.

Columns: ``name version filename sha256 size upload_time stratum rank``
(``rank`` is empty when the project is not in the popularity list).  Rows
are appended one at a time as downloads complete, so an interrupted run
leaves a valid manifest that a rerun extends.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from pkgvet.collect.index import (
    ManifestError,
    cache_dir,
    dist_path,
    is_safe_filename,
    is_sha256,
)

COLUMNS: tuple[str, ...] = (
    "name",
    "version",
    "filename",
    "sha256",
    "size",
    "upload_time",
    "stratum",
    "rank",
)
HEADER = "\t".join(COLUMNS) + "\n"


@dataclass(frozen=True, slots=True)
class ManifestRow:
    """One collected file."""

    name: str
    version: str
    filename: str
    sha256: str
    size: int
    upload_time: str
    stratum: str
    rank: int | None

    def to_line(self) -> str:
        """Render the row as one TSV line, newline included."""
        fields = (
            self.name,
            self.version,
            self.filename,
            self.sha256,
            str(self.size),
            self.upload_time,
            self.stratum,
            "" if self.rank is None else str(self.rank),
        )
        for field in fields:
            if "\t" in field or "\n" in field or "\r" in field:
                raise ManifestError(f"{self.name}: field {field!r} contains a tab or newline")
        return "\t".join(fields) + "\n"


def iter_manifest(path: Path) -> Iterator[ManifestRow]:
    """Yield the rows of a manifest, checking the header and each row."""
    with path.open(encoding="utf-8", newline="") as handle:
        header = handle.readline()
        if header != HEADER:
            raise ManifestError(f"{path}: unexpected header {header!r}")
        for lineno, line in enumerate(handle, start=2):
            if line.strip():
                yield _parse_line(path, lineno, line)


def read_manifest(path: Path) -> list[ManifestRow]:
    """Return all rows of a manifest."""
    return list(iter_manifest(path))


def manifest_names(path: Path) -> set[str]:
    """Return the project names present in a manifest (empty if it does not exist)."""
    if not path.exists():
        return set()
    return {row.name for row in iter_manifest(path)}


def write_manifest(path: Path, rows: Iterable[ManifestRow]) -> None:
    """Write a complete manifest, replacing any existing file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as handle:
        handle.write(HEADER)
        handle.writelines(row.to_line() for row in rows)


def append_row(path: Path, row: ManifestRow) -> None:
    """Append one row, creating the file with its header if needed.

    The line is written with a single call and flushed, so a run that is
    stopped in between rows leaves only complete rows behind.  A file that
    does not end in a newline (edited by hand) gets one first.
    """
    line = row.to_line()
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+b") as handle:
        end = handle.seek(0, 2)
        if end == 0:
            line = HEADER + line
        else:
            handle.seek(end - 1)
            if handle.read(1) != b"\n":
                line = "\n" + line
        handle.write(line.encode("utf-8"))


def cached_path(row: ManifestRow, cache: Path | None = None) -> Path:
    """Return where the row's file lives in the cache (default :func:`cache_dir`)."""
    return dist_path(cache if cache is not None else cache_dir(), row.sha256, row.filename)


def _parse_line(path: Path, lineno: int, line: str) -> ManifestRow:
    fields = line.rstrip("\r\n").split("\t")
    if len(fields) != len(COLUMNS):
        raise ManifestError(f"{path}:{lineno}: expected {len(COLUMNS)} fields, found {len(fields)}")
    name, version, filename, sha256, size, upload_time, stratum, rank = fields
    if not size.isdigit() or not (rank == "" or rank.isdigit()):
        raise ManifestError(f"{path}:{lineno}: size and rank must be integers")
    if not is_sha256(sha256) or not is_safe_filename(filename):
        raise ManifestError(f"{path}:{lineno}: invalid sha256 or filename")
    return ManifestRow(
        name=name,
        version=version,
        filename=filename,
        sha256=sha256,
        size=int(size),
        upload_time=upload_time,
        stratum=stratum,
        rank=int(rank) if rank else None,
    )
