"""Alembic migrations of the service database (applied by :func:`pkgvet.service.migrate.upgrade`;
no ``alembic.ini`` is needed). A new migration goes in ``versions/`` with the next number."""
