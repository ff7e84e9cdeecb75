"""Settings of ``pkgvet serve``: command-line options win over environment variables, which win
over the defaults below.

=========================  =============================  ===================================
setting                    environment variable           default
=========================  =============================  ===================================
``db_url``                 ``PKGVET_DB_URL``              ``./pkgvet-service.db`` (SQLite)
``blob_dir``               ``PKGVET_BLOB_DIR``            ``<db file>.blobs`` (SQLite), else
                                                          ``./pkgvet-service-blobs``
``host`` / ``port``        ``PKGVET_HOST`` /              ``127.0.0.1`` / ``8000``
                           ``PKGVET_PORT``
``workers``                ``PKGVET_WORKERS``             2 (scan worker processes)
``max_upload_mb``          ``PKGVET_MAX_UPLOAD_MB``       50
``time_budget_s``          ``PKGVET_TIME_BUDGET``         60 (per package, in the scan)
``hard_timeout_s``         ``PKGVET_HARD_TIMEOUT``        2 x budget + 30 (the worker is killed)
``max_memory_mb``          ``PKGVET_MAX_MEMORY_MB``       2048 (RLIMIT_AS of each worker)
``max_tasks_per_worker``   ``PKGVET_MAX_TASKS``           200 (then the worker is replaced)
``max_queued``             ``PKGVET_MAX_QUEUED``          10000 (more: 503, retry later)
``keep_uploads_days``      ``PKGVET_KEEP_UPLOADS_DAYS``   30 (after the last scan; ``inf``: always)
``index_url``              ``PKGVET_INDEX_URL``           ``$PIP_INDEX_URL``, else PyPI
``use_model``              ``PKGVET_NO_MODEL=1`` → off    on
``session_secret``         ``PKGVET_SESSION_SECRET``      random per start (UI sessions)
=========================  =============================  ===================================
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from pkgvet.errors import PkgvetError

DEFAULT_DB = "pkgvet-service.db"


class SettingsError(PkgvetError):
    """A setting with a value that cannot be used."""


@dataclass(frozen=True, slots=True)
class ServiceSettings:
    """Everything the service needs to start; see the module documentation."""

    db_url: str = DEFAULT_DB
    blob_dir: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 2
    max_upload_mb: float = 50.0
    time_budget_s: float = 60.0
    hard_timeout_s: float | None = None
    max_memory_mb: int = 2048
    max_tasks_per_worker: int = 200
    max_queued: int = 10_000
    keep_uploads_days: float = 30.0
    index_url: str | None = None
    use_model: bool = True
    session_secret: str | None = None  # signs the triage pages' session cookies

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    @property
    def hard_timeout(self) -> float:
        """Seconds after which a worker with no result is killed (its scan: an error)."""
        if self.hard_timeout_s is not None:
            return self.hard_timeout_s
        return 2 * self.time_budget_s + 30

    @property
    def database_url(self) -> str:
        from pkgvet.service.db import database_url

        return database_url(self.db_url)

    @property
    def blobs(self) -> Path:
        """Where uploaded files are kept (so that a restart can scan what was queued)."""
        if self.blob_dir:
            return Path(self.blob_dir).expanduser().resolve()
        url = self.database_url
        if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
            return Path(url.removeprefix("sqlite:///") + ".blobs")
        return Path("pkgvet-service-blobs").resolve()

    def validate(self) -> ServiceSettings:
        """These settings, or a :class:`SettingsError` naming the first bad one."""
        if not 0 <= self.port <= 65535:
            raise SettingsError(f"port {self.port}: not a TCP port")
        for name in ("workers", "max_tasks_per_worker", "max_queued"):
            if getattr(self, name) < 1:
                raise SettingsError(f"{name} must be at least 1")
        for name in ("max_upload_mb", "time_budget_s"):
            if getattr(self, name) <= 0:
                raise SettingsError(f"{name} must be positive")
        if self.hard_timeout_s is not None and self.hard_timeout_s <= 0:
            raise SettingsError("hard_timeout_s must be positive")
        if not self.keep_uploads_days >= 0:  # NaN too
            raise SettingsError("keep_uploads_days must be 0 or more (inf: keep uploads always)")
        if self.max_memory_mb < 0:
            raise SettingsError("max_memory_mb must be 0 (no limit) or more")
        return self

    def with_options(self, **options: Any) -> ServiceSettings:
        """These settings with the given options (None values ignored: not given)."""
        given = {k: v for k, v in options.items() if v is not None}
        return replace(self, **given)


_ENV: dict[str, tuple[str, type]] = {
    "db_url": ("PKGVET_DB_URL", str),
    "blob_dir": ("PKGVET_BLOB_DIR", str),
    "host": ("PKGVET_HOST", str),
    "port": ("PKGVET_PORT", int),
    "workers": ("PKGVET_WORKERS", int),
    "max_upload_mb": ("PKGVET_MAX_UPLOAD_MB", float),
    "time_budget_s": ("PKGVET_TIME_BUDGET", float),
    "hard_timeout_s": ("PKGVET_HARD_TIMEOUT", float),
    "max_memory_mb": ("PKGVET_MAX_MEMORY_MB", int),
    "max_tasks_per_worker": ("PKGVET_MAX_TASKS", int),
    "max_queued": ("PKGVET_MAX_QUEUED", int),
    "keep_uploads_days": ("PKGVET_KEEP_UPLOADS_DAYS", float),
    "index_url": ("PKGVET_INDEX_URL", str),
    "session_secret": ("PKGVET_SESSION_SECRET", str),
}


def from_env(env: Mapping[str, str] | None = None) -> ServiceSettings:
    """The defaults with the ``PKGVET_*`` environment variables applied."""
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    known = {f.name for f in fields(ServiceSettings)}
    for name, (var, kind) in _ENV.items():
        assert name in known
        raw = env.get(var)
        if raw is None or raw == "":
            continue
        try:
            values[name] = kind(raw)
        except ValueError as exc:
            raise SettingsError(f"${var}={raw!r}: not a valid {kind.__name__}") from exc
    if env.get("PKGVET_NO_MODEL", "") not in ("", "0"):
        values["use_model"] = False
    return ServiceSettings(**values)
