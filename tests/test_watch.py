"""``pkgvet watch`` against loopback servers only: an RSS feed in PyPI's shapes, the collector's
fake JSON index serving inert packages, and a webhook receiver. Checks that new releases are
scanned and stored once, that a restart (also after a crash between storing and marking seen)
rescans nothing, and that flagged releases reach the webhook.

Packages are inert (``os.system`` on an ``echo``, a base64 payload that is ``print(1)``)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("sqlalchemy")
pytest.importorskip("alembic")

from click.testing import CliRunner

from pkgvet.cli import cli
from pkgvet.watch.feeds import (
    FeedError,
    parse_rss,
    parse_simple_links,
    version_of,
)
from service_helpers import clean, dropper
from test_collect import FakeIndex, cache, index  # noqa: F401  (fixtures)


def rss(items: list[tuple[str, str | None, str]]) -> bytes:
    """A feed shaped like PyPI's: ``(name, version or None, RFC 822 date)`` per item."""
    out = ['<?xml version="1.0" encoding="UTF-8"?>\n<rss version="2.0"><channel>']
    out.append("<title>PyPI recent updates</title><link>https://pypi.org/</link>")
    for name, version, date in items:
        if version:
            title = f"{name} {version}"
            link = f"https://pypi.org/project/{name}/{version}/"
        else:
            title = f"{name} added to PyPI"
            link = f"https://pypi.org/project/{name}/"
        out.append(
            f"<item><title>{title}</title><link>{link}</link>"
            f"<description>test</description><pubDate>{date}</pubDate></item>"
        )
    out.append("</channel></rss>")
    return "".join(out).encode()


@dataclass
class Loopback:
    """Serves ``/rss/updates.xml`` and receives webhook POSTs on ``/hook``."""

    feed: bytes = b""
    alerts: list[dict[str, Any]] = field(default_factory=list)
    port: int = 0

    @property
    def feed_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/rss/updates.xml"

    @property
    def hook_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"


@pytest.fixture
def loopback() -> Iterator[Loopback]:
    state = Loopback()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = state.feed if self.path == "/rss/updates.xml" else b"not found"
            self.send_response(200 if self.path == "/rss/updates.xml" else 404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            if self.path == "/hook":
                state.alerts.append(json.loads(body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


def _watch(index: FakeIndex, loopback: Loopback, db: Path, *extra: str) -> Any:  # noqa: F811
    args = [
        "watch",
        "--feed",
        loopback.feed_url,
        "--db",
        str(db),
        "--index-url",
        index.index_url,
        "--webhook",
        loopback.hook_url,
        "--no-model",
        "--once",
        *extra,
    ]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    return res


def _scans(db: Path) -> list[tuple[str, str | None, str | None]]:
    from pkgvet.service.db import ServiceStore

    with ServiceStore(str(db)) as store:
        out = []
        for s in store.list_scans(limit=1000):
            view = store.get_release(s.release_id, with_findings=False) if s.release_id else None
            name = view.release.name if view else (s.requested or "?")
            version = view.release.version if view else None
            out.append((name, version, s.verdict))
        return sorted(out, key=str)


def _two_releases(index: FakeIndex) -> None:  # noqa: F811
    """A dropper and a clean package on the fake index."""
    index.add("zzdropper", "1.0", "zzdropper-1.0.tar.gz", body=dropper())
    index.add("zzclean", "1.0", "zzclean-1.0.tar.gz", body=clean())


DATE1 = "Mon, 02 Mar 2026 10:00:00 GMT"
DATE2 = "Mon, 02 Mar 2026 10:05:00 GMT"
DATE3 = "Mon, 02 Mar 2026 11:00:00 GMT"


def test_new_releases_are_scanned_stored_and_alerted_once(
    index: FakeIndex,  # noqa: F811
    cache: Path,  # noqa: F811
    loopback: Loopback,
    tmp_path: Path,
) -> None:
    _two_releases(index)
    loopback.feed = rss([("zzdropper", "1.0", DATE1), ("zzclean", "1.0", DATE2)])
    db = tmp_path / "watch.db"

    _watch(index, loopback, db)
    assert _scans(db) == [
        ("zzclean", "1.0", "clean"),
        ("zzdropper", "1.0", "malicious"),
    ]
    [alert] = loopback.alerts  # clean releases do not alert
    assert alert["event"] == "pkgvet.watch.alert"
    assert (alert["name"], alert["version"], alert["verdict"]) == ("zzdropper", "1.0", "malicious")
    assert alert["filename"] == "zzdropper-1.0.tar.gz" and len(alert["sha256"]) == 64
    assert any("PV101" in r for r in alert["reasons"])
    downloads = index.hits["/files/zzdropper-1.0.tar.gz"]
    assert downloads == 1

    # a restart with the same feed: nothing scanned, fetched or alerted again
    res = _watch(index, loopback, db)
    assert "0 scanned" in res.output
    assert len(_scans(db)) == 2 and len(loopback.alerts) == 1
    assert index.hits["/pypi/zzdropper/json"] == 1
    assert index.hits["/files/zzdropper-1.0.tar.gz"] == downloads

    # a new release and a version-less "added to PyPI" item: only the new ones are scanned
    index.add("zzdropper", "1.1", "zzdropper-1.1.tar.gz", body=dropper(version="1.1", salt="b"))
    index.add("zznew", "0.1", "zznew-0.1.tar.gz", body=clean(name="zznew", version="0.1"))
    loopback.feed = rss(
        [
            ("zzdropper", "1.0", DATE1),
            ("zzclean", "1.0", DATE2),
            ("zzdropper", "1.1", DATE3),
            ("zznew", None, DATE3),
        ]
    )
    _watch(index, loopback, db)
    assert _scans(db) == [
        ("zzclean", "1.0", "clean"),
        ("zzdropper", "1.0", "malicious"),
        ("zzdropper", "1.1", "malicious"),
        ("zznew", "0.1", "clean"),
    ]
    assert [a["version"] for a in loopback.alerts] == ["1.0", "1.1"]
    _watch(index, loopback, db)
    assert len(_scans(db)) == 4 and len(loopback.alerts) == 2


def _cached_files(cache: Path) -> list[str]:  # noqa: F811
    return sorted(p.name for p in (cache / "dists").rglob("*") if p.is_file())


def _only_blob_path(db: Path) -> str | None:
    """Where the database keeps the bytes of its one scanned release (None: not kept)."""
    from pkgvet.service.db import ServiceStore

    with ServiceStore(str(db)) as store:
        [scan] = store.list_scans(limit=10)
        view = store.get_release(scan.release_id, with_findings=False) if scan.release_id else None
        assert view is not None
        return view.release.blob_path


def test_downloads_are_removed_once_stored_unless_kept_or_cached_before(
    index: FakeIndex,  # noqa: F811
    cache: Path,  # noqa: F811
    loopback: Loopback,
    tmp_path: Path,
) -> None:
    _two_releases(index)
    loopback.feed = rss([("zzdropper", "1.0", DATE1)])
    _watch(index, loopback, tmp_path / "a.db")
    assert _scans(tmp_path / "a.db") == [("zzdropper", "1.0", "malicious")]
    assert _cached_files(cache) == []  # scanned, stored, removed
    assert not list((cache / "dists").glob("*/*"))  # no empty digest folders left behind
    assert _only_blob_path(tmp_path / "a.db") is None  # the release keeps no bytes

    # --keep-downloads keeps them; a later watcher leaves a file that was cached before alone
    loopback.feed = rss([("zzclean", "1.0", DATE2)])
    _watch(index, loopback, tmp_path / "b.db", "--keep-downloads")
    assert _cached_files(cache) == ["zzclean-1.0.tar.gz"]
    _watch(index, loopback, tmp_path / "c.db")
    assert _scans(tmp_path / "c.db") == [("zzclean", "1.0", "clean")]
    assert _cached_files(cache) == ["zzclean-1.0.tar.gz"]


def test_a_download_of_bytes_kept_elsewhere_is_removed_and_the_kept_copy_stays(
    index: FakeIndex,  # noqa: F811
    cache: Path,  # noqa: F811
    loopback: Loopback,
    tmp_path: Path,
) -> None:
    """The service kept an earlier upload of the same file: the release points at that copy,
    so the watcher's download is a spare and goes, and the upload is left alone."""
    import hashlib

    from pkgvet.service.db import ServiceStore

    body = dropper()
    index.add("zzdropper", "1.0", "zzdropper-1.0.tar.gz", body=body)
    kept = tmp_path / "blobs" / "zzdropper-1.0.tar.gz"
    kept.parent.mkdir()
    kept.write_bytes(body)
    with ServiceStore(str(tmp_path / "a.db")) as store:
        store.submit_upload(
            filename=kept.name,
            sha256=hashlib.sha256(body).hexdigest(),
            size=len(body),
            blob_path=str(kept),
        )
    loopback.feed = rss([("zzdropper", "1.0", DATE1)])
    _watch(index, loopback, tmp_path / "a.db")
    assert _scans(tmp_path / "a.db") == [("zzdropper", "1.0", "malicious")]
    assert _cached_files(cache) == []
    assert kept.read_bytes() == body
    assert _only_blob_path(tmp_path / "a.db") == str(kept)


def test_a_crash_before_marking_seen_rescans_nothing(
    index: FakeIndex,  # noqa: F811
    cache: Path,  # noqa: F811
    loopback: Loopback,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pkgvet.service.db import ServiceStore

    index.add("zzdropper", "1.0", "zzdropper-1.0.tar.gz", body=dropper())
    loopback.feed = rss([("zzdropper", "1.0", DATE1)])
    db = tmp_path / "watch.db"

    def crash(self: ServiceStore, feed: str, name: str, version: str) -> bool:
        raise RuntimeError("killed between storing the result and marking it seen")

    with monkeypatch.context() as m:
        m.setattr(ServiceStore, "mark_seen", crash)
        res = CliRunner().invoke(
            cli,
            ["watch", "--feed", loopback.feed_url, "--db", str(db), "--index-url",
             index.index_url, "--no-model", "--once"],
        )  # fmt: skip
        assert res.exit_code != 0
    assert _scans(db) == [("zzdropper", "1.0", "malicious")]  # stored before the crash

    from pkgvet.pipeline import scan_target

    calls: list[Path] = []

    def counting(path: Path, config: Any = None, **kw: Any) -> Any:
        calls.append(path)
        return scan_target(path, config, **kw)

    monkeypatch.setattr("pkgvet.pipeline.scan_target", counting)
    res = _watch(index, loopback, db)
    assert calls == []  # answered from the store, not scanned again
    assert "1 already stored" in res.output
    assert _scans(db) == [("zzdropper", "1.0", "malicious")]
    with ServiceStore(str(db)) as store:
        assert store.is_seen("releases", "zzdropper", "1.0")
        assert store.watch_cursor(loopback.feed_url)  # resumes from here next time
    res = _watch(index, loopback, db)
    assert "1 seen before" in res.output


def test_unknown_releases_are_retried_then_stored_as_errors(
    index: FakeIndex,  # noqa: F811
    cache: Path,  # noqa: F811
    loopback: Loopback,
    tmp_path: Path,
) -> None:
    index.add("zzclean", "1.0", "zzclean-1.0.tar.gz", body=clean())
    index.add("zzyanked", "1.0", "zzyanked-1.0.tar.gz", yanked=True)
    loopback.feed = rss(
        [("zzclean", "1.0", DATE1), ("zzyanked", "1.0", DATE1), ("zzlagging", "2.0", DATE2)]
    )
    db = tmp_path / "watch.db"
    res = _watch(index, loopback, db)
    assert "1 to retry" in res.output  # the index does not know zzlagging yet
    assert ("zzyanked==1.0", None, "error") in _scans(db)  # permanent: stored as an error
    index.add("zzlagging", "2.0", "zzlagging-2.0.tar.gz", body=clean(name="zzlagging"))
    _watch(index, loopback, db)
    assert ("zzlagging", "2.0", "clean") in _scans(db)
    assert len(_scans(db)) == 3


def test_rss_parsing_is_defensive() -> None:
    items = parse_rss(
        rss([("Zz_Pkg", "1.0", DATE1), ("zznew", None, DATE2)]), "https://example.invalid/rss"
    )
    assert [(r.name, r.version) for r in items] == [("zz-pkg", "1.0"), ("zznew", None)]
    assert items[0].published.startswith("2026-03-02T10:00:00")
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]>'
        b"<rss><channel><item><title>&b; 1.0</title></item></channel></rss>"
    )
    with pytest.raises(FeedError, match="DTD"):
        parse_rss(bomb, "x")
    with pytest.raises(FeedError, match="not well-formed"):
        parse_rss(b"<rss><channel>", "x")
    with pytest.raises(FeedError, match="not an RSS feed"):
        parse_rss(b"<html></html>", "x")
    odd = (
        b"<rss><channel><item><title>no version here at all</title></item>"
        b"<item><title>x 1.0</title><link>https://pypi.org/project/%3Cscript%3E/1.0/</link></item>"
        b"</channel></rss>"
    )
    assert parse_rss(odd, "x") == []


def test_simple_index_pages() -> None:
    page = (
        b'<html><body><a href="../../files/zzpkg-1.0.tar.gz#sha256=00">zzpkg-1.0.tar.gz</a>'
        b'<a href="x">zzpkg-1.1-py3-none-any.whl</a><a href="y">README</a></body></html>'
    )
    links = parse_simple_links(page)
    assert [t for _h, t in links] == ["zzpkg-1.0.tar.gz", "zzpkg-1.1-py3-none-any.whl", "README"]
    assert version_of("zzpkg-1.0.tar.gz") == ("zzpkg", "1.0")
    assert version_of("zzpkg-1.1-py3-none-any.whl") == ("zzpkg", "1.1")
    assert version_of("README") is None


def test_watch_through_a_running_server(
    index: FakeIndex,  # noqa: F811
    cache: Path,  # noqa: F811
    loopback: Loopback,
    tmp_path: Path,
) -> None:
    """``--server URL --token T``: the server fetches and scans; the watcher keeps only its
    state (seen releases, cursors) in its own database, and alerts."""
    pytest.importorskip("fastapi")
    from service_helpers import Server, make_token

    index.add("zzdropper", "1.0", "zzdropper-1.0.tar.gz", body=dropper())
    loopback.feed = rss([("zzdropper", "1.0", DATE1)])
    srv = Server(
        db=str(tmp_path / "service.db"),
        workdir=tmp_path,
        args=["--workers", "1", "--no-model", "--index-url", index.index_url],
    ).start()
    try:
        token = make_token(srv.db, "watcher")
        args = ["watch", "--feed", loopback.feed_url, "--server", srv.url, "--token", token,
                "--db", str(tmp_path / "state.db"), "--index-url", index.index_url,
                "--webhook", loopback.hook_url, "--once"]  # fmt: skip
        first = CliRunner().invoke(cli, args)
        assert first.exit_code == 0, first.output
        assert "1 scanned" in first.output
        [alert] = loopback.alerts
        assert (alert["name"], alert["verdict"]) == ("zzdropper", "malicious")
        assert alert["url"] == f"{srv.url}/ui/releases/{alert['release_id']}"
        again = CliRunner().invoke(cli, args)
        assert "1 seen before" in again.output and len(loopback.alerts) == 1
        with srv.client() as api:
            scans = api.get("/api/v1/scans").json()
        assert [(s["requested"], s["verdict"]) for s in scans] == [("zzdropper==1.0", "malicious")]
    finally:
        srv.stop()
