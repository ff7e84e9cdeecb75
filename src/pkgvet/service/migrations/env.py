"""Alembic environment: run the migrations on the connection :func:`pkgvet.service.migrate.upgrade`
hands over in ``config.attributes["connection"]`` (online only; no offline SQL generation)."""

from __future__ import annotations

from alembic import context

from pkgvet.service.db import metadata

config = context.config
connection = config.attributes.get("connection")
if connection is None:  # pragma: no cover - only run through pkgvet.service.migrate
    raise RuntimeError("run the service migrations through pkgvet.service.migrate.upgrade")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",  # ALTER TABLE by copy on SQLite
)
with context.begin_transaction():
    context.run_migrations()
