"""How long ``pkgvet serve`` keeps uploaded files (:mod:`pkgvet.service.retention`): on the
store directly, once on SQLite and once on PostgreSQL, and end to end through a real server."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from service_helpers import Server, dropper, make_token, upload, wait_scan

pytest.importorskip("sqlalchemy")
pytest.importorskip("alembic")

DAY = 86400.0
DOC = {"tool": {"version": "t"}, "results": [{"verdict": "clean", "findings": []}]}


def store_now(offset_s: float) -> datetime:
    return datetime.fromtimestamp(time.time() + offset_s, UTC)


def _kept(store, root: Path, name: str, *, finish: bool = True) -> tuple[int, int, Path]:
    """A release uploaded as ``name`` into ``root`` (and scanned when ``finish``), its file
    dated two hours back: (release id, scan id, file)."""
    path = root / "ab" / f"ab{name}" / name
    path.parent.mkdir(parents=True)
    path.write_bytes(b"inert bytes of " + name.encode())
    old = time.time() - 7200
    os.utime(path, (old, old))
    sub = store.submit_upload(
        filename=name, sha256=f"{name:0>64}"[:64], size=20, blob_path=str(path)
    )
    if finish:
        store.finish_scan(sub.scan_id, DOC)
    return sub.release_id, sub.scan_id, path


def test_scanned_uploads_are_removed_after_the_retention(db_url: str, tmp_path: Path) -> None:
    from pkgvet.service.db import ServiceStore
    from pkgvet.service.retention import prune_uploads

    root = tmp_path / "blobs"
    outside = tmp_path / "watch-cache" / "w-1.0.tar.gz"  # the watcher's downloads
    outside.parent.mkdir()
    outside.write_bytes(b"not an upload")
    os.utime(outside, (time.time() - 7200,) * 2)
    with ServiceStore(db_url) as store:
        done_id, done_scan, done = _kept(store, root, "a-1.0.tar.gz")
        waiting_id, _, waiting = _kept(store, root, "b-1.0.tar.gz", finish=False)
        fresh_id, _, fresh = _kept(store, root, "c-1.0.tar.gz")
        sub = store.submit_upload(
            filename=outside.name, sha256="d" * 64, size=13, blob_path=str(outside)
        )
        store.finish_scan(sub.scan_id, DOC)
        (root / "tmp").mkdir()
        partial = root / "tmp" / "upload-x"
        partial.write_bytes(b"half")
        os.utime(partial, (time.time() - 7200,) * 2)
        live = root / "tmp" / "upload-y"
        live.write_bytes(b"being written")

        # finished just now: a 30-day retention keeps everything but the stale partial upload
        first = prune_uploads(store, root, 30)
        assert (first.files, first.partial) == (0, 1)
        assert done.is_file() and not partial.exists() and live.exists()
        # a day later with a retention of half a day; c was uploaded again a minute before
        then = time.time() + DAY
        os.utime(fresh, (then - 60, then - 60))
        later = prune_uploads(store, root, 0.5, now=then)
        assert (later.files, later.bytes) == (1, len(b"inert bytes of a-1.0.tar.gz"))
        assert not done.exists() and not done.parent.exists()
        assert waiting.is_file() and fresh.is_file() and outside.is_file()
        assert store.kept_blobs(store_now(DAY)) == [
            (fresh_id, str(fresh)),
            (sub.release_id, str(outside)),
        ]
        # the release and its scan stay; only the bytes are gone
        assert store.get_scan(done_scan, with_result=False, with_findings=False) is not None
        gone = store.release_by_file(f"{done.name:0>64}"[:64], done.name)
        assert gone is not None and gone.id == done_id and gone.blob_path is None
        assert waiting_id not in {r for r, _ in store.kept_blobs(store_now(DAY))}
        # inf keeps everything
        assert prune_uploads(store, root, float("inf"), now=time.time() + 100 * DAY).files == 0
        assert fresh.is_file()


def test_a_file_removed_by_hand_is_recorded(db_url: str, tmp_path: Path) -> None:
    from pkgvet.service.db import ServiceStore
    from pkgvet.service.retention import prune_uploads

    root = tmp_path / "blobs"
    with ServiceStore(db_url) as store:
        release_id, _, path = _kept(store, root, "e-1.0.tar.gz")
        path.unlink()
        assert prune_uploads(store, root, 0, now=time.time() + 60).files == 0
        assert store.kept_blobs(store_now(DAY)) == []
        # an upload of the same bytes later records the file again
        store.submit_upload(
            filename=path.name, sha256=f"{path.name:0>64}"[:64], size=20, blob_path=str(path)
        )
        again = store.release_by_file(f"{path.name:0>64}"[:64], path.name)
        assert again is not None and again.id == release_id and again.blob_path == str(path)


@pytest.mark.parametrize("bad", ["-1", "nan", "soon"])
def test_the_retention_setting_is_checked(bad: str) -> None:
    from pkgvet.service.settings import SettingsError, from_env

    with pytest.raises(SettingsError):
        from_env({"PKGVET_KEEP_UPLOADS_DAYS": bad}).validate()
    assert from_env({"PKGVET_KEEP_UPLOADS_DAYS": "inf"}).validate().keep_uploads_days > 1e300
    assert from_env({}).keep_uploads_days == 30


def test_the_server_removes_scanned_uploads_and_takes_them_again(tmp_path: Path) -> None:
    pytest.importorskip("fastapi")
    db = str(tmp_path / "svc.db")
    token = make_token(db, "tester")
    base = ["--no-model", "--workers", "1"]
    server = Server(db, tmp_path, base, {}).start()
    try:
        with server.client(token) as c:
            data = dropper(salt="retention")
            first = upload(c, "zzdropper-1.0.tar.gz", data).json()
            wait_scan(c, first["scan_id"])
    finally:
        server.stop()
    blobs = list((tmp_path / "blobs").glob("*/*/zzdropper-1.0.tar.gz"))
    assert len(blobs) == 1
    os.utime(blobs[0], (time.time() - 7200,) * 2)  # past the one-hour grace

    server = Server(db, tmp_path, [*base, "--keep-uploads-days", "0"], {}).start()
    try:
        deadline = time.monotonic() + 60
        while blobs[0].exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not blobs[0].exists()  # removed at start: scanned, and kept 0 days
        with server.client(token) as c:
            rel = c.get(f"/api/v1/releases/{first['release_id']}").json()
            assert rel["latest_scan_id"] == first["scan_id"]  # the scan and its result stay
            again = upload(c, "zzdropper-1.0.tar.gz", data, force=True).json()
            assert again["release_id"] == first["release_id"]
            assert wait_scan(c, again["scan_id"])["verdict"] == "malicious"
    finally:
        server.stop()


def test_an_upload_racing_the_removal_keeps_its_file(db_url: str, tmp_path: Path) -> None:
    from pkgvet.service.db import ServiceStore
    from pkgvet.service.retention import prune_uploads

    root = tmp_path / "blobs"
    with ServiceStore(db_url) as store:
        release_id, _, path = _kept(store, root, "f-1.0.tar.gz")
        then = time.time() + DAY
        forget = store.forget_blob

        def forget_then_upload_again(rid: int, raw: str) -> bool:
            done = forget(rid, raw)
            os.utime(path, (then, then))  # the same bytes arrive while the file is removed
            return done

        store.forget_blob = forget_then_upload_again  # type: ignore[method-assign]
        assert prune_uploads(store, root, 0, now=then).files == 0
        assert path.read_bytes() == b"inert bytes of f-1.0.tar.gz"
        kept = store.release_by_file(f"{path.name:0>64}"[:64], path.name)
        assert kept is not None and kept.id == release_id and kept.blob_path == str(path)
