"""Apply the service's Alembic migrations in code: a :class:`alembic.config.Config` built here
(``script_location`` is the ``migrations`` directory shipped in the package), so users need no
``alembic.ini``. Run at every server start; a database already at the latest revision is left
as it is."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Engine

MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config() -> Config:
    """The Alembic configuration of the service database (for ``upgrade``, ``current``…)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the database of ``engine`` to ``revision`` (the latest by default), in one
    transaction where the database allows it."""
    config = alembic_config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, revision)


def current(engine: Engine) -> str | None:
    """The revision the database is at (None: not migrated yet)."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()
