"""``pkgvet serve`` end to end: a real uvicorn server on loopback in a subprocess, used over
HTTP, once on SQLite and once on PostgreSQL (a throwaway cluster from Debian's binaries, or
``$PKGVET_TEST_POSTGRES_URL``). Packages are small inert archives built here (see
``service_helpers``). No assertion depends on how long anything takes; timeouts are safety nets.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from service_helpers import (
    Server,
    clean,
    dropper,
    make_token,
    upload,
    wait_scan,
    wait_status,
)
from test_collect import FakeIndex, index  # noqa: F401  (fixture)

pytest.importorskip("fastapi")
pytest.importorskip("alembic")

BASE = ["--no-model", "--workers", "2"]


@pytest.fixture
def servers(db_url: str, tmp_path: Path) -> Iterator[list[Server]]:
    """Servers a test starts (all stopped at the end)."""
    started: list[Server] = []
    yield started
    for s in started:
        s.stop(kill=True)


def start(
    servers: list[Server], db_url: str, tmp_path: Path, *args: str, **env: str
) -> Server:
    server = Server(db_url, tmp_path, [*BASE, *args], dict(env)).start()
    servers.append(server)
    return server


@pytest.fixture
def token(db_url: str) -> str:
    return make_token(db_url, "tester")


# -- scanning ----------------------------------------------------------------------------


def test_upload_scan_findings_listing_and_history(
    servers: list[Server], db_url: str, tmp_path: Path, token: str
) -> None:
    server = start(servers, db_url, tmp_path)
    with server.client(token) as c:
        bad = upload(c, "zzdropper-1.0.tar.gz", dropper())
        good = upload(c, "zzclean-1.0.tar.gz", clean())
        old = upload(c, "zzdropper-0.9.tar.gz", clean("zzdropper", "0.9"))
        assert bad.status_code == good.status_code == old.status_code == 202
        assert bad.json()["created"] is True
        scan = wait_scan(c, bad.json()["scan_id"])
        wait_scan(c, good.json()["scan_id"])
        wait_scan(c, old.json()["scan_id"])

        assert scan["status"] == "done" and scan["verdict"] == "malicious"
        assert scan["pkgvet_version"] and scan["finished_at"]
        assert "command_execution" in scan["categories"] and "install" in scan["triggers"]
        rules = {f["rule_id"] for f in scan["findings"]}
        assert any(f["evidence"] == "print(1)" for f in scan["findings"]), scan["findings"]
        where = {(f["rule_id"], f["path"], f["line"]) for f in scan["findings"]}
        assert ("PV101", "zzdropper-1.0/setup.py", 4) in where  # os.system(...)
        assert ("PV201", "zzdropper-1.0/setup.py", 5) in where  # exec(b64decode(...))
        doc = scan["result"]
        assert doc["schema_version"] == 1 and doc["tool"]["name"] == "pkgvet"
        (result,) = doc["results"]
        assert result["target"] == "zzdropper-1.0.tar.gz"
        assert {f["rule_id"] for f in result["findings"]} == rules

        lean = c.get(f"/api/v1/scans/{scan['id']}", params={"result": "false"}).json()
        assert lean["result"] is None and lean["findings"]

        # listings: by verdict, score, category, name, date; ordered by score
        page = c.get("/api/v1/releases").json()
        assert page["total"] == 3
        scores = [i["scan"]["score"] for i in page["items"]]
        assert scores == sorted(scores, reverse=True)
        assert page["items"][0]["filename"] == "zzdropper-1.0.tar.gz"
        mal = c.get("/api/v1/releases", params={"verdict": "malicious"}).json()
        assert [i["filename"] for i in mal["items"]] == ["zzdropper-1.0.tar.gz"]
        clean_page = c.get("/api/v1/releases", params={"verdict": "clean"}).json()
        assert {i["filename"] for i in clean_page["items"]} == {
            "zzclean-1.0.tar.gz",
            "zzdropper-0.9.tar.gz",
        }
        top = c.get("/api/v1/releases", params={"min_score": scan["score"]}).json()
        assert [i["id"] for i in top["items"]] == [scan["release_id"]]
        cat = c.get("/api/v1/releases", params={"category": "command_execution"}).json()
        assert [i["id"] for i in cat["items"]] == [scan["release_id"]]
        by_name = c.get("/api/v1/releases", params={"name": "ZZDropper", "sort": "name"}).json()
        assert [i["version"] for i in by_name["items"]] == ["0.9", "1.0"]
        first_seen = page["items"][0]["first_seen"]
        assert c.get("/api/v1/releases", params={"until": first_seen}).json()["total"] < 3
        assert c.get("/api/v1/releases", params={"since": first_seen}).json()["total"] >= 1
        paged = c.get("/api/v1/releases", params={"limit": 1, "offset": 1}).json()
        assert paged["total"] == 3 and len(paged["items"]) == 1
        assert paged["items"][0]["id"] == page["items"][1]["id"]

        # a release in full, and a project's history
        rel = c.get(f"/api/v1/releases/{scan['release_id']}").json()
        assert rel["name"] == "zzdropper" and rel["version"] == "1.0"
        assert rel["scan"]["id"] == scan["id"] and rel["scan"]["findings"]
        assert [s["id"] for s in rel["scans"]] == [scan["id"]]
        hist = c.get("/api/v1/packages/ZZDropper").json()
        assert hist["name"] == "zzdropper"
        assert {r["version"]: r["scan"]["verdict"] for r in hist["releases"]} == {
            "1.0": "malicious",
            "0.9": "clean",
        }
        assert c.get("/api/v1/packages/nosuchproject").status_code == 404

        # a triage decision, recorded under the token's name
        d = c.post(
            f"/api/v1/releases/{scan['release_id']}/decisions",
            json={"label": "malicious", "note": "dropper"},
        )
        assert d.status_code == 201 and d.json()["actor"] == "tester"
        listed = c.get("/api/v1/scans", params={"status": "done"}).json()
        assert len(listed) == 3


def test_similar_releases_share_code(
    servers: list[Server], db_url: str, tmp_path: Path, token: str
) -> None:
    server = start(servers, db_url, tmp_path)
    with server.client(token) as c:
        ids = [
            upload(c, "zzdropper-1.0.tar.gz", dropper()).json()["scan_id"],
            upload(c, "zzdrop2-1.0.tar.gz", dropper("zzdrop2")).json()["scan_id"],
            upload(c, "zzclean-1.0.tar.gz", clean()).json()["scan_id"],
        ]
        releases = [wait_scan(c, i)["release_id"] for i in ids]
        sim = c.get(f"/api/v1/releases/{releases[0]}/similar").json()
        assert [s["id"] for s in sim] == [releases[1]]
        assert sim[0]["similarity"] >= 0.5 and sim[0]["verdict"] == "malicious"


def test_idempotent_submissions(
    servers: list[Server], db_url: str, tmp_path: Path, token: str
) -> None:
    server = start(servers, db_url, tmp_path)
    data = dropper(salt="idem")
    with server.client(token) as c:
        first = upload(c, "zzdropper-1.0.tar.gz", data)
        again = upload(c, "zzdropper-1.0.tar.gz", data)
        assert first.status_code == 202 and again.status_code == 200
        assert again.json()["created"] is False
        assert again.json()["scan_id"] == first.json()["scan_id"]

    # the same new bytes from 8 clients at once: one release, one scan
    other = clean(salt="concurrent")
    answers: list[httpx.Response] = []
    lock = threading.Lock()

    def submit() -> None:
        with server.client(token) as cc:
            r = upload(cc, "zzclean-1.0.tar.gz", other)
        with lock:
            answers.append(r)

    threads = [threading.Thread(target=submit) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert len(answers) == 8
    assert {r.json()["scan_id"] for r in answers} == {answers[0].json()["scan_id"]}
    assert sorted(r.status_code for r in answers) == [200] * 7 + [202]

    with server.client(token) as c:
        wait_scan(c, first.json()["scan_id"])
        wait_scan(c, answers[0].json()["scan_id"])
        assert c.get("/api/v1/releases").json()["total"] == 2
        assert len(c.get("/api/v1/scans").json()) == 2
        forced = upload(c, "zzdropper-1.0.tar.gz", data, force=True)
        assert forced.status_code == 202 and forced.json()["created"] is True
        assert forced.json()["scan_id"] != first.json()["scan_id"]
        assert forced.json()["release_id"] == first.json()["release_id"]
        wait_scan(c, forced.json()["scan_id"])
        rel = c.get(f"/api/v1/releases/{first.json()['release_id']}").json()
        assert rel["latest_scan_id"] == forced.json()["scan_id"] and len(rel["scans"]) == 2
        assert c.get("/api/v1/releases").json()["total"] == 2


def test_submit_by_name_from_an_index(
    servers: list[Server],
    db_url: str,
    tmp_path: Path,
    token: str,
    index: FakeIndex,  # noqa: F811
) -> None:
    index.add("zzdropper", "1.0", "zzdropper-1.0.tar.gz", body=dropper())
    index.add("zzclean", "1.0", "zzclean-1.0.tar.gz", body=clean())
    server = start(servers, db_url, tmp_path, "--index-url", index.index_url)
    with server.client(token) as c:
        r = c.post("/api/v1/scans/name", json={"name": "ZZDropper", "version": "1.0"})
        assert r.status_code == 202 and r.json()["release_id"] is None
        scan = wait_scan(c, r.json()["scan_id"])
        assert scan["verdict"] == "malicious" and scan["requested"] == "zzdropper==1.0"
        assert scan["source"] == "name" and scan["release_id"] is not None
        rel = c.get(f"/api/v1/releases/{scan['release_id']}").json()
        assert rel["filename"] == "zzdropper-1.0.tar.gz" and rel["version"] == "1.0"
        again = c.post("/api/v1/scans/name", json={"name": "zzdropper", "version": "1.0"})
        assert again.status_code == 200 and again.json()["scan_id"] == scan["id"]
        # the same file uploaded is the same release
        up = upload(c, "zzdropper-1.0.tar.gz", dropper())
        assert up.json()["release_id"] == scan["release_id"]

        unpinned = c.post("/api/v1/scans/name", json={"name": "zzclean"})
        assert unpinned.status_code == 202
        scanned = wait_scan(c, unpinned.json()["scan_id"])
        assert scanned["verdict"] == "clean" and scanned["requested"] == "zzclean==1.0"
        # pinned to the latest release first: asked again, the scan of that release answers
        again = c.post("/api/v1/scans/name", json={"name": "zzclean"})
        assert again.status_code == 200 and again.json()["scan_id"] == scanned["id"]
        # ... until a newer release appears, or force is asked for
        index.add("zzclean", "1.1", "zzclean-1.1.tar.gz", body=clean(version="1.1"))
        newer = c.post("/api/v1/scans/name", json={"name": "zzclean"})
        assert newer.status_code == 202
        assert wait_scan(c, newer.json()["scan_id"])["requested"] == "zzclean==1.1"
        forced = c.post("/api/v1/scans/name", json={"name": "zzclean", "force": True})
        assert forced.status_code == 202 and forced.json()["scan_id"] != newer.json()["scan_id"]
        assert wait_scan(c, forced.json()["scan_id"])["requested"] == "zzclean"
        absent = c.post("/api/v1/scans/name", json={"name": "zznothere", "version": "1"})
        missing = wait_scan(c, absent.json()["scan_id"])
        assert missing["status"] == "error" and "zznothere" in missing["error"]


# -- refusals ------------------------------------------------------------------------------


def test_auth_limits_and_malformed_requests(
    servers: list[Server], db_url: str, tmp_path: Path, token: str
) -> None:
    from pkgvet.service.db import ServiceStore

    revoked = make_token(db_url, "former")
    with ServiceStore(db_url) as store:
        assert store.revoke_tokens("former") == 1
        tokens = store.list_tokens()
    assert {t.name: t.active for t in tokens} == {"tester": True, "former": False}
    server = start(servers, db_url, tmp_path, "--max-upload-mb", "1")
    data = clean(salt="auth")
    with server.client() as anon:
        r = upload(anon, "zzclean-1.0.tar.gz", data)
        assert r.status_code == 401 and "token" in r.json()["detail"]
        assert r.headers["www-authenticate"] == "Bearer"
        r = anon.post("/api/v1/scans/name", json={"name": "six"})
        assert r.status_code == 401
        assert anon.get("/api/v1/releases").status_code == 200  # reads are open
    with server.client("pkgvet_not-a-real-token") as bad:
        assert upload(bad, "zzclean-1.0.tar.gz", data).status_code == 401
    with server.client(revoked) as gone:
        r = upload(gone, "zzclean-1.0.tar.gz", data)
        assert r.status_code == 403 and "revoked" in r.json()["detail"]
    with server.client(token) as c:
        # over the cap: read by the handler (just over), or refused by length (far over)
        r = upload(c, "big-1.0.tar.gz", b"\0" * (1024 * 1024 + 10))
        assert r.status_code == 413 and "limit" in r.json()["detail"]
        r = upload(c, "big-1.0.tar.gz", b"\0" * (2 * 1024 * 1024 + 10))
        assert r.status_code == 413 and "limit" in r.json()["detail"]
        # malformed
        r = c.post(
            "/api/v1/scans/name",
            content=b"{not json",
            headers={"content-type": "application/json"},
        )
        assert r.status_code == 422
        assert c.post("/api/v1/scans/name", json={"version": "1.0"}).status_code == 422
        r = c.post("/api/v1/scans/name", json={"name": "not a name!"})
        assert r.status_code == 422 and "not a valid project name" in r.json()["detail"]
        r = c.post("/api/v1/scans/name", json={"name": "six", "version": "1.0 ; rm"})
        assert r.status_code == 422
        assert c.post("/api/v1/scans/upload").status_code == 422  # no file
        r = upload(c, "empty-1.0.tar.gz", b"")
        assert r.status_code == 422 and "empty" in r.json()["detail"]
        assert c.get("/api/v1/releases", params={"verdict": "evil"}).status_code == 422
        assert c.get("/api/v1/releases", params={"category": "x"}).status_code == 422
        assert c.get("/api/v1/releases", params={"since": "yesterday"}).status_code == 422
        assert c.get("/api/v1/releases", params={"limit": 0}).status_code == 422
        assert c.get("/api/v1/scans/abc").status_code == 422
        assert c.get("/api/v1/scans/999999").status_code == 404
        r = c.post("/api/v1/releases/999999/decisions", json={"label": "malicious"})
        assert r.status_code == 404
        r = c.post("/api/v1/releases/1/decisions", json={"label": "dunno"})
        assert r.status_code == 422
        assert c.get("/api/v1/releases").json()["total"] == 0  # nothing was stored
        spec = c.get("/openapi.json").json()
        assert "/api/v1/scans/upload" in spec["paths"] and "/api/v1/releases" in spec["paths"]


# -- resilience ------------------------------------------------------------------------------


def test_restart_keeps_data_and_finishes_interrupted_scans(
    servers: list[Server], db_url: str, tmp_path: Path, token: str
) -> None:
    # a package whose scan never ends (test hook) is running when the server is killed
    first = start(servers, db_url, tmp_path, PKGVET_TESTING_HANG="zzhang")
    with first.client(token) as c:
        done = wait_scan(c, upload(c, "zzdropper-1.0.tar.gz", dropper()).json()["scan_id"])
        hung = upload(c, "zzhang-1.0.tar.gz", clean("zzhang")).json()["scan_id"]
        wait_status(c, hung, "running")
    first.stop(kill=True)

    second = start(servers, db_url, tmp_path)  # no hang hook: the scan can finish now
    with second.client(token) as c:
        kept = c.get(f"/api/v1/scans/{done['id']}").json()
        assert kept["verdict"] == "malicious" and kept["findings"] == done["findings"]
        resumed = wait_scan(c, hung)
        assert resumed["status"] == "done" and resumed["verdict"] == "clean"
        again = upload(c, "zzdropper-1.0.tar.gz", dropper())
        assert again.status_code == 200 and again.json()["scan_id"] == done["id"]
        assert c.get("/api/v1/releases").json()["total"] == 2
    second.stop()
    third = start(servers, db_url, tmp_path)  # a clean stop and start: still all there
    with third.client() as c:
        assert c.get("/api/v1/health").json()["counts"]["status:done"] == 2


def test_a_hanging_package_does_not_block_others(
    servers: list[Server], db_url: str, tmp_path: Path, token: str
) -> None:
    server = start(servers, db_url, tmp_path, "--hard-timeout", "600", PKGVET_TESTING_HANG="zzhang")
    with server.client(token) as c:
        hung = upload(c, "zzhang-1.0.tar.gz", clean("zzhang")).json()["scan_id"]
        others = [
            upload(c, f"zzother{i}-1.0.tar.gz", clean(f"zzother{i}")).json()["scan_id"]
            for i in range(3)
        ]
        for sid in others:  # scanned by the other worker while the first one is stuck
            assert wait_scan(c, sid)["status"] == "done"
        assert c.get(f"/api/v1/scans/{hung}").json()["status"] == "running"


def test_a_package_over_the_hard_timeout_is_an_error(
    servers: list[Server], db_url: str, tmp_path: Path, token: str
) -> None:
    server = start(
        servers, db_url, tmp_path, "--workers", "1", "--hard-timeout", "2",
        PKGVET_TESTING_HANG="zzhang",
    )  # fmt: skip
    with server.client(token) as c:
        hung = upload(c, "zzhang-1.0.tar.gz", clean("zzhang")).json()["scan_id"]
        after = upload(c, "zzafter-1.0.tar.gz", clean("zzafter")).json()["scan_id"]
        res = wait_scan(c, hung)
        assert res["status"] == "error" and "hard timeout" in res["error"]
        assert wait_scan(c, after)["status"] == "done"  # the one worker was replaced
