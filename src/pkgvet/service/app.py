"""The ASGI application of ``pkgvet serve``: :func:`create_app`.

At startup (the lifespan) the database is opened and migrated, the scan queue is started and
every scan left ``queued`` or ``running`` by a previous run is queued again, and the upload
retention (:mod:`pkgvet.service.retention`) starts; at shutdown the workers are stopped.
``app.state`` holds ``settings``, ``store`` (:class:`ServiceStore`), ``queue``
(:class:`ScanQueue`) and ``index`` (the index client) for the routes (see
:mod:`pkgvet.service.deps`).

Routes: the JSON API (:mod:`pkgvet.service.api`, under ``/api/v1``) and the triage pages
(:mod:`pkgvet.service.ui`, when present). A request body larger than the upload cap (plus room
for the multipart envelope) is refused with 413 before it is read, whether it announces its
length or not; errors are JSON ``{"detail": ...}`` with a 4xx status.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from pkgvet import __version__
from pkgvet.service.settings import ServiceSettings

log = logging.getLogger("pkgvet.service")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

ENVELOPE_BYTES = 1024 * 1024  # multipart boundaries, headers and small fields


class _TooLarge(Exception):
    pass


class BodyLimit:
    """ASGI middleware: 413 for a request whose body is over ``max_bytes`` (by its
    ``Content-Length`` before anything is read, else as soon as the count passes it)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for key, value in scope.get("headers", []):
            if key == b"content-length":
                try:
                    length = int(value)
                except ValueError:
                    await _json_error(send, 400, "invalid Content-Length header")
                    return
                if length > self.max_bytes:
                    await _json_error(send, 413, self._message(length))
                    return
        seen = 0
        started = False

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _TooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted, tracking_send)
        except _TooLarge:
            if not started:
                await _json_error(send, 413, self._message(None))

    def _message(self, length: int | None) -> str:
        got = f"{length} bytes" if length is not None else "the request body"
        return f"{got}: over the {self.max_bytes}-byte request limit (upload cap + envelope)"


async def _json_error(send: Send, status: int, detail: str) -> None:
    import json

    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def create_app(settings: ServiceSettings | None = None) -> FastAPI:
    """The service application for ``settings`` (defaults and ``PKGVET_*`` variables when
    None)."""
    from pkgvet.service.settings import from_env

    settings = (settings or from_env()).validate()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from pkgvet.collect.index import IndexClient
        from pkgvet.service.db import ServiceStore
        from pkgvet.service.jobs import ScanQueue
        from pkgvet.service.retention import Retention

        store = ServiceStore(settings.database_url)
        settings.blobs.mkdir(parents=True, exist_ok=True)
        queue = ScanQueue(store, settings)
        retention = Retention(store, settings.blobs, settings.keep_uploads_days)
        app.state.store = store
        app.state.queue = queue
        # resolves unpinned name requests (quickly: the worker tries again if this fails)
        app.state.index = IndexClient(settings.index_url, timeout=10, retries=1)
        requeued = queue.start()
        if requeued:
            log.warning("queued %d unfinished scans of a previous run again", requeued)
        retention.start()
        try:
            yield
        finally:
            retention.stop()
            queue.stop()
            app.state.index.close()
            store.close()

    app = FastAPI(
        title="pkgvet service",
        version=__version__,
        description=(
            "Static vetting of Python packages: submit a file or a name, read verdicts, "
            "findings and decoded payloads. Nothing submitted is ever installed or run. "
            "Write endpoints need `Authorization: Bearer <token>`."
        ),
        lifespan=lifespan,
    )
    app.state.settings = settings
    from pkgvet.service.api import router

    app.include_router(router)
    ui = _optional_ui()
    if ui is not None:
        app.include_router(ui)
    app.add_middleware(BodyLimit, max_bytes=settings.max_upload_bytes + ENVELOPE_BYTES)
    return app


def _optional_ui() -> Any:
    """The triage pages' router, when :mod:`pkgvet.service.ui` is installed."""
    try:
        module = importlib.import_module("pkgvet.service.ui")
    except ModuleNotFoundError as exc:
        if exc.name != "pkgvet.service.ui":
            raise
        return None
    return getattr(module, "router", None)


__all__ = ["BodyLimit", "create_app"]
