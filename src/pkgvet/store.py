"""A results store for scans at index scale: one row per scanned package, its findings, and the
full result as JSON, in any database SQLAlchemy Core 2.x speaks (a SQLite file by default).

Used by ``pkgvet batch``; written to be reused by a service (a class with ``add``, ``has``,
``get``, ``iter_results``, ``counts``). Needs the ``store`` extra (``pip install
'pkgvet[store]'``): this module imports SQLAlchemy at import time, so import it only where a
store is wanted.

Identity. Every row has a ``key``, unique: ``"<sha256> <label>"``, the sha256 of the package's
bytes (for an unpacked directory, a digest of its file names and contents; ``-`` when the bytes
could not be read) and the label of the target (its path below the batch source, or
``name==version (filename)`` for a manifest row or a fetched package). Writes are
insert-or-ignore on ``key`` and each call commits its own small transaction, so a killed writer
loses at most what it had not yet handed to :meth:`ResultStore.add`, and a rerun never
duplicates. ``job`` records the input entry a row came from (the label, or the ``NAME`` /
``NAME==VERSION`` text of a name), so entries whose key is only known after fetching can be
skipped on a rerun too.

No migrations framework: tables are created when missing, and a ``pkgvet_meta`` row records the
schema version; a store of another version is refused. Results are stored as JSON (schema of
``pkgvet scan --format json``), never pickled.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from pkgvet.batch.tasks import make_key
from pkgvet.errors import PkgvetError
from pkgvet.models import ScanResult
from pkgvet.report.json_format import result_to_dict

SCHEMA_VERSION = 1
VERDICTS = ("malicious", "suspicious", "clean", "error")

metadata = sa.MetaData()

meta_table = sa.Table(
    "pkgvet_meta",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("value", sa.String(256), nullable=False),
)

scans = sa.Table(
    "scans",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("key", sa.Text, nullable=False, unique=True),
    sa.Column("job", sa.Text, nullable=False, index=True),
    sa.Column("target", sa.Text, nullable=False),
    sa.Column("name", sa.Text, index=True),  # from the package metadata: any length
    sa.Column("version", sa.Text),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("sha256", sa.String(64), index=True),
    sa.Column("size", sa.BigInteger, nullable=False, default=0),
    sa.Column("verdict", sa.String(16), nullable=False, index=True),
    sa.Column("score", sa.Float, nullable=False, default=0.0),
    sa.Column("model_probability", sa.Float),
    sa.Column("model_version", sa.String(64)),
    sa.Column("max_severity", sa.String(16)),
    sa.Column("error", sa.Text),
    sa.Column("elapsed_ms", sa.Integer, nullable=False, default=0),
    sa.Column("scanned_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("result_json", sa.Text, nullable=False),
)

findings = sa.Table(
    "findings",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column(
        "scan_id",
        sa.Integer,
        sa.ForeignKey("scans.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    sa.Column("rule_id", sa.String(32), nullable=False, index=True),
    sa.Column("severity", sa.String(16), nullable=False),
    sa.Column("category", sa.String(32), nullable=False),
    sa.Column("trigger", sa.String(16), nullable=False),
    sa.Column("path", sa.Text, nullable=False),
    sa.Column("line", sa.Integer, nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("evidence", sa.Text, nullable=False),
)

# keys are checked against the store in chunks of this many (one query each)
_CHUNK = 500

__all__ = ["ResultStore", "StoreError", "database_url", "make_key"]


class StoreError(PkgvetError):
    """A store that cannot be opened or used (bad URL, unreachable server, other schema)."""


def database_url(db: str) -> str:
    """``db`` as an SQLAlchemy URL: anything with ``://`` is used as given (e.g.
    ``postgresql+psycopg://user@host/db``); anything else is a SQLite file path."""
    if "://" in db:
        return db
    return "sqlite:///" + str(Path(db).expanduser().resolve())


@dataclass(frozen=True, slots=True)
class Added:
    """What :meth:`ResultStore.add` did with one result."""

    key: str
    inserted: bool  # False: a row with this key was already there (nothing written)


class ResultStore:
    """Scan results in a database. Thread-safe for one writer; many processes may read."""

    def __init__(self, db: str | Engine) -> None:
        try:
            self.engine = db if isinstance(db, Engine) else _engine(database_url(db))
            metadata.create_all(self.engine)
            with self.engine.begin() as conn:
                self._check_version(conn)
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot open the results store: {brief_error(exc)}") from exc
        self._lock = threading.Lock()

    # -- setup -------------------------------------------------------------------------------

    @staticmethod
    def _check_version(conn: Connection) -> None:
        row = conn.execute(
            sa.select(meta_table.c.value).where(meta_table.c.name == "schema_version")
        ).first()
        if row is None:
            try:
                with conn.begin_nested():
                    conn.execute(
                        meta_table.insert().values(name="schema_version", value=str(SCHEMA_VERSION))
                    )
            except IntegrityError:  # another process created it at the same moment
                pass
        elif row.value != str(SCHEMA_VERSION):
            raise StoreError(
                f"the results store has schema version {row.value}; this pkgvet writes version "
                f"{SCHEMA_VERSION} (use another --db)"
            )

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing -----------------------------------------------------------------------------

    def add(
        self,
        result: ScanResult,
        key: str | None = None,
        job: str | None = None,
        *,
        replace_errors: bool = False,
    ) -> Added:
        """Store one result in its own transaction; see :meth:`add_many`."""
        return self.add_many([(result, key, job)], replace_errors=replace_errors)[0]

    def add_many(
        self,
        items: Iterable[tuple[ScanResult, str | None, str | None]],
        *,
        replace_errors: bool = False,
    ) -> list[Added]:
        """Store ``(result, key, job)`` items in one transaction, insert-or-ignore on key.

        ``key`` defaults to :func:`make_key` of the result's sha256 and target, ``job`` to the
        target. With ``replace_errors``, error rows of the same key or job are deleted
        first (a retry of what failed before)."""
        out: list[Added] = []
        rows = []
        for result, key, job in items:
            k = key or make_key(result.sha256, result.target)
            rows.append((result, k, job or result.target))
        with self._lock:
            try:
                with self.engine.begin() as conn:
                    for result, k, j in rows:
                        if replace_errors:
                            self._delete_errors(conn, k, j)
                        out.append(Added(k, self._insert(conn, result, k, j)))
            except SQLAlchemyError as exc:
                raise StoreError(f"cannot write to the results store: {brief_error(exc)}") from exc
        return out

    def _insert(self, conn: Connection, result: ScanResult, key: str, job: str) -> bool:
        values = _scan_row(result, key, job)
        dialect = conn.dialect.name
        scan_id: int | None
        if dialect in ("sqlite", "postgresql"):
            from sqlalchemy.dialects import postgresql, sqlite

            stmt = (
                sqlite.insert(scans) if dialect == "sqlite" else postgresql.insert(scans)
            ).values(**values)
            scan_id = conn.execute(
                stmt.on_conflict_do_nothing(index_elements=["key"]).returning(scans.c.id)
            ).scalar()
        else:  # any other database: look, then insert; a concurrent writer's row wins
            if conn.execute(sa.select(scans.c.id).where(scans.c.key == key)).first():
                return False
            try:
                with conn.begin_nested():
                    pk = conn.execute(scans.insert().values(**values)).inserted_primary_key
            except IntegrityError:
                return False
            scan_id = int(pk[0]) if pk else None
        if scan_id is None:
            return False
        rows = [_finding_row(scan_id, f) for f in result_to_dict(result)["findings"]]
        if rows:
            conn.execute(findings.insert(), rows)
        return True

    @staticmethod
    def _delete_errors(conn: Connection, key: str, job: str) -> None:
        ids = [
            r.id
            for r in conn.execute(
                sa.select(scans.c.id).where(
                    sa.or_(scans.c.key == key, scans.c.job == job), scans.c.verdict == "error"
                )
            )
        ]
        if ids:
            conn.execute(findings.delete().where(findings.c.scan_id.in_(ids)))
            conn.execute(scans.delete().where(scans.c.id.in_(ids)))

    # -- reading -----------------------------------------------------------------------------

    def has(self, key: str) -> bool:
        """Whether a result with this key is stored."""
        with self.engine.connect() as conn:
            stmt = sa.select(scans.c.id).where(scans.c.key == db_text(key))
            return conn.execute(stmt).first() is not None

    def done(
        self, keys: Iterable[str], *, by: Literal["key", "job"] = "key", errors: bool = True
    ) -> set[str]:
        """The given keys (or jobs, with ``by="job"``) that already have a result, queried in
        chunks; with ``errors=False`` error results do not count (they will be retried)."""
        column = scans.c.key if by == "key" else scans.c.job
        wanted = list(dict.fromkeys(db_text(k) for k in keys))
        found: set[str] = set()
        with self.engine.connect() as conn:
            for i in range(0, len(wanted), _CHUNK):
                stmt = sa.select(column).where(column.in_(wanted[i : i + _CHUNK]))
                if not errors:
                    stmt = stmt.where(scans.c.verdict != "error")
                found.update(str(v) for v in conn.execute(stmt).scalars())
        return found

    def get(self, key: str) -> dict[str, Any] | None:
        """The stored result of ``key`` (the JSON document of one result, plus ``key``,
        ``job`` and ``scanned_at``), or None."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(scans).where(scans.c.key == db_text(key))).first()
        return _document(row._mapping) if row is not None else None

    def iter_results(
        self,
        *,
        verdict: str | None = None,
        name: str | None = None,
        order_by: Literal["id", "key"] = "key",
        after: str | int | None = None,
        limit: int | None = None,
        batch_size: int = 500,
    ) -> Iterator[dict[str, Any]]:
        """Stored results (as :meth:`get` returns them), filtered by verdict and package name,
        in key order (deterministic) or insertion order (``order_by="id"``). ``after`` is the
        last key (or id) already seen: keyset pagination for a service. Rows are read in pages
        of ``batch_size``, so the whole store is never in memory."""
        column = scans.c.key if order_by == "key" else scans.c.id
        cursor: str | int | None = after
        left = limit
        while left is None or left > 0:
            page = batch_size if left is None else min(batch_size, left)
            stmt = sa.select(scans).order_by(column).limit(page)
            if verdict is not None:
                stmt = stmt.where(scans.c.verdict == verdict)
            if name is not None:
                stmt = stmt.where(scans.c.name == name)
            if cursor is not None:
                stmt = stmt.where(column > cursor)
            with self.engine.connect() as conn:
                rows = [r._mapping for r in conn.execute(stmt)]
            for row in rows:
                yield _document(row)
            if len(rows) < page:
                return
            cursor = rows[-1]["key" if order_by == "key" else "id"]
            if left is not None:
                left -= len(rows)

    def counts(self) -> dict[str, int]:
        """Stored results per verdict (every verdict present, zero when none), and ``total``."""
        out = dict.fromkeys(VERDICTS, 0)
        with self.engine.connect() as conn:
            for verdict, n in conn.execute(
                sa.select(scans.c.verdict, sa.func.count()).group_by(scans.c.verdict)
            ):
                out[str(verdict)] = int(n)
        out["total"] = sum(out[v] for v in out)
        return out

    def findings_of(self, key: str) -> list[dict[str, Any]]:
        """The finding rows of one stored result (rule, severity, path, line…)."""
        stmt = (
            sa.select(findings)
            .join(scans, findings.c.scan_id == scans.c.id)
            .where(scans.c.key == key)
            .order_by(findings.c.id)
        )
        with self.engine.connect() as conn:
            return [
                {k: v for k, v in r._mapping.items() if k not in ("id", "scan_id")}
                for r in conn.execute(stmt)
            ]


def _engine(url: str) -> Engine:
    try:
        engine = sa.create_engine(url)
    except (SQLAlchemyError, ImportError, ValueError) as exc:
        raise StoreError(f"cannot use the database {url!r}: {brief_error(exc)}") from exc
    if engine.dialect.name == "sqlite":
        sa.event.listen(engine, "connect", sqlite_pragmas)
    return engine


def sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    """WAL, so readers (a service, a test polling progress) never block the writer; commits
    without fsync each (the WAL is synced at checkpoints); wait for locks instead of failing."""
    cur = dbapi_conn.cursor()
    try:
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA foreign_keys=ON")
    finally:
        cur.close()


def brief_error(exc: BaseException) -> str:
    """The first line of an error's text, capped: what a message about a database shows."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:300]


def db_text(value: Any) -> Any:
    """Text any database takes: lone surrogates (undecodable file names) become ``?`` and NUL
    (refused by PostgreSQL) ``\\x00``; other values unchanged."""
    if not isinstance(value, str):
        return value
    return value.encode("utf-8", "replace").decode("utf-8").replace("\x00", "\\x00")


def _scan_row(result: ScanResult, key: str, job: str) -> dict[str, Any]:
    doc = result_to_dict(result)
    row = {
        "key": key,
        "job": job,
        "target": result.target,
        "name": result.package.name,
        "version": result.package.version,
        "kind": result.kind,
        "sha256": result.sha256,
        "size": result.size,
        "verdict": result.verdict.value,
        "score": result.score,
        "model_probability": result.model_probability,
        "model_version": result.model_version,
        "max_severity": result.max_severity.value if result.max_severity else None,
        "error": result.error,
        "elapsed_ms": round(result.duration_s * 1000),
        "scanned_at": datetime.now(UTC),
        "result_json": json.dumps(doc, ensure_ascii=False, sort_keys=True),
    }
    return {k: db_text(v) for k, v in row.items()}


def _finding_row(scan_id: int, f: Mapping[str, Any]) -> dict[str, Any]:
    row = {
        "scan_id": scan_id,
        "rule_id": f["rule_id"],
        "severity": f["severity"],
        "category": f["category"],
        "trigger": f["trigger"],
        "path": f["path"],
        "line": f["line"],
        "message": f["message"],
        "evidence": f["evidence"],
    }
    return {k: db_text(v) for k, v in row.items()}


def _document(row: Mapping[Any, Any]) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(row["result_json"])
    at = row["scanned_at"]
    if isinstance(at, datetime) and at.tzinfo is None:  # SQLite keeps no zone: it was UTC
        at = at.replace(tzinfo=UTC)
    doc["key"] = row["key"]
    doc["job"] = row["job"]
    doc["scanned_at"] = at.isoformat() if isinstance(at, datetime) else str(at)
    return doc
