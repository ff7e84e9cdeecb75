"""How long ``pkgvet serve`` keeps uploaded files: :func:`prune_uploads` and the
:class:`Retention` thread that runs it.

An upload's bytes are kept in the blob directory so that a scan queued before a restart can
still run. Once every scan of the release has finished, they are needed only for a later
``force`` rescan, which sends the file again anyway. So a release's file is removed when its
last scan finished more than ``keep_uploads_days`` ago (default 30; ``0``: as soon as it is
scanned; ``inf``: never) and no scan of it is waiting or running; the release row, its scans and
findings stay. Files outside the blob directory (the watcher's download cache) are never
touched, nor is a file written or uploaded again within the last hour (:data:`GRACE_S`):
removing goes through a rename, and a file found freshly touched after it is put back, so an
upload of the same bytes racing the removal keeps its file. Partial uploads an interrupted
request left in ``tmp/`` are removed after the same hour.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pkgvet.service.db import ServiceStore

log = logging.getLogger("pkgvet.service")

GRACE_S = 3600.0  # a file touched this recently is never removed
INTERVAL_S = 3600.0  # how often the service looks for files to remove


@dataclass(slots=True)
class Pruned:
    """What one pass removed."""

    files: int = 0
    bytes: int = 0
    partial: int = 0  # interrupted uploads in tmp/


def prune_uploads(
    store: ServiceStore,
    root: Path,
    keep_days: float,
    *,
    now: float | None = None,
    grace_s: float = GRACE_S,
) -> Pruned:
    """Remove the kept uploads that the retention allows (see the module documentation)."""
    out = Pruned()
    if math.isinf(keep_days):
        return out
    now = time.time() if now is None else now
    root = root.resolve()
    trash_dir = root / "tmp"
    before = datetime.fromtimestamp(now - keep_days * 86400, UTC)
    for release_id, raw in store.kept_blobs(before):
        path = Path(raw)
        if not path.resolve().is_relative_to(root):
            continue  # not an upload (the watcher's downloads): not ours to remove
        try:
            st = path.stat()
        except FileNotFoundError:
            store.forget_blob(release_id, raw)  # removed by hand: record it
            continue
        if now - st.st_mtime < grace_s:
            continue  # uploaded again just now: a scan of it is about to be queued
        if not store.forget_blob(release_id, raw):
            continue  # a scan was queued meanwhile
        trash_dir.mkdir(parents=True, exist_ok=True)
        trash = trash_dir / f"removing-{release_id}"
        try:
            os.replace(path, trash)
        except FileNotFoundError:
            continue
        if now - trash.stat().st_mtime < grace_s:  # uploaded again between the two checks
            os.replace(trash, path)
            store.restore_blob(release_id, raw)
            continue
        trash.unlink()
        out.files += 1
        out.bytes += st.st_size
        with contextlib.suppress(OSError):  # the release's own directory, when empty
            path.parent.rmdir()
    if trash_dir.is_dir():
        for leftover in trash_dir.iterdir():
            with contextlib.suppress(OSError):
                if leftover.is_file() and now - leftover.stat().st_mtime >= grace_s:
                    leftover.unlink()
                    out.partial += 1
    return out


class Retention:
    """A daemon thread that runs :func:`prune_uploads` at start and every ``interval_s``."""

    def __init__(
        self, store: ServiceStore, root: Path, keep_days: float, interval_s: float = INTERVAL_S
    ) -> None:
        self.store = store
        self.root = root
        self.keep_days = keep_days
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if math.isinf(self.keep_days):
            return
        self._thread = threading.Thread(target=self._run, name="pkgvet-retention", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                pruned = prune_uploads(self.store, self.root, self.keep_days)
            except Exception:  # the database is unreachable: try again at the next pass
                log.exception("upload retention failed")
            else:
                if pruned.files or pruned.partial:
                    log.info(
                        "upload retention: removed %d scanned uploads (%.1f MB) and %d partial "
                        "uploads",
                        pruned.files,
                        pruned.bytes / 1e6,
                        pruned.partial,
                    )
            self._stop.wait(self.interval_s)
