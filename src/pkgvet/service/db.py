"""The service's database: tables (SQLAlchemy Core) and :class:`ServiceStore`, the one class
the API, the worker pool, the triage pages and the watcher read and write through.

Schema (created and upgraded by the Alembic migrations in ``pkgvet/service/migrations``, applied
by :meth:`ServiceStore.__init__`; ``metadata`` below mirrors the latest migration):

- ``releases``: one row per distinct file (unique on ``sha256`` + ``filename``): the canonical
  project name (:func:`packaging.utils.canonicalize_name`), version, size, when it was first
  seen, where its uploaded bytes are kept (``blob_path``) and its latest finished scan
  (``latest_scan_id``, denormalised so listings need no sub-query);
- ``scans``: one row per scan request: status (``queued`` → ``running`` → ``done`` | ``error``),
  source (``upload``, ``name``, ``watch``), verdict, score, categories and triggers (JSON
  lists), model version, pkgvet version, the full ``pkgvet scan --format json`` document, the
  error text and the times. ``dedupe_key`` is unique: an upload is ``release <id>``, a
  ``name==version`` request is ``name <name>==<version>``, a forced rescan has none. This is
  what makes a resubmission (even two at the same instant) return the existing scan;
- ``findings``: the findings of a scan with their decoded payload (``evidence``);
- ``fingerprints`` and ``fingerprint_bands``: the MinHash code signature of a release
  (:mod:`pkgvet.ml.campaigns`) and its LSH band hashes, for :meth:`ServiceStore.similar_releases`;
- ``decisions``: triage labels (``malicious`` / ``false_positive``) with a note and the actor;
- ``api_tokens``: API tokens, only as sha256 hashes (see :mod:`pkgvet.service.auth`);
- ``watch_state`` and ``watch_seen``: the watcher's cursor per feed and the releases it handled.

Writes are insert-or-ignore on unique constraints (``ON CONFLICT DO NOTHING`` on SQLite and
PostgreSQL), each in its own short transaction, serialised within the process by a lock (SQLite
allows one writer; a lock avoids its busy-retry dance). Timestamps are stored in UTC and
returned timezone-aware.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import sqlalchemy as sa
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from pkgvet.errors import PkgvetError
from pkgvet.store import brief_error, db_text, sqlite_pragmas
from pkgvet.store import database_url as database_url

__all__ = [
    "DECISION_LABELS",
    "SCAN_STATUSES",
    "Decision",
    "FindingRow",
    "Page",
    "Release",
    "ReleaseView",
    "Scan",
    "ServiceStore",
    "ServiceStoreError",
    "SimilarRelease",
    "Submitted",
    "Token",
    "database_url",
    "metadata",
    "release_name_version",
]

SCAN_STATUSES = ("queued", "running", "done", "error")
DECISION_LABELS = ("malicious", "false_positive")
SOURCES = ("upload", "name", "watch")
SORTS = ("score", "-score", "first_seen", "-first_seen", "name")
BANDS = 16  # LSH bands of the 64-slot signature (4 slots each), as pkgvet.ml.campaigns.group
SIMILARITY_THRESHOLD = 0.5

metadata = sa.MetaData()

releases = sa.Table(
    "releases",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(256), nullable=False, index=True),
    sa.Column("version", sa.String(256)),
    sa.Column("filename", sa.String(512), nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False, index=True),
    sa.Column("size", sa.BigInteger, nullable=False, default=0),
    sa.Column("first_seen", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("blob_path", sa.Text),
    sa.Column("latest_scan_id", sa.Integer, index=True),
    sa.UniqueConstraint("sha256", "filename", name="uq_releases_sha256_filename"),
)

scans = sa.Table(
    "scans",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("release_id", sa.Integer, sa.ForeignKey("releases.id"), index=True),
    sa.Column("status", sa.String(16), nullable=False, index=True),
    sa.Column("source", sa.String(16), nullable=False),
    sa.Column("requested", sa.String(600)),  # the NAME / NAME==VERSION of a name request
    sa.Column("dedupe_key", sa.String(700), unique=True),
    sa.Column("forced", sa.Boolean, nullable=False, default=False),
    sa.Column("verdict", sa.String(16), index=True),
    sa.Column("score", sa.Float),
    sa.Column("categories", sa.Text),  # JSON list
    sa.Column("triggers", sa.Text),  # JSON list
    sa.Column("max_severity", sa.String(16)),
    sa.Column("model_version", sa.String(64)),
    sa.Column("pkgvet_version", sa.String(32)),
    sa.Column("result_json", sa.Text),
    sa.Column("error", sa.Text),
    sa.Column("submitted_by", sa.String(128)),
    sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("started_at", sa.DateTime(timezone=True)),
    sa.Column("finished_at", sa.DateTime(timezone=True), index=True),
)

findings = sa.Table(
    "findings",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("scan_id", sa.Integer, sa.ForeignKey("scans.id", ondelete="CASCADE"), nullable=False),
    sa.Column("rule_id", sa.String(32), nullable=False, index=True),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("severity", sa.String(16), nullable=False),
    sa.Column("confidence", sa.String(16), nullable=False),
    sa.Column("category", sa.String(32), nullable=False),
    sa.Column("trigger", sa.String(16), nullable=False),
    sa.Column("path", sa.Text, nullable=False),
    sa.Column("line", sa.Integer, nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("snippet", sa.Text, nullable=False),
    sa.Column("evidence", sa.Text, nullable=False),  # the decoded payload / matched indicator
    sa.Column("decoded_depth", sa.Integer, nullable=False),
    sa.Index("ix_findings_scan_id_category", "scan_id", "category"),
)

fingerprints = sa.Table(
    "fingerprints",
    metadata,
    sa.Column(
        "release_id",
        sa.Integer,
        sa.ForeignKey("releases.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("signature", sa.Text, nullable=False),  # JSON list of 64 MinHash slots
)

fingerprint_bands = sa.Table(
    "fingerprint_bands",
    metadata,
    sa.Column(
        "release_id",
        sa.Integer,
        sa.ForeignKey("releases.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("band", sa.Integer, primary_key=True),
    sa.Column("value", sa.String(16), nullable=False),
    sa.Index("ix_fingerprint_bands_band_value", "band", "value"),
)

decisions = sa.Table(
    "decisions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("release_id", sa.Integer, sa.ForeignKey("releases.id"), nullable=False, index=True),
    sa.Column("label", sa.String(32), nullable=False),
    sa.Column("note", sa.Text, nullable=False, default=""),
    sa.Column("actor", sa.String(128), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

api_tokens = sa.Table(
    "api_tokens",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(128), nullable=False),
    sa.Column("token_sha256", sa.String(64), nullable=False, unique=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("revoked_at", sa.DateTime(timezone=True)),
)

watch_state = sa.Table(
    "watch_state",
    metadata,
    sa.Column("feed", sa.String(512), primary_key=True),
    sa.Column("cursor", sa.Text),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

watch_seen = sa.Table(
    "watch_seen",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("feed", sa.String(512), nullable=False),
    sa.Column("name", sa.String(256), nullable=False),
    sa.Column("version", sa.String(256), nullable=False),
    sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("feed", "name", "version", name="uq_watch_seen_feed_name_version"),
)


class ServiceStoreError(PkgvetError):
    """A database that cannot be opened, migrated or written."""


def release_name_version(filename: str) -> tuple[str | None, str | None]:
    """The canonical project name and the version a distribution's file name gives (sdist or
    wheel naming), or ``(None, None)``; never raises."""
    try:
        if filename.endswith(".whl"):
            name, ver, _build, _tags = parse_wheel_filename(filename)
            return str(name), str(ver)
        if filename.endswith((".tar.gz", ".zip")):
            sname, sver = parse_sdist_filename(filename)
            return str(sname), str(sver) if sver is not None else None
    except (InvalidSdistFilename, InvalidWheelFilename, ValueError):
        pass
    stem = filename
    for suffix in (".tar.gz", ".tar.bz2", ".tar.xz", ".tgz", ".zip", ".whl", ".egg"):
        if stem.endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    if "-" in stem:
        head, _, tail = stem.partition("-")
        if head and tail and tail[:1].isdigit():
            return canonicalize_name(head), tail.split("-", 1)[0]
    return None, None


# -- rows ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Release:
    """A distinct release file."""

    id: int
    name: str
    version: str | None
    filename: str
    sha256: str
    size: int
    first_seen: datetime
    blob_path: str | None
    latest_scan_id: int | None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["first_seen"] = _iso(self.first_seen)
        del d["blob_path"]
        return d


@dataclass(frozen=True, slots=True)
class FindingRow:
    """One finding of a scan (``evidence`` holds the decoded payload, if any)."""

    rule_id: str
    title: str
    severity: str
    confidence: str
    category: str
    trigger: str
    path: str
    line: int
    message: str
    snippet: str
    evidence: str
    decoded_depth: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Scan:
    """A scan request and, once ``done``, its result (``result`` is the ``pkgvet scan
    --format json`` document; loaded only when asked for)."""

    id: int
    release_id: int | None
    status: str
    source: str
    requested: str | None
    forced: bool
    verdict: str | None
    score: float | None
    categories: list[str]
    triggers: list[str]
    max_severity: str | None
    model_version: str | None
    pkgvet_version: str | None
    error: str | None
    submitted_by: str | None
    submitted_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    result: dict[str, Any] | None = None
    findings: list[FindingRow] | None = None

    @property
    def finished(self) -> bool:
        return self.status in ("done", "error")

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "id": self.id,
            "release_id": self.release_id,
            "status": self.status,
            "source": self.source,
            "requested": self.requested,
            "forced": self.forced,
            "verdict": self.verdict,
            "score": self.score,
            "categories": self.categories,
            "triggers": self.triggers,
            "max_severity": self.max_severity,
            "model_version": self.model_version,
            "pkgvet_version": self.pkgvet_version,
            "error": self.error,
            "submitted_by": self.submitted_by,
            "submitted_at": _iso(self.submitted_at),
            "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at),
        }
        if self.findings is not None:
            d["findings"] = [f.to_dict() for f in self.findings]
        if self.result is not None:
            d["result"] = self.result
        return d


@dataclass(frozen=True, slots=True)
class ReleaseView:
    """A release with its latest finished scan (with findings when asked for)."""

    release: Release
    scan: Scan | None

    def to_dict(self) -> dict[str, Any]:
        d = self.release.to_dict()
        d["scan"] = self.scan.to_dict() if self.scan is not None else None
        return d


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a listing: its items and the number of items of all pages."""

    total: int
    items: list[ReleaseView]
    limit: int
    offset: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "limit": self.limit,
            "offset": self.offset,
            "items": [i.to_dict() for i in self.items],
        }


@dataclass(frozen=True, slots=True)
class SimilarRelease:
    """A release whose code is near-identical (estimated Jaccard of the line shingles)."""

    release: Release
    similarity: float
    verdict: str | None

    def to_dict(self) -> dict[str, Any]:
        d = self.release.to_dict()
        d["similarity"] = round(self.similarity, 4)
        d["verdict"] = self.verdict
        return d


@dataclass(frozen=True, slots=True)
class Decision:
    """A triage label on a release."""

    id: int
    release_id: int
    label: str
    note: str
    actor: str
    created_at: datetime
    # of the release, for exports
    name: str = ""
    version: str | None = None
    filename: str = ""
    sha256: str = ""

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["created_at"] = _iso(self.created_at)
        return d


@dataclass(frozen=True, slots=True)
class Token:
    """An API token's record (never its value: only the sha256 of it is stored)."""

    id: int
    name: str
    created_at: datetime
    revoked_at: datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


@dataclass(frozen=True, slots=True)
class Submitted:
    """What a submission did: the scan that answers it, and whether it is a new one."""

    scan_id: int
    release_id: int | None
    created: bool  # False: an existing scan of the same release/request was returned


@dataclass(frozen=True, slots=True)
class Job:
    """A queued or running scan, as the worker pool needs it."""

    scan_id: int
    source: str
    blob_path: str | None  # uploads: the kept bytes
    filename: str | None
    requested: str | None  # names: NAME or NAME==VERSION


# -- the store -----------------------------------------------------------------------------


class ServiceStore:
    """The service database. Thread-safe; one process writes (the server)."""

    def __init__(self, db: str | Engine, *, migrate: bool = True) -> None:
        """Open ``db`` (a URL or SQLite path, see :func:`database_url`, or an engine) and, with
        ``migrate``, bring its schema to the latest migration."""
        try:
            self.engine = db if isinstance(db, Engine) else make_engine(database_url(db))
            if migrate:
                from pkgvet.service.migrate import upgrade

                upgrade(self.engine)
        except SQLAlchemyError as exc:
            why = brief_error(exc)
            raise ServiceStoreError(f"cannot open the service database: {why}") from exc
        self._lock = threading.Lock()

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> ServiceStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def _write(self) -> _WriteTx:
        return _WriteTx(self)

    # -- submissions ----------------------------------------------------------------------

    def submit_upload(
        self,
        *,
        filename: str,
        sha256: str,
        size: int,
        blob_path: str | None,
        force: bool = False,
        source: Literal["upload", "watch"] = "upload",
        submitted_by: str | None = None,
        name: str | None = None,
        version: str | None = None,
    ) -> Submitted:
        """Record an uploaded file (one release row per ``sha256`` + ``filename``) and queue a
        scan of it, unless one exists for the release and ``force`` is false: then that scan is
        returned with ``created=False``. ``name``/``version`` override what the file name
        gives."""
        fn_name, fn_version = release_name_version(filename)
        rname = canonicalize_name(name) if name else fn_name or canonicalize_name(filename)
        rversion = version or fn_version
        now = _now()
        with self._write() as conn:
            release_id = _insert_ignore(
                conn,
                releases,
                {
                    "name": db_text(rname)[:256],
                    "version": db_text(rversion)[:256] if rversion else None,
                    "filename": db_text(filename)[:512],
                    "sha256": sha256,
                    "size": size,
                    "first_seen": now,
                    "blob_path": blob_path,
                },
                ("sha256", "filename"),
            )
            if release_id is None:
                row = conn.execute(
                    sa.select(releases.c.id, releases.c.blob_path).where(
                        releases.c.sha256 == sha256,
                        releases.c.filename == db_text(filename)[:512],
                    )
                ).one()
                release_id = int(row.id)
                if row.blob_path is None and blob_path is not None:
                    conn.execute(
                        releases.update()
                        .where(releases.c.id == release_id)
                        .values(blob_path=blob_path)
                    )
            key = None if force else f"release {release_id}"
            return _queue(conn, release_id, source, None, key, force, submitted_by, now)

    def submit_name(
        self,
        name: str,
        version: str | None,
        *,
        force: bool = False,
        source: Literal["name", "watch"] = "name",
        submitted_by: str | None = None,
    ) -> Submitted:
        """Queue a scan of ``name`` (``==version``, else the latest) fetched from the index.
        A pinned request is answered by an existing scan of the same name and version (a
        previous request, or an upload of a file of that release) unless ``force``."""
        cname = canonicalize_name(name)
        requested = f"{cname}=={version}" if version else cname
        now = _now()
        with self._write() as conn:
            if version and not force:
                row = conn.execute(
                    sa.select(releases.c.id, releases.c.latest_scan_id)
                    .where(
                        releases.c.name == cname,
                        releases.c.version == version,
                        releases.c.latest_scan_id.is_not(None),
                    )
                    .order_by(releases.c.id)
                    .limit(1)
                ).first()
                if row is not None:
                    return Submitted(int(row.latest_scan_id), int(row.id), False)
            key = f"name {requested}" if version and not force else None
            return _queue(conn, None, source, requested, key, force, submitted_by, now)

    # -- the worker pool's side -------------------------------------------------------------

    def pending_jobs(self) -> list[Job]:
        """Scans not finished (queued, or running when the server stopped), oldest first: what
        a restarting server queues again."""
        stmt = (
            sa.select(
                scans.c.id,
                scans.c.source,
                scans.c.requested,
                releases.c.blob_path,
                releases.c.filename,
            )
            .select_from(scans.outerjoin(releases, scans.c.release_id == releases.c.id))
            .where(scans.c.status.in_(("queued", "running")))
            .order_by(scans.c.id)
        )
        with self.engine.connect() as conn:
            return [
                Job(int(r.id), r.source, r.blob_path, r.filename, r.requested)
                for r in conn.execute(stmt)
            ]

    def job(self, scan_id: int) -> Job | None:
        """The job of one scan (queued or not)."""
        stmt = (
            sa.select(
                scans.c.id,
                scans.c.source,
                scans.c.requested,
                releases.c.blob_path,
                releases.c.filename,
            )
            .select_from(scans.outerjoin(releases, scans.c.release_id == releases.c.id))
            .where(scans.c.id == scan_id)
        )
        with self.engine.connect() as conn:
            r = conn.execute(stmt).first()
        return Job(int(r.id), r.source, r.blob_path, r.filename, r.requested) if r else None

    def mark_running(self, scan_id: int) -> None:
        """A worker took the scan."""
        with self._write() as conn:
            conn.execute(
                scans.update()
                .where(scans.c.id == scan_id, scans.c.status.in_(("queued", "running")))
                .values(status="running", started_at=_now())
            )

    def finish_scan(
        self,
        scan_id: int,
        document: Mapping[str, Any],
        *,
        filename: str | None = None,
        fingerprint: Sequence[int] | None = None,
    ) -> None:
        """Store the result of a scan: ``document`` is the ``pkgvet scan --format json``
        document of one result. A name request's release is found or created from the result
        (``filename`` is the fetched file's name). The scan becomes ``done`` (``error`` when
        the package could not be analysed) and the latest scan of its release; its findings
        and the release's code ``fingerprint`` (a MinHash signature) are stored. A scan that
        is already finished is left as it is (a job delivered twice)."""
        result = document["results"][0]
        status = "error" if result.get("verdict") == "error" else "done"
        now = _now()
        with self._write() as conn:
            row = conn.execute(
                sa.select(scans.c.status, scans.c.release_id).where(scans.c.id == scan_id)
            ).first()
            if row is None or row.status in ("done", "error"):
                return
            release_id = row.release_id
            if release_id is None:
                release_id = self._release_of_result(conn, result, filename, now)
            values = {
                "status": status,
                "release_id": release_id,
                "verdict": result.get("verdict"),
                "score": result.get("score"),
                "categories": json.dumps(result.get("categories") or []),
                "triggers": json.dumps(result.get("triggers") or []),
                "max_severity": result.get("max_severity"),
                "model_version": result.get("model_version"),
                "pkgvet_version": str(document.get("tool", {}).get("version", "")) or None,
                "result_json": db_text(json.dumps(document, ensure_ascii=False, sort_keys=True)),
                "error": db_text(result.get("error")),
                "finished_at": now,
            }
            conn.execute(scans.update().where(scans.c.id == scan_id).values(**values))
            rows = [_finding_row(scan_id, f) for f in result.get("findings") or []]
            if rows:
                conn.execute(findings.insert(), rows)
            if release_id is not None:
                conn.execute(
                    releases.update()
                    .where(releases.c.id == release_id)
                    .values(latest_scan_id=scan_id)
                )
                if fingerprint is not None:
                    _store_fingerprint(conn, release_id, fingerprint)

    def fail_scan(self, scan_id: int, error: str) -> None:
        """A scan that produced no result at all (its job could not even start): ``error``."""
        with self._write() as conn:
            conn.execute(
                scans.update()
                .where(scans.c.id == scan_id, scans.c.status.in_(("queued", "running")))
                .values(status="error", verdict="error", error=db_text(error), finished_at=_now())
            )

    @staticmethod
    def _release_of_result(
        conn: Connection, result: Mapping[str, Any], filename: str | None, now: datetime
    ) -> int | None:
        sha = result.get("sha256")
        if not sha:
            return None
        fname = filename or str(result.get("target") or "?")
        pkg = result.get("package") or {}
        fn_name, fn_version = release_name_version(fname)
        name = fn_name or (canonicalize_name(pkg["name"]) if pkg.get("name") else fname)
        version = fn_version or pkg.get("version")
        rid = _insert_ignore(
            conn,
            releases,
            {
                "name": db_text(name)[:256],
                "version": db_text(version)[:256] if version else None,
                "filename": db_text(fname)[:512],
                "sha256": sha,
                "size": int(result.get("size") or 0),
                "first_seen": now,
                "blob_path": None,
            },
            ("sha256", "filename"),
        )
        if rid is not None:
            return rid
        return int(
            conn.execute(
                sa.select(releases.c.id).where(
                    releases.c.sha256 == sha, releases.c.filename == db_text(fname)[:512]
                )
            ).scalar_one()
        )

    # -- kept uploads -------------------------------------------------------------------------

    def kept_blobs(self, finished_before: datetime) -> list[tuple[int, str]]:
        """(release id, blob path) of every release whose bytes are still kept, with no scan
        waiting or running, and whose last scan finished before ``finished_before``: what the
        upload retention may remove (:mod:`pkgvet.service.retention`)."""
        last = (
            sa.select(sa.func.max(scans.c.finished_at))
            .where(scans.c.release_id == releases.c.id)
            .scalar_subquery()
        )
        stmt = (
            sa.select(releases.c.id, releases.c.blob_path)
            .where(
                releases.c.blob_path.is_not(None),
                ~_scan_waiting(releases.c.id),
                last < finished_before,
            )
            .order_by(releases.c.id)
        )
        with self.engine.connect() as conn:
            return [(int(r.id), str(r.blob_path)) for r in conn.execute(stmt)]

    def forget_blob(self, release_id: int, blob_path: str) -> bool:
        """Record that a release's bytes are no longer kept, unless a scan of it is waiting or
        running, or its path changed; True when it was recorded (the caller then removes the
        file)."""
        with self._write() as conn:
            done = conn.execute(
                releases.update()
                .where(
                    releases.c.id == release_id,
                    releases.c.blob_path == blob_path,
                    ~_scan_waiting(release_id),
                )
                .values(blob_path=None)
            )
            return bool(done.rowcount)

    def restore_blob(self, release_id: int, blob_path: str) -> None:
        """Undo :meth:`forget_blob` (the file was uploaded again meanwhile)."""
        with self._write() as conn:
            conn.execute(
                releases.update()
                .where(releases.c.id == release_id, releases.c.blob_path.is_(None))
                .values(blob_path=blob_path)
            )

    # -- reading ------------------------------------------------------------------------------

    def get_scan(
        self, scan_id: int, *, with_result: bool = True, with_findings: bool = True
    ) -> Scan | None:
        """One scan, with its findings and full result document unless told otherwise."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(scans).where(scans.c.id == scan_id)).first()
            if row is None:
                return None
            found = self._findings(conn, scan_id) if with_findings else None
        return _scan(row._mapping, with_result=with_result, findings=found)

    def scans_of_release(self, release_id: int) -> list[Scan]:
        """Every scan of a release, newest first (without result documents or findings)."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(scans).where(scans.c.release_id == release_id).order_by(scans.c.id.desc())
            )
            return [_scan(r._mapping, with_result=False) for r in rows]

    @staticmethod
    def _findings(conn: Connection, scan_id: int) -> list[FindingRow]:
        rows = conn.execute(
            sa.select(findings).where(findings.c.scan_id == scan_id).order_by(findings.c.id)
        )
        return [
            FindingRow(**{k: v for k, v in r._mapping.items() if k not in ("id", "scan_id")})
            for r in rows
        ]

    def get_release(self, release_id: int, *, with_findings: bool = True) -> ReleaseView | None:
        """A release with its latest finished scan (and that scan's findings and document)."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(releases).where(releases.c.id == release_id)).first()
            if row is None:
                return None
            release = _release(row._mapping)
            scan = None
            if release.latest_scan_id is not None:
                srow = conn.execute(
                    sa.select(scans).where(scans.c.id == release.latest_scan_id)
                ).first()
                if srow is not None:
                    found = self._findings(conn, int(srow.id)) if with_findings else None
                    scan = _scan(srow._mapping, with_result=with_findings, findings=found)
        return ReleaseView(release, scan)

    def release_by_file(self, sha256: str, filename: str) -> Release | None:
        """The release of these bytes under this file name, if known."""
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(releases).where(
                    releases.c.sha256 == sha256, releases.c.filename == db_text(filename)
                )
            ).first()
        return _release(row._mapping) if row is not None else None

    def list_releases(
        self,
        *,
        verdict: str | None = None,
        min_score: float | None = None,
        category: str | None = None,
        name: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        decided: bool | None = None,
        sort: str = "-score",
        limit: int = 50,
        offset: int = 0,
    ) -> Page:
        """Releases with their latest finished scan, filtered by that scan's verdict, a minimum
        score, a behaviour category, the canonical project name, ``first_seen`` in
        ``[since, until)`` and whether a triage decision exists; ordered by ``sort`` (one of
        :data:`SORTS`; ``-`` is descending; ties by id) and paged by ``limit``/``offset``.
        Releases never scanned to the end are listed only without a verdict, score or category
        filter."""
        if sort not in SORTS:
            raise ValueError(f"sort must be one of {', '.join(SORTS)}")
        j = releases.outerjoin(scans, releases.c.latest_scan_id == scans.c.id)
        conds: list[Any] = []
        if verdict is not None:
            conds.append(scans.c.verdict == verdict)
        if min_score is not None:
            conds.append(scans.c.score >= min_score)
        if category is not None:
            conds.append(scans.c.categories.like(f'%"{_like_escape(category)}"%', escape="\\"))
        if name is not None:
            conds.append(releases.c.name == canonicalize_name(name))
        if since is not None:
            conds.append(releases.c.first_seen >= _utc(since))
        if until is not None:
            conds.append(releases.c.first_seen < _utc(until))
        if decided is not None:
            has = sa.exists().where(decisions.c.release_id == releases.c.id)
            conds.append(has if decided else ~has)
        order: list[Any]
        if sort == "-score":
            order = [sa.func.coalesce(scans.c.score, -1.0).desc(), releases.c.id.desc()]
        elif sort == "score":
            order = [sa.func.coalesce(scans.c.score, -1.0).asc(), releases.c.id.asc()]
        elif sort == "first_seen":
            order = [releases.c.first_seen.asc(), releases.c.id.asc()]
        elif sort == "-first_seen":
            order = [releases.c.first_seen.desc(), releases.c.id.desc()]
        else:
            order = [releases.c.name.asc(), releases.c.version.asc(), releases.c.id.asc()]
        limit = max(0, min(limit, 1000))
        offset = max(0, offset)
        with self.engine.connect() as conn:
            total = int(
                conn.execute(sa.select(sa.func.count()).select_from(j).where(*conds)).scalar_one()
            )
            rows = conn.execute(
                sa.select(releases, *[c.label(f"s_{c.name}") for c in scans.c])
                .select_from(j)
                .where(*conds)
                .order_by(*order)
                .limit(limit)
                .offset(offset)
            )
            items = [_view(r._mapping) for r in rows]
        return Page(total, items, limit, offset)

    def package_history(self, name: str) -> list[ReleaseView]:
        """Every release of a project (canonical name), newest first, each with its latest
        finished scan (without findings)."""
        cname = canonicalize_name(name)
        j = releases.outerjoin(scans, releases.c.latest_scan_id == scans.c.id)
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(releases, *[c.label(f"s_{c.name}") for c in scans.c])
                .select_from(j)
                .where(releases.c.name == cname)
                .order_by(releases.c.first_seen.desc(), releases.c.id.desc())
            )
            return [_view(r._mapping) for r in rows]

    def list_scans(
        self, *, status: str | None = None, limit: int = 100, offset: int = 0
    ) -> list[Scan]:
        """Scans, newest first (without documents or findings)."""
        stmt = sa.select(scans).order_by(scans.c.id.desc()).limit(limit).offset(offset)
        if status is not None:
            stmt = stmt.where(scans.c.status == status)
        with self.engine.connect() as conn:
            return [_scan(r._mapping, with_result=False) for r in conn.execute(stmt)]

    def counts(self) -> dict[str, int]:
        """Scans per status and per verdict (``status:queued``, ``verdict:malicious``…),
        ``releases`` and ``scans``."""
        out: dict[str, int] = {f"status:{s}": 0 for s in SCAN_STATUSES}
        with self.engine.connect() as conn:
            for status, n in conn.execute(
                sa.select(scans.c.status, sa.func.count()).group_by(scans.c.status)
            ):
                out[f"status:{status}"] = int(n)
            for verdict, n in conn.execute(
                sa.select(scans.c.verdict, sa.func.count())
                .where(scans.c.verdict.is_not(None))
                .group_by(scans.c.verdict)
            ):
                out[f"verdict:{verdict}"] = int(n)
            out["releases"] = int(
                conn.execute(sa.select(sa.func.count()).select_from(releases)).scalar_one()
            )
        out["scans"] = sum(out[f"status:{s}"] for s in SCAN_STATUSES)
        return out

    # -- similar releases ---------------------------------------------------------------------

    def fingerprint(self, release_id: int) -> tuple[int, ...] | None:
        """The MinHash code signature of a release, if its code had any meaningful line."""
        with self.engine.connect() as conn:
            sig = conn.execute(
                sa.select(fingerprints.c.signature).where(fingerprints.c.release_id == release_id)
            ).scalar()
        return tuple(json.loads(sig)) if sig else None

    def similar_releases(
        self, release_id: int, limit: int = 20, threshold: float = SIMILARITY_THRESHOLD
    ) -> list[SimilarRelease]:
        """Other releases whose code is near-identical to this one's (the same campaign):
        candidates share an LSH band of the MinHash signature (:mod:`pkgvet.ml.campaigns`),
        and are kept when their estimated Jaccard similarity is at least ``threshold``; most
        similar first."""
        from pkgvet.ml.campaigns import estimated_jaccard

        mine = self.fingerprint(release_id)
        if mine is None:
            return []
        fb2 = fingerprint_bands.alias("fb2")
        with self.engine.connect() as conn:
            cand = (
                sa.select(fb2.c.release_id)
                .select_from(
                    fingerprint_bands.join(
                        fb2,
                        sa.and_(
                            fingerprint_bands.c.band == fb2.c.band,
                            fingerprint_bands.c.value == fb2.c.value,
                        ),
                    )
                )
                .where(fingerprint_bands.c.release_id == release_id, fb2.c.release_id != release_id)
                .distinct()
                .limit(5000)
            )
            ids = [int(i) for i in conn.execute(cand).scalars()]
            if not ids:
                return []
            rows = conn.execute(
                sa.select(releases, fingerprints.c.signature, scans.c.verdict)
                .select_from(
                    releases.join(
                        fingerprints, fingerprints.c.release_id == releases.c.id
                    ).outerjoin(scans, releases.c.latest_scan_id == scans.c.id)
                )
                .where(releases.c.id.in_(ids))
            ).all()
        out = []
        for r in rows:
            sim = estimated_jaccard(mine, json.loads(r.signature))
            if sim >= threshold:
                out.append(SimilarRelease(_release(r._mapping), sim, r.verdict))
        out.sort(key=lambda s: (-s.similarity, s.release.id))
        return out[:limit]

    # -- decisions ------------------------------------------------------------------------------

    def record_decision(
        self, release_id: int, label: str, note: str = "", actor: str = "anonymous"
    ) -> Decision:
        """Record a triage label on a release (``malicious`` or ``false_positive``); every
        decision is kept (the latest one counts)."""
        if label not in DECISION_LABELS:
            raise ValueError(f"label must be one of {', '.join(DECISION_LABELS)}")
        now = _now()
        with self._write() as conn:
            rel = conn.execute(
                sa.select(
                    releases.c.name, releases.c.version, releases.c.filename, releases.c.sha256
                ).where(releases.c.id == release_id)
            ).first()
            if rel is None:
                raise KeyError(release_id)
            rid = conn.execute(
                decisions.insert()
                .values(
                    release_id=release_id,
                    label=label,
                    note=db_text(note),
                    actor=db_text(actor)[:128],
                    created_at=now,
                )
                .returning(decisions.c.id)
            ).scalar_one()
        return Decision(
            int(rid),
            release_id,
            label,
            note,
            actor,
            now,
            rel.name,
            rel.version,
            rel.filename,
            rel.sha256,
        )

    def decisions_of(self, release_id: int) -> list[Decision]:
        """The decisions on one release, oldest first."""
        return list(self.iter_decisions(release_id=release_id))

    def iter_decisions(
        self, *, release_id: int | None = None, latest_only: bool = False
    ) -> Iterator[Decision]:
        """Decisions (all, or one release's) in the order they were made, with the release's
        name, version, file name and sha256; with ``latest_only``, only each release's latest
        decision."""
        stmt = (
            sa.select(
                decisions,
                releases.c.name,
                releases.c.version,
                releases.c.filename,
                releases.c.sha256,
            )
            .select_from(decisions.join(releases, decisions.c.release_id == releases.c.id))
            .order_by(decisions.c.id)
        )
        if release_id is not None:
            stmt = stmt.where(decisions.c.release_id == release_id)
        if latest_only:
            latest = (
                sa.select(sa.func.max(decisions.c.id))
                .group_by(decisions.c.release_id)
                .scalar_subquery()
            )
            stmt = stmt.where(decisions.c.id.in_(latest))
        with self.engine.connect() as conn:
            rows = conn.execute(stmt).all()
        for r in rows:
            yield Decision(
                int(r.id),
                int(r.release_id),
                r.label,
                r.note,
                r.actor,
                _aware(r.created_at),
                r.name,
                r.version,
                r.filename,
                r.sha256,
            )

    # -- API tokens ---------------------------------------------------------------------------

    def add_token(self, name: str, token_sha256: str) -> Token:
        """Store a token's hash under ``name`` (names need not be unique)."""
        now = _now()
        with self._write() as conn:
            tid = conn.execute(
                api_tokens.insert()
                .values(name=db_text(name)[:128], token_sha256=token_sha256, created_at=now)
                .returning(api_tokens.c.id)
            ).scalar_one()
        return Token(int(tid), name, now, None)

    def token_by_hash(self, token_sha256: str) -> Token | None:
        """The token with this hash (revoked or not), or None."""
        with self.engine.connect() as conn:
            r = conn.execute(
                sa.select(api_tokens).where(api_tokens.c.token_sha256 == token_sha256)
            ).first()
        return _token(r._mapping) if r is not None else None

    def revoke_tokens(self, name: str) -> int:
        """Revoke every active token named ``name``; how many were revoked."""
        with self._write() as conn:
            res = conn.execute(
                api_tokens.update()
                .where(api_tokens.c.name == name, api_tokens.c.revoked_at.is_(None))
                .values(revoked_at=_now())
            )
            return int(res.rowcount or 0)

    def list_tokens(self) -> list[Token]:
        """Every token record, oldest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(api_tokens).order_by(api_tokens.c.id))
            return [_token(r._mapping) for r in rows]

    # -- the watcher ---------------------------------------------------------------------------

    def watch_cursor(self, feed: str) -> str | None:
        """The watcher's saved position in ``feed`` (e.g. the last changelog serial)."""
        with self.engine.connect() as conn:
            return conn.execute(
                sa.select(watch_state.c.cursor).where(watch_state.c.feed == feed)
            ).scalar()

    def set_watch_cursor(self, feed: str, cursor: str | None) -> None:
        """Save the watcher's position in ``feed``."""
        now = _now()
        with self._write() as conn:
            done = conn.execute(
                watch_state.update()
                .where(watch_state.c.feed == feed)
                .values(cursor=cursor, updated_at=now)
            ).rowcount
            if not done:
                _insert_ignore(
                    conn,
                    watch_state,
                    {"feed": feed, "cursor": cursor, "updated_at": now},
                    ("feed",),
                    returning=False,
                )

    def mark_seen(self, feed: str, name: str, version: str) -> bool:
        """Remember that the watcher handled ``name`` ``version`` of ``feed``; True when it had
        not before (insert-or-ignore: two watchers never both get True)."""
        with self._write() as conn:
            rid = _insert_ignore(
                conn,
                watch_seen,
                {
                    "feed": feed,
                    "name": canonicalize_name(name),
                    "version": version,
                    "seen_at": _now(),
                },
                ("feed", "name", "version"),
            )
        return rid is not None

    def is_seen(self, feed: str, name: str, version: str) -> bool:
        """Whether :meth:`mark_seen` was called for ``name`` ``version`` of ``feed``."""
        with self.engine.connect() as conn:
            return (
                conn.execute(
                    sa.select(watch_seen.c.id).where(
                        watch_seen.c.feed == feed,
                        watch_seen.c.name == canonicalize_name(name),
                        watch_seen.c.version == version,
                    )
                ).first()
                is not None
            )


# -- helpers ---------------------------------------------------------------------------------


class _WriteTx:
    """``with store._write() as conn``: the process-wide write lock and one transaction;
    database errors become :class:`ServiceStoreError`."""

    def __init__(self, store: ServiceStore) -> None:
        self.store = store
        self._ctx: Any = None

    def __enter__(self) -> Connection:
        self.store._lock.acquire()
        try:
            self._ctx = self.store.engine.begin()
            conn: Connection = self._ctx.__enter__()
        except BaseException:
            self.store._lock.release()
            raise
        return conn

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        try:
            self._ctx.__exit__(exc_type, exc, tb)
        except SQLAlchemyError as err:
            why = brief_error(err)
            raise ServiceStoreError(f"cannot write to the service database: {why}") from err
        finally:
            self.store._lock.release()
        if isinstance(exc, SQLAlchemyError):
            why = brief_error(exc)
            raise ServiceStoreError(f"cannot write to the service database: {why}") from exc


def make_engine(url: str) -> Engine:
    """An engine for ``url`` (SQLite: WAL, a busy timeout and foreign keys on every
    connection)."""
    try:
        if url.startswith("sqlite"):
            engine = sa.create_engine(url, connect_args={"check_same_thread": False})
            sa.event.listen(engine, "connect", sqlite_pragmas)
        else:
            engine = sa.create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)
    except (SQLAlchemyError, ImportError, ValueError) as exc:
        raise ServiceStoreError(f"cannot use the database {url!r}: {brief_error(exc)}") from exc
    return engine


def _insert_ignore(
    conn: Connection,
    table: sa.Table,
    values: Mapping[str, Any],
    conflict: Sequence[str],
    *,
    returning: bool = True,
) -> int | None:
    """Insert ``values`` unless a row with the same ``conflict`` columns exists; the new row's
    id, or None when nothing was inserted."""
    dialect = conn.dialect.name
    if dialect in ("sqlite", "postgresql"):
        from sqlalchemy.dialects import postgresql, sqlite

        ins = sqlite.insert(table) if dialect == "sqlite" else postgresql.insert(table)
        stmt = ins.values(**values).on_conflict_do_nothing(index_elements=list(conflict))
        if not returning:
            conn.execute(stmt)
            return None
        pk = next(iter(table.primary_key.columns))
        got = conn.execute(stmt.returning(pk)).scalar()
        return int(got) if got is not None else None
    try:  # another database: a savepoint, and the unique constraint decides
        with conn.begin_nested():
            res = conn.execute(table.insert().values(**values))
    except IntegrityError:
        return None
    pk_values = res.inserted_primary_key
    return int(pk_values[0]) if returning and pk_values else None


def _queue(
    conn: Connection,
    release_id: int | None,
    source: str,
    requested: str | None,
    key: str | None,
    force: bool,
    submitted_by: str | None,
    now: datetime,
) -> Submitted:
    values = {
        "release_id": release_id,
        "status": "queued",
        "source": source,
        "requested": db_text(requested)[:600] if requested else None,
        "dedupe_key": key,
        "forced": force,
        "submitted_by": db_text(submitted_by)[:128] if submitted_by else None,
        "submitted_at": now,
    }
    if key is None:
        sid = conn.execute(scans.insert().values(**values).returning(scans.c.id)).scalar_one()
        return Submitted(int(sid), release_id, True)
    sid = _insert_ignore(conn, scans, values, ("dedupe_key",))
    if sid is not None:
        return Submitted(sid, release_id, True)
    existing = conn.execute(
        sa.select(scans.c.id, scans.c.release_id).where(scans.c.dedupe_key == key)
    ).one()
    rid = existing.release_id
    return Submitted(int(existing.id), int(rid) if rid is not None else None, False)


def _store_fingerprint(conn: Connection, release_id: int, signature: Sequence[int]) -> None:
    from pkgvet.ml.campaigns import MAX_HASH

    sig = [int(v) for v in signature]
    if not sig or all(v == MAX_HASH for v in sig) or len(sig) % BANDS:
        return  # no meaningful code line: it would match every other empty package
    conn.execute(fingerprints.delete().where(fingerprints.c.release_id == release_id))
    conn.execute(fingerprint_bands.delete().where(fingerprint_bands.c.release_id == release_id))
    conn.execute(fingerprints.insert().values(release_id=release_id, signature=json.dumps(sig)))
    rows = len(sig) // BANDS
    bands = []
    for b in range(BANDS):
        part = ",".join(str(v) for v in sig[b * rows : (b + 1) * rows])
        value = hashlib.sha256(part.encode()).hexdigest()[:16]
        bands.append({"release_id": release_id, "band": b, "value": value})
    conn.execute(fingerprint_bands.insert(), bands)


def _finding_row(scan_id: int, f: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "scan_id": scan_id,
        "rule_id": db_text(f.get("rule_id", ""))[:32],
        "title": db_text(f.get("title", "")),
        "severity": f.get("severity", ""),
        "confidence": f.get("confidence", ""),
        "category": f.get("category", ""),
        "trigger": f.get("trigger", ""),
        "path": db_text(f.get("path", "")),
        "line": int(f.get("line") or 0),
        "message": db_text(f.get("message", "")),
        "snippet": db_text(f.get("snippet", "")),
        "evidence": db_text(f.get("evidence", "")),
        "decoded_depth": int(f.get("decoded_depth") or 0),
    }


def _release(m: Mapping[Any, Any]) -> Release:
    return Release(
        id=int(m["id"]),
        name=m["name"],
        version=m["version"],
        filename=m["filename"],
        sha256=m["sha256"],
        size=int(m["size"] or 0),
        first_seen=_aware(m["first_seen"]),
        blob_path=m["blob_path"],
        latest_scan_id=m["latest_scan_id"],
    )


def _scan(
    m: Mapping[Any, Any],
    *,
    with_result: bool,
    findings: list[FindingRow] | None = None,
    prefix: str = "",
) -> Scan:
    def g(k: str) -> Any:
        return m[prefix + k]

    doc = g("result_json") if with_result else None
    submitted = g("submitted_at")
    return Scan(
        id=int(g("id")),
        release_id=g("release_id"),
        status=g("status"),
        source=g("source"),
        requested=g("requested"),
        forced=bool(g("forced")),
        verdict=g("verdict"),
        score=g("score"),
        categories=json.loads(g("categories")) if g("categories") else [],
        triggers=json.loads(g("triggers")) if g("triggers") else [],
        max_severity=g("max_severity"),
        model_version=g("model_version"),
        pkgvet_version=g("pkgvet_version"),
        error=g("error"),
        submitted_by=g("submitted_by"),
        submitted_at=_aware(submitted),
        started_at=_aware(g("started_at")) if g("started_at") else None,
        finished_at=_aware(g("finished_at")) if g("finished_at") else None,
        result=json.loads(doc) if doc else None,
        findings=findings,
    )


def _view(m: Mapping[Any, Any]) -> ReleaseView:
    release = _release(m)
    scan = _scan(m, with_result=False, prefix="s_") if m["s_id"] is not None else None
    return ReleaseView(release, scan)


def _token(m: Mapping[Any, Any]) -> Token:
    revoked = m["revoked_at"]
    return Token(
        int(m["id"]), m["name"], _aware(m["created_at"]), _aware(revoked) if revoked else None
    )


def _scan_waiting(release: Any) -> sa.Exists:
    """Whether a scan of ``release`` (an id, or the releases table's id column) is queued or
    running."""
    return (
        sa.select(scans.c.id)
        .where(scans.c.release_id == release, scans.c.status.in_(("queued", "running")))
        .exists()
    )


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(value: datetime) -> datetime:
    """Timestamps come back naive from SQLite: they are UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC) if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
