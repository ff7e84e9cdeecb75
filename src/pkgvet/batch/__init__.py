"""``pkgvet batch``: scanning at index scale into a results store (see docs/batch.md).

- :mod:`pkgvet.batch.tasks`: sources (dataset trees, collector manifests, names files) expanded
  lazily into :class:`~pkgvet.batch.tasks.Task` objects, each with its store key;
- :mod:`pkgvet.batch.worker`: the per-package task run in a worker process (local or Dask);
- :mod:`pkgvet.batch.pool`: the local process pool (hard timeouts, memory limit, recycling);
- :mod:`pkgvet.batch.dask_engine`: the same tasks on a Dask distributed cluster;
- :mod:`pkgvet.batch.runner`: resume check, bounded submission and writing to the store.

Only :mod:`~pkgvet.batch.runner` imports SQLAlchemy, and only the Dask engine imports Dask.
"""
