"""``pkgvet serve``: a vetting service over the scan pipeline.

An HTTP API (FastAPI, under ``/api/v1``) to submit packages (an upload, or a name and version
fetched from the index), read scans and list releases by verdict, score, category and date; a
bounded pool of worker processes that scans them with a per-package time and memory budget; a
database (a SQLite file by default, PostgreSQL by URL) that keeps every result, finding, decoded
payload and model version, migrated with Alembic at startup.

Modules: :mod:`~pkgvet.service.settings` (configuration), :mod:`~pkgvet.service.db` (schema and
:class:`~pkgvet.service.db.ServiceStore`), :mod:`~pkgvet.service.jobs` (the worker pool),
:mod:`~pkgvet.service.auth` (API tokens), :mod:`~pkgvet.service.api` (the JSON API) and
:mod:`~pkgvet.service.app` (``create_app``). Needs the ``serve`` extra; nothing here is imported
by the other commands.
"""
