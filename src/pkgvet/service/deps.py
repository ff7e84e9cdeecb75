"""FastAPI dependencies shared by the API and the triage pages: the objects
:func:`pkgvet.service.app.create_app` puts on ``app.state`` (``store``, ``queue``,
``settings``, ``index``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import Request

if TYPE_CHECKING:
    from pkgvet.collect.index import IndexClient
    from pkgvet.service.db import ServiceStore
    from pkgvet.service.jobs import ScanQueue
    from pkgvet.service.settings import ServiceSettings


def get_store(request: Request) -> ServiceStore:
    """The service database."""
    store: ServiceStore = request.app.state.store
    return store


def get_queue(request: Request) -> ScanQueue:
    """The scan queue (submit a scan id after :class:`~pkgvet.service.db.ServiceStore` queued
    it)."""
    queue: ScanQueue = request.app.state.queue
    return queue


def get_settings(request: Request) -> ServiceSettings:
    """The service settings."""
    settings: ServiceSettings = request.app.state.settings
    return settings


def get_index(request: Request) -> IndexClient:
    """The client of the index that name requests are fetched from (thread-safe)."""
    index: IndexClient = request.app.state.index
    return index
