"""Known-malicious packages: OSV ``MAL-`` advisories (github.com/ossf/malicious-packages) in a
local SQLite store, looked up before a package is analysed.

``pkgvet known import PATH`` reads a directory tree of OSV JSON files or a .zip of them (hostile
input: member count, file size, total size and compression-ratio limits, no links, no path
traversal, JSON only), keeps the entries whose ``affected[].package.ecosystem`` is ``PyPI`` and
are not withdrawn, and stores per canonical name the affected versions (``versions``, and
``ranges`` of type ECOSYSTEM/SEMVER: ``introduced: "0"`` with no ``fixed``/``last_affected`` means
every version; an entry with neither lists nor ranges also means every version), the advisory id
and summary, and the archive sha256 digests the advisory records
(``affected[].database_specific.indicators.package_integrity[].hashes.sha256``, and any other
64-hex ``sha256`` under ``database_specific`` except the ``malicious-packages-origins`` ones,
which are digests of the source *reports*, not of packages).

``pkgvet scan`` looks every package up (by the sha256 of its bytes, and by name and version from
the file name, then from its metadata) when a store exists; a match is the critical finding
**PV000** (category ``metadata``). A sha256 match skips the analysis: those exact bytes are a
known-malicious file, and parsing them would only cost time. The lookup costs one ``stat`` per
run when there is no store.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from pkgvet.errors import PkgvetError
from pkgvet.models import Category, Confidence, Finding, ScanResult, Severity, Trigger, Verdict

if TYPE_CHECKING:  # sqlite3 is imported only when a store exists
    import sqlite3

STORE_NAME = "known.sqlite"
SCHEMA_VERSION = 1
RULE_ID = "PV000"

KNOWN_RULE_DOC = """A package whose name and version, or whose exact bytes (sha256), an imported
OSV ``MAL-`` advisory (``pkgvet known import``) lists as malicious. Critical, and the verdict is
malicious whatever the analysis says: someone already analysed it. The message names the
advisory and its summary. On a sha256 match the analysis is skipped. Disable with ``--no-known``
or ``--ignore PV000``."""


class KnownError(PkgvetError):
    """A store or an advisory archive that cannot be used."""


@dataclass(frozen=True, slots=True)
class ImportLimits:
    """Bounds on what a hostile advisory tree or zip can make the importer do."""

    max_entries: int = 2_000_000  # zip members or directory entries looked at
    max_file_bytes: int = 1024 * 1024  # one JSON file
    max_total_bytes: int = 1024 * 1024 * 1024  # JSON bytes read in all
    max_ratio: float = 200.0  # uncompressed / compressed, per zip member
    max_depth: int = 16  # directory nesting


@dataclass(slots=True)
class ImportStats:
    files: int = 0  # JSON files read
    advisories: int = 0  # PyPI advisories stored
    withdrawn: int = 0
    other_ecosystems: int = 0
    invalid: int = 0
    skipped: list[str] = field(default_factory=list)  # reasons, for the user


@dataclass(frozen=True, slots=True)
class KnownMatch:
    advisory_id: str
    summary: str
    name: str
    how: str  # "sha256", "name+version", "name (all versions)"
    detail: str = ""


def default_store_path() -> Path:
    """``$PKGVET_CACHE_DIR/known.sqlite``, else in the collector's cache (``~/.cache/pkgvet``;
    :func:`pkgvet.collect.index.cache_dir`, not imported here: it pulls in httpx)."""
    configured = os.environ.get("PKGVET_CACHE_DIR")
    root = Path(configured).expanduser() if configured else Path.home() / ".cache" / "pkgvet"
    return root / STORE_NAME


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower().strip()


# -- the store ----------------------------------------------------------------------------------

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS advisories(
    id TEXT PRIMARY KEY, summary TEXT NOT NULL, modified TEXT NOT NULL, source TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS affected(
    advisory_id TEXT NOT NULL, name TEXT NOT NULL, all_versions INTEGER NOT NULL,
    versions TEXT NOT NULL, ranges TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS affected_name ON affected(name);
CREATE TABLE IF NOT EXISTS hashes(
    sha256 TEXT NOT NULL, advisory_id TEXT NOT NULL, name TEXT NOT NULL,
    filename TEXT NOT NULL, kind TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS hashes_sha256 ON hashes(sha256);
"""


class KnownStore:
    """The SQLite store of known-malicious PyPI packages. Values are JSON text, never pickle."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self.conn = conn
        self.path = path

    @classmethod
    def open(cls, path: Path, *, write: bool = False) -> KnownStore:
        import sqlite3

        try:
            if write:
                path.parent.mkdir(parents=True, exist_ok=True)
                conn = sqlite3.connect(path)
                conn.executescript(_SCHEMA)
                conn.execute(
                    "INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)",
                    (str(SCHEMA_VERSION),),
                )
                conn.commit()
            else:
                conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
            row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        except (sqlite3.Error, OSError) as exc:
            raise KnownError(f"{path}: not a usable pkgvet known-malicious store ({exc})") from exc
        if row is None or row[0] != str(SCHEMA_VERSION):
            conn.close()
            raise KnownError(f"{path}: store schema {row[0] if row else '?'} is not supported")
        return cls(conn, path)

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> KnownStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing --
    def put(self, adv: Advisory) -> None:
        self.remove(adv.id)
        c = self.conn
        c.execute(
            "INSERT INTO advisories VALUES (?, ?, ?, ?)",
            (adv.id, adv.summary, adv.modified, adv.source),
        )
        for a in adv.affected:
            c.execute(
                "INSERT INTO affected VALUES (?, ?, ?, ?, ?)",
                (adv.id, a.name, int(a.all_versions), json.dumps(a.versions), json.dumps(a.ranges)),
            )
        for sha, name, filename, kind in adv.hashes:
            c.execute(
                "INSERT INTO hashes VALUES (?, ?, ?, ?, ?)", (sha, adv.id, name, filename, kind)
            )

    def remove(self, advisory_id: str) -> int:
        c = self.conn
        n = c.execute("DELETE FROM advisories WHERE id = ?", (advisory_id,)).rowcount
        c.execute("DELETE FROM affected WHERE advisory_id = ?", (advisory_id,))
        c.execute("DELETE FROM hashes WHERE advisory_id = ?", (advisory_id,))
        return n

    def set_meta(self, key: str, value: str) -> None:
        self.conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    # -- reading --
    def check(self, name: str, version: str | None) -> list[KnownMatch]:
        """Advisories that list ``name`` at ``version``. Without a version, only advisories
        that cover every version match (use :meth:`by_name` to list all)."""
        out: list[KnownMatch] = []
        for adv_id, summary, all_versions, versions, ranges in self._rows(name):
            vs = json.loads(versions)
            rs = json.loads(ranges)
            if all_versions:
                out.append(KnownMatch(adv_id, summary, canonical(name), "name (all versions)"))
            elif version is not None and _affects(version, vs, rs):
                out.append(KnownMatch(adv_id, summary, canonical(name), "name+version", version))
        return out

    def by_name(self, name: str) -> list[tuple[str, str, bool, list[str]]]:
        """Every advisory of ``name``: id, summary, all versions?, listed versions."""
        return [
            (adv_id, summary, bool(all_v), list(json.loads(versions)))
            for adv_id, summary, all_v, versions, _r in self._rows(name)
        ]

    def _rows(self, name: str) -> list[tuple[str, str, int, str, str]]:
        rows = self.conn.execute(
            "SELECT a.advisory_id, d.summary, a.all_versions, a.versions, a.ranges "
            "FROM affected a JOIN advisories d ON d.id = a.advisory_id WHERE a.name = ? "
            "ORDER BY a.advisory_id",
            (canonical(name),),
        ).fetchall()
        return [(str(r[0]), str(r[1]), int(r[2]), str(r[3]), str(r[4])) for r in rows]

    def by_sha256(self, digest: str) -> list[KnownMatch]:
        rows = self.conn.execute(
            "SELECT h.advisory_id, d.summary, h.name, h.filename FROM hashes h "
            "JOIN advisories d ON d.id = h.advisory_id WHERE h.sha256 = ? ORDER BY h.advisory_id",
            (digest.lower(),),
        ).fetchall()
        return [KnownMatch(str(r[0]), str(r[1]), str(r[2]), "sha256", str(r[3])) for r in rows]

    def stats(self) -> dict[str, Any]:
        c = self.conn

        def one(query: str) -> int:
            return int(c.execute(query).fetchone()[0])

        meta = dict(c.execute("SELECT key, value FROM meta").fetchall())
        return {
            "store": str(self.path),
            "advisories": one("SELECT COUNT(*) FROM advisories"),
            "packages": one("SELECT COUNT(DISTINCT name) FROM affected"),
            "all_version_entries": one("SELECT COUNT(*) FROM affected WHERE all_versions = 1"),
            "sha256": one("SELECT COUNT(DISTINCT sha256) FROM hashes"),
            "archive_sha256": one("SELECT COUNT(DISTINCT sha256) FROM hashes WHERE kind='archive'"),
            "last_import": meta.get("last_import"),
            "last_source": meta.get("last_source"),
        }


def open_store_if_present(path: Path | None = None) -> KnownStore | None:
    """The store at ``path`` (default :func:`default_store_path`) opened read-only, or None
    when there is no such file (one ``stat``; nothing else is imported or opened)."""
    target = path or default_store_path()
    try:
        if not stat.S_ISREG(target.stat().st_mode):
            return None
    except OSError:
        return None
    return KnownStore.open(target)


def _affects(version: str, versions: list[str], ranges: list[dict[str, Any]]) -> bool:
    from packaging.version import InvalidVersion, Version

    if version in versions:
        return True
    try:
        v = Version(version)
    except InvalidVersion:
        return False
    for listed in versions:
        try:
            if Version(listed) == v:
                return True
        except InvalidVersion:
            continue
    return any(_in_range(v, r.get("events", [])) for r in ranges)


def _in_range(v: Any, events: list[dict[str, str]]) -> bool:
    """OSV range evaluation over ordered events: introduced (inclusive), fixed (exclusive),
    last_affected (inclusive); ``introduced: "0"`` is the beginning of time."""
    from packaging.version import InvalidVersion, Version

    affected = False
    try:
        for ev in events:
            if "introduced" in ev:
                if ev["introduced"] == "0" or v >= Version(ev["introduced"]):
                    affected = True
            elif "fixed" in ev:
                if v >= Version(ev["fixed"]):
                    affected = False
            elif "last_affected" in ev and v > Version(ev["last_affected"]):
                affected = False
    except InvalidVersion:
        return False
    return affected


# -- parsing OSV --------------------------------------------------------------------------------

_SHA256 = re.compile(r"[0-9a-fA-F]{64}")
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,199}")


@dataclass(slots=True)
class Affected:
    name: str
    all_versions: bool
    versions: list[str]
    ranges: list[dict[str, Any]]


@dataclass(slots=True)
class Advisory:
    id: str
    summary: str
    modified: str
    source: str
    withdrawn: bool
    affected: list[Affected]
    hashes: list[tuple[str, str, str, str]]  # sha256, name, filename, kind


def parse_osv(doc: Any, source: str, fallback_id: str = "") -> Advisory | None:
    """The PyPI part of one OSV document; None when it has no PyPI package or is malformed."""
    if not isinstance(doc, dict):
        return None
    raw_id = doc.get("id")
    adv_id = raw_id if isinstance(raw_id, str) else fallback_id
    if not adv_id or not _ID.fullmatch(adv_id):
        return None
    raw_summary, details = doc.get("summary"), doc.get("details")
    summary = raw_summary if isinstance(raw_summary, str) else ""
    if not summary and isinstance(details, str) and details.strip():
        summary = details.strip().splitlines()[0]
    affected: list[Affected] = []
    hashes: list[tuple[str, str, str, str]] = []
    for a in doc.get("affected") or []:
        if not isinstance(a, dict):
            continue
        pkg = a.get("package")
        if not isinstance(pkg, dict) or str(pkg.get("ecosystem", "")).lower() != "pypi":
            continue
        raw_name = pkg.get("name")
        if not isinstance(raw_name, str) or not raw_name.strip() or len(raw_name) > 200:
            continue
        name = canonical(raw_name)
        versions = [str(v) for v in a.get("versions") or [] if isinstance(v, str | int | float)]
        ranges: list[dict[str, Any]] = []
        open_ended = False
        for r in a.get("ranges") or []:
            if isinstance(r, dict) and str(r.get("type")) in ("ECOSYSTEM", "SEMVER"):
                events = _events(r.get("events"))
                open_ended = open_ended or (bool(events) and _open_ended(events))
                ranges.append({"type": str(r.get("type")), "events": events})
        all_versions = open_ended or (not versions and not ranges)
        affected.append(Affected(name, all_versions, versions[:10_000], ranges[:100]))
        found = _hashes(a.get("database_specific"))
        hashes.extend((sha, name, fn, kind) for sha, fn, kind in found)
    if not affected:
        return None
    names = {a.name for a in affected}
    if len(names) == 1:  # top-level digests belong to the one package
        only = next(iter(names))
        top = _hashes(doc.get("database_specific"))
        hashes.extend((sha, only, fn, kind) for sha, fn, kind in top)
    seen: set[tuple[str, str]] = set()
    unique = []
    for h in hashes:
        if (h[0], h[1]) not in seen:
            seen.add((h[0], h[1]))
            unique.append(h)
    return Advisory(
        id=adv_id,
        summary=summary[:500],
        modified=str(doc.get("modified") or ""),
        source=source[:500],
        withdrawn=bool(doc.get("withdrawn")),
        affected=affected,
        hashes=unique[:10_000],
    )


def _events(raw: Any) -> list[dict[str, str]]:
    out = []
    for ev in raw if isinstance(raw, list) else []:
        if isinstance(ev, dict):
            kept = {
                k: str(v)
                for k, v in ev.items()
                if k in ("introduced", "fixed", "last_affected", "limit")
            }
            if kept:
                out.append(kept)
    return out


def _open_ended(events: list[dict[str, str]]) -> bool:
    return any(ev.get("introduced") == "0" for ev in events) and not any(
        "fixed" in ev or "last_affected" in ev or "limit" in ev for ev in events
    )


def _hashes(ds: Any, depth: int = 0) -> Iterator[tuple[str, str, str]]:
    """64-hex ``sha256`` values under a ``database_specific`` object, with the file name next
    to them and a kind: ``archive`` for ``package_integrity`` entries, ``file`` for evidence
    files, ``other`` otherwise. ``malicious-packages-origins`` (report digests) is skipped."""
    if depth > 8:
        return
    if isinstance(ds, dict):
        raw_fn = ds.get("filename")
        filename = raw_fn if isinstance(raw_fn, str) else ""
        for key, value in ds.items():
            if key == "malicious-packages-origins":
                continue
            if key == "sha256" and isinstance(value, str) and _SHA256.fullmatch(value):
                yield value.lower(), filename[:255], "other"
            elif key == "package_integrity" and isinstance(value, list):
                for entry in value:
                    for sha, fn, _k in _hashes(entry, depth + 1):
                        yield sha, fn, "archive"
            elif key == "evidence_files" and isinstance(value, list):
                for entry in value:
                    where = str(entry.get("path", ""))[:255] if isinstance(entry, dict) else ""
                    for sha, fn, _k in _hashes(entry, depth + 1):
                        yield sha, fn or where, "file"
            elif key == "hashes" and isinstance(value, dict):
                digest = value.get("sha256")
                if isinstance(digest, str) and _SHA256.fullmatch(digest):
                    yield digest.lower(), filename[:255], "other"
            else:
                yield from _hashes(value, depth + 1)
    elif isinstance(ds, list):
        for item in ds:
            yield from _hashes(item, depth + 1)


# -- reading advisory files (hostile input) -----------------------------------------------------


def _unsafe_name(name: str) -> str | None:
    if "\x00" in name:
        return "NUL in name"
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        return "absolute path"
    if ".." in PurePosixPath(name.replace("\\", "/")).parts:
        return "path traversal"
    return None


def _other_ecosystem(parts: tuple[str, ...]) -> bool:
    """``osv/malicious/<ecosystem>/...`` for an ecosystem other than PyPI: not read at all."""
    for i, p in enumerate(parts[:-1]):
        if p.lower() in ("malicious", "withdrawn") and i + 1 < len(parts) - 1:
            return parts[i + 1].lower() != "pypi"
    return False


def iter_documents(
    path: Path, limits: ImportLimits, stats: ImportStats
) -> Iterator[tuple[str, bytes]]:
    """(name, bytes) of every ``.json`` file below a directory or inside a zip, within limits.
    A zip with a link, a traversal or absolute name, or over a limit is refused whole."""
    if path.is_dir():
        yield from _iter_dir(path, limits, stats)
    elif path.is_file() and zipfile.is_zipfile(path):
        yield from _iter_zip(path, limits, stats)
    elif path.is_file() and path.suffix.lower() == ".json":
        data = _read_capped(path, limits.max_file_bytes)
        if data is None:
            raise KnownError(f"{path}: over {limits.max_file_bytes} bytes: refused")
        yield path.name, data
    else:
        raise KnownError(f"{path}: not a directory, a .zip or a .json file")


def _read_capped(path: Path, cap: int) -> bytes | None:
    with path.open("rb") as fh:
        data = fh.read(cap + 1)
    return None if len(data) > cap else data


def _iter_dir(root: Path, limits: ImportLimits, stats: ImportStats) -> Iterator[tuple[str, bytes]]:
    entries = 0
    total = 0
    stack: list[tuple[Path, int]] = [(root, 0)]
    while stack:
        current, depth = stack.pop()
        try:
            listing = sorted(os.scandir(current), key=lambda e: e.name, reverse=True)
        except OSError as exc:
            stats.skipped.append(f"{current}: not read ({exc.strerror})")
            continue
        for entry in listing:
            entries += 1
            if entries > limits.max_entries:
                raise KnownError(f"{root}: more than {limits.max_entries} entries: refused")
            if entry.is_symlink():
                stats.skipped.append(f"{entry.path}: symbolic link, not followed")
                continue
            if entry.is_dir(follow_symlinks=False):
                rel_parts = Path(entry.path).relative_to(root).parts
                if depth + 1 > limits.max_depth:
                    stats.skipped.append(f"{entry.path}: nested too deep")
                elif not _other_ecosystem((*rel_parts, "x")):
                    stack.append((Path(entry.path), depth + 1))
                else:
                    stats.other_ecosystems += 1
                continue
            if not entry.is_file(follow_symlinks=False) or not entry.name.lower().endswith(".json"):
                continue
            size = entry.stat(follow_symlinks=False).st_size
            if size > limits.max_file_bytes:
                stats.skipped.append(f"{entry.path}: {size} bytes, over the file limit")
                continue
            total += size
            if total > limits.max_total_bytes:
                raise KnownError(f"{root}: more than {limits.max_total_bytes} bytes of JSON")
            data = _read_capped(Path(entry.path), limits.max_file_bytes)
            if data is None:
                stats.skipped.append(f"{entry.path}: grew over the file limit while read")
                continue
            yield str(Path(entry.path).relative_to(root)), data


def _iter_zip(path: Path, limits: ImportLimits, stats: ImportStats) -> Iterator[tuple[str, bytes]]:
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise KnownError(f"{path}: not a readable zip ({exc})") from exc
    with zf:
        infos = zf.infolist()
        if len(infos) > limits.max_entries:
            raise KnownError(f"{path}: {len(infos)} members, over {limits.max_entries}: refused")
        for info in infos:  # the whole zip is checked before anything is read
            why = _unsafe_name(info.filename)
            mode = info.external_attr >> 16
            if why is None and stat.S_ISLNK(mode):
                why = "symbolic link"
            if why:
                raise KnownError(f"{path}: member {info.filename[:200]!r}: {why}: refused")
        total = 0
        for info in infos:
            name = info.filename
            if info.is_dir() or not name.lower().endswith(".json"):
                continue
            if _other_ecosystem(PurePosixPath(name).parts):
                stats.other_ecosystems += 1
                continue
            if info.flag_bits & 0x1:
                stats.skipped.append(f"{name}: encrypted, not read")
                continue
            if info.file_size > limits.max_file_bytes:
                raise KnownError(
                    f"{path}: member {name[:200]!r} declares {info.file_size} bytes, over the "
                    f"{limits.max_file_bytes}-byte file limit: refused"
                )
            if (
                info.compress_size
                and info.file_size / info.compress_size > limits.max_ratio
                and (info.file_size > 64 * 1024)
            ):
                raise KnownError(f"{path}: member {name[:200]!r}: compression ratio too high")
            try:
                with zf.open(info) as fh:
                    data = fh.read(limits.max_file_bytes + 1)
            except (zipfile.BadZipFile, OSError, ValueError, RuntimeError, EOFError) as exc:
                stats.skipped.append(f"{name}: unreadable ({type(exc).__name__})")
                continue
            if len(data) > limits.max_file_bytes:
                raise KnownError(f"{path}: member {name[:200]!r} is larger than it says: refused")
            total += len(data)
            if total > limits.max_total_bytes:
                raise KnownError(f"{path}: more than {limits.max_total_bytes} bytes of JSON")
            yield name, data


def import_osv(source: Path, store_path: Path, limits: ImportLimits | None = None) -> ImportStats:
    """Import OSV advisories into the store (one transaction: a refused zip changes nothing)."""
    limits = limits or ImportLimits()
    stats = ImportStats()
    with KnownStore.open(store_path, write=True) as store:
        conn = store.conn
        try:
            for name, data in iter_documents(source, limits, stats):
                stats.files += 1
                try:
                    doc = json.loads(data.decode("utf-8"))
                except (UnicodeDecodeError, ValueError, RecursionError):
                    stats.invalid += 1
                    continue
                stem = PurePosixPath(name.replace("\\", "/")).stem
                adv = parse_osv(doc, str(source.name), fallback_id=stem)
                if adv is None:
                    if _is_other(doc):
                        stats.other_ecosystems += 1
                    else:
                        stats.invalid += 1
                    continue
                if adv.withdrawn:
                    stats.withdrawn += 1
                    store.remove(adv.id)
                    continue
                store.put(adv)
                stats.advisories += 1
            store.set_meta("last_import", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
            store.set_meta("last_source", str(source))
            conn.commit()
        except BaseException:
            conn.rollback()
            raise
    return stats


def _is_other(doc: Any) -> bool:
    return isinstance(doc, dict) and isinstance(doc.get("affected"), list) and bool(doc["affected"])


# -- scanning -----------------------------------------------------------------------------------


def name_version_from_filename(filename: str) -> tuple[str, str] | None:
    """(name, version) of an sdist, wheel or egg file name; None when it does not parse."""
    from packaging.utils import (
        InvalidSdistFilename,
        InvalidWheelFilename,
        parse_sdist_filename,
        parse_wheel_filename,
    )

    try:
        if filename.endswith(".whl"):
            name, version, _b, _t = parse_wheel_filename(filename)
            return str(name), str(version)
        if filename.endswith(".egg"):
            parts = filename[:-4].split("-")
            return (canonical(parts[0]), parts[1]) if len(parts) >= 2 else None
        name, sversion = parse_sdist_filename(filename)
        return str(name), str(sversion)
    except (InvalidSdistFilename, InvalidWheelFilename, ValueError):
        return None


def known_finding(matches: list[KnownMatch], path: str) -> Finding:
    first = matches[0]
    more = f" (+{len(matches) - 1} more advisories)" if len(matches) > 1 else ""
    by = {"sha256": "its sha256", "name+version": "name and version"}.get(
        first.how, "name (every version is listed)"
    )
    return Finding(
        rule_id=RULE_ID,
        title="Known malicious package",
        severity=Severity.CRITICAL,
        confidence=Confidence.HIGH,
        category=Category.METADATA,
        trigger=Trigger.NONE,
        path=path,
        line=0,
        message=f"{first.advisory_id}: {first.summary or 'malicious package'} "
        f"(matched by {by}){more}",
        evidence="; ".join(f"{m.advisory_id} [{m.how}] {m.detail}".strip() for m in matches[:10]),
    )


def mark_known(result: ScanResult, matches: list[KnownMatch], path: str) -> None:
    """Add PV000 to a result: critical, verdict malicious, score 1.0, first reason."""
    if not matches:
        return
    f = known_finding(matches, path)
    result.findings.insert(0, f)
    result.verdict = Verdict.MALICIOUS
    result.score = 1.0
    result.reasons.insert(0, f"{RULE_ID} known malicious: {f.message}")


def _file_sha256(path: Path, max_bytes: int) -> str | None:
    try:
        st = path.stat()
    except OSError:
        return None
    if not stat.S_ISREG(st.st_mode) or st.st_size > max_bytes:
        return None
    try:
        with path.open("rb") as fh:
            return hashlib.file_digest(fh, "sha256").hexdigest()
    except OSError:
        return None


def scan_with_known(path: Path, config: Any, store: KnownStore | None) -> ScanResult:
    """:func:`pkgvet.pipeline.scan_target` with the known-malicious lookup in front: a sha256
    match returns at once (not analysed); a name+version match (file name, else metadata) adds
    PV000 to the analysed result. Without a store this is ``scan_target``."""
    from pkgvet.pipeline import scan_target

    if store is None or not _enabled(config):
        return scan_target(path, config)
    start = time.monotonic()
    digest = _file_sha256(path, config.limits.max_archive_bytes) if path.is_file() else None
    if digest is not None:
        hits = store.by_sha256(digest)
        if hits:
            from pkgvet.archive import kind_of
            from pkgvet.models import PackageInfo

            nv = name_version_from_filename(path.name)
            result = ScanResult(
                target=str(path),
                kind=kind_of(path.name),
                sha256=digest,
                size=path.stat().st_size,
                package=PackageInfo(
                    name=nv[0] if nv else hits[0].name, version=nv[1] if nv else None
                ),
            )
            result.stats = {"known_sha256_match": 1}
            mark_known(result, hits, path.name)
            result.reasons.append("not analysed: the exact bytes are a known-malicious file")
            result.duration_s = time.monotonic() - start
            return result
    result = scan_target(path, config)
    if result.error:
        return result
    candidates: list[tuple[str, str | None]] = []
    nv = name_version_from_filename(path.name) if path.is_file() else None
    if nv is not None:
        candidates.append(nv)
    if result.package.name:
        candidates.append((result.package.name, result.package.version))
    where = path.name if path.is_file() else (result.package.metadata_source or str(path))
    mark_known_name(result, store, candidates, where)
    return result


def mark_known_name(
    result: ScanResult,
    store: KnownStore,
    candidates: list[tuple[str, str | None]],
    where: str,
) -> None:
    """Add PV000 to an analysed result when one of the (name, version) ``candidates`` is in the
    store (the first that matches)."""
    for name, version in candidates:
        hits = store.check(name, version)
        if hits:
            mark_known(result, hits, where)
            return


def check_installed(result: ScanResult, store: KnownStore | None, config: Any) -> ScanResult:
    """The known-malicious lookup for an installed distribution (``--env``), by the name and
    version of its metadata: installed files are not the published archive, so no sha256."""
    if store is None or result.error or not result.package.name or not _enabled(config):
        return result
    where = result.package.metadata_source or result.target
    mark_known_name(result, store, [(result.package.name, result.package.version)], where)
    return result


def _enabled(config: Any) -> bool:
    """PV000 follows ``--select`` / ``--ignore`` like any rule id."""
    select: frozenset[str] = config.select
    ignore: frozenset[str] = config.ignore
    if select and not any(RULE_ID.startswith(s) for s in select):
        return False
    return not any(RULE_ID.startswith(i) for i in ignore)


def known_rule_meta() -> Any:
    """PV000 as a :class:`~pkgvet.rules.base.RuleMeta`, for ``pkgvet rules`` (not in the rule
    registry: it reads the store, not a package context, and has no fixture trees)."""
    from pkgvet.rules.base import RuleMeta

    return RuleMeta(
        RULE_ID,
        "known-malicious",
        "Known malicious package",
        Severity.CRITICAL,
        Confidence.HIGH,
        Category.METADATA,
        " ".join(KNOWN_RULE_DOC.split("\n")).replace("  ", " "),
        "CWE-506",
    )
