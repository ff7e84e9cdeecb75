"""``pkgvet serve``: the vetting service (API, worker pool, database, triage pages) in one
command, with an embedded SQLite database by default; ``pkgvet serve token create|revoke|list``
manages API tokens. FastAPI, uvicorn, Alembic and SQLAlchemy (the ``serve`` extra) are imported
only when these commands run. See docs/service.md.
"""

from __future__ import annotations

from typing import Any

import click

from pkgvet.errors import PkgvetError
from pkgvet.service.labels import labels_command


class ServeFailure(click.ClickException):
    """A service that cannot start, or a token command that failed: exit code 2."""

    exit_code = 2


def _need_extra() -> None:
    try:
        import alembic  # noqa: F401
        import fastapi  # noqa: F401
        import sqlalchemy  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise ServeFailure(
            f"'pkgvet serve' needs the serve extra (pip install 'pkgvet[serve]'): {exc}"
        ) from exc


_DB_HELP = (
    "The database: a SQLite file, or an SQLAlchemy URL such as "
    "postgresql+psycopg://user:pass@host/db. Default $PKGVET_DB_URL, else pkgvet-service.db."
)


@click.group("serve", invoke_without_command=True)
@click.option("--db", metavar="PATH|URL", default=None, help=_DB_HELP)
@click.option("--host", default=None, help="Address to listen on (default 127.0.0.1).")
@click.option("--port", type=int, default=None, help="TCP port (default 8000; 0: any free port).")
@click.option("--workers", type=int, default=None, help="Scan worker processes (default 2).")
@click.option(
    "--max-upload-mb", type=float, default=None, help="Largest accepted upload (default 50)."
)
@click.option(
    "--time-budget", type=float, default=None, help="Seconds of analysis per package (default 60)."
)
@click.option(
    "--hard-timeout",
    type=float,
    default=None,
    help="Seconds after which a worker with no result is killed (default 2 x budget + 30).",
)
@click.option(
    "--max-memory-mb",
    type=int,
    default=None,
    help="Address-space limit of each worker process (default 2048; 0: none).",
)
@click.option("--blob-dir", default=None, help="Where uploads are kept (default <db>.blobs).")
@click.option(
    "--keep-uploads-days",
    type=float,
    default=None,
    help="Days an uploaded file is kept after its last scan (default 30; 0: remove once "
    "scanned; inf: keep always).",
)
@click.option("--index-url", default=None, help="Index for name requests (default PyPI).")
@click.option("--no-model", is_flag=True, default=False, help="Rules-only verdicts.")
@click.option("--log-level", default="info", show_default=True, help="uvicorn's log level.")
@click.pass_context
def serve_command(
    ctx: click.Context,
    db: str | None,
    host: str | None,
    port: int | None,
    workers: int | None,
    max_upload_mb: float | None,
    time_budget: float | None,
    hard_timeout: float | None,
    max_memory_mb: int | None,
    blob_dir: str | None,
    keep_uploads_days: float | None,
    index_url: str | None,
    no_model: bool,
    log_level: str,
) -> None:
    """Run the vetting service: a JSON API under /api/v1 (OpenAPI at /docs), the triage pages,
    a bounded pool of scan workers, and a database (SQLite by default, PostgreSQL by URL).

    Submissions need an API token: create one with 'pkgvet serve token create NAME'.
    """
    ctx.ensure_object(dict)
    ctx.obj["db"] = db
    if ctx.invoked_subcommand is not None:
        return
    _need_extra()
    from pkgvet.service.settings import from_env

    try:
        settings = (
            from_env()
            .with_options(
                db_url=db,
                host=host,
                port=port,
                workers=workers,
                max_upload_mb=max_upload_mb,
                time_budget_s=time_budget,
                hard_timeout_s=hard_timeout,
                max_memory_mb=max_memory_mb,
                blob_dir=blob_dir,
                keep_uploads_days=keep_uploads_days,
                index_url=index_url,
                use_model=False if no_model else None,
            )
            .validate()
        )
    except PkgvetError as exc:
        raise ServeFailure(exc.diagnostics()) from exc
    _run(settings, log_level)


def _run(settings: Any, log_level: str) -> None:
    import uvicorn

    from pkgvet.service.app import create_app
    from pkgvet.service.db import ServiceStore

    try:  # fail early and clearly on a bad database, before uvicorn starts
        ServiceStore(settings.database_url).close()
    except PkgvetError as exc:
        raise ServeFailure(exc.diagnostics()) from exc
    click.echo(
        f"pkgvet serve: database {_redact(settings.database_url)}, uploads in {settings.blobs}, "
        f"{settings.workers} workers",
        err=True,
    )
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=log_level,
        timeout_graceful_shutdown=10,
    )


def _redact(url: str) -> str:
    """A URL without its password."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url


def _store(ctx: click.Context, db: str | None) -> Any:
    _need_extra()
    from pkgvet.service.db import ServiceStore
    from pkgvet.service.settings import from_env

    parent_db = (ctx.find_object(dict) or {}).get("db")
    settings = from_env().with_options(db_url=db or parent_db)
    try:
        return ServiceStore(settings.database_url)
    except PkgvetError as exc:
        raise ServeFailure(exc.diagnostics()) from exc


@serve_command.group("token")
def token_group() -> None:
    """API tokens: created at random, shown once, stored only as their sha256."""


@token_group.command("create")
@click.argument("name")
@click.option("--db", metavar="PATH|URL", default=None, help=_DB_HELP)
@click.pass_context
def token_create(ctx: click.Context, name: str, db: str | None) -> None:
    """Create a token named NAME and print it (it cannot be shown again)."""
    from pkgvet.service.auth import create_token

    store = _store(ctx, db)
    try:
        token = create_token(store, name)
    except (ValueError, PkgvetError) as exc:
        raise ServeFailure(str(exc)) from exc
    finally:
        store.close()
    click.echo(token)
    click.echo(f"token {name!r} created; it is shown only this once", err=True)


@token_group.command("revoke")
@click.argument("name")
@click.option("--db", metavar="PATH|URL", default=None, help=_DB_HELP)
@click.pass_context
def token_revoke(ctx: click.Context, name: str, db: str | None) -> None:
    """Revoke every active token named NAME (requests with it get 403)."""
    store = _store(ctx, db)
    try:
        n = store.revoke_tokens(name)
    finally:
        store.close()
    if n == 0:
        raise ServeFailure(f"no active token named {name!r}")
    click.echo(f"revoked {n} token(s) named {name!r}")


@token_group.command("list")
@click.option("--db", metavar="PATH|URL", default=None, help=_DB_HELP)
@click.pass_context
def token_list(ctx: click.Context, db: str | None) -> None:
    """List the tokens (names and dates; values are never stored)."""
    store = _store(ctx, db)
    try:
        tokens = store.list_tokens()
    finally:
        store.close()
    for t in tokens:
        state = f"revoked {t.revoked_at:%Y-%m-%d %H:%M}" if t.revoked_at else "active"
        click.echo(f"{t.id}\t{t.name}\t{t.created_at:%Y-%m-%d %H:%M}\t{state}")


serve_command.add_command(labels_command)  # `pkgvet serve labels export` (click + stdlib only)
