"""The triage pages of ``pkgvet serve`` (in process, FastAPI's test client): the queue and its
filters, the release page (escaping of hostile package text, CSP), login sessions, CSRF, the
recorded decisions and their export as training labels.

Packages are inert (``os.system`` on an ``echo``, a base64 payload that is ``print(1)``,
hosts under ``example.invalid``) and scanned as bytes by the pipeline; results are written
through the store as the worker pool would write them."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("jinja2")
pytest.importorskip("pygments")

from click.testing import CliRunner
from fastapi.testclient import TestClient

from pkgvet.config import ScanConfig
from pkgvet.pipeline import scan_bytes
from pkgvet.service.app import create_app
from pkgvet.service.auth import create_token
from pkgvet.service.db import ServiceStore
from pkgvet.service.jobs import document
from pkgvet.service.labels import HEADER, labels_command, read_labels
from pkgvet.service.settings import ServiceSettings
from pkgvet.service.ui import COOKIE
from service_helpers import clean, dropper, package

HOSTILE = package(
    "zzhostile",
    "6.6",
    {
        "setup.py": (
            "import os\nos.system('echo \"<script>alert(1)</script>\" http://example.invalid/x')\n"
        )
    },
)


@pytest.fixture
def app_client(tmp_path: Path) -> Iterator[TestClient]:
    settings = ServiceSettings(
        db_url=str(tmp_path / "svc.db"),
        blob_dir=str(tmp_path / "blobs"),
        workers=1,
        use_model=False,
        session_secret="test-secret",
    )
    with TestClient(create_app(settings), base_url="http://testserver") as client:
        yield client


def _store(client: TestClient) -> ServiceStore:
    store: ServiceStore = client.app.state.store  # type: ignore[attr-defined]
    return store


def _add(client: TestClient, filename: str, data: bytes) -> int:
    """Scan ``data`` and store the result as the worker pool would; the release id."""
    store = _store(client)
    import hashlib

    sub = store.submit_upload(
        filename=filename, sha256=hashlib.sha256(data).hexdigest(), size=len(data), blob_path=None
    )
    result = scan_bytes(data, filename, ScanConfig(use_model=False, keep_features=True))
    fingerprint = result.fingerprint
    result.features = None
    store.finish_scan(sub.scan_id, document(result), filename=filename, fingerprint=fingerprint)
    assert sub.release_id is not None
    return sub.release_id


def _login(client: TestClient) -> str:
    token = create_token(_store(client), "alice")
    res = client.post("/ui/login", data={"token": token, "next": "/ui/"}, follow_redirects=False)
    assert res.status_code == 303
    cookie = res.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
    return token


def _csrf(html: str) -> str:
    m = re.search(r'name="csrf" value="([^"]+)"', html)
    assert m, "no CSRF field on the page"
    return m.group(1)


def test_queue_lists_flagged_releases_by_score_with_filters(app_client: TestClient) -> None:
    drop = _add(app_client, "zzdropper-1.0.tar.gz", dropper())
    cleanid = _add(app_client, "zzclean-1.0.tar.gz", clean())
    page = app_client.get("/ui/")
    assert page.status_code == 200
    assert f"/ui/releases/{drop}" in page.text
    assert f"/ui/releases/{cleanid}" not in page.text  # the default queue: flagged only
    every = app_client.get("/ui/", params={"verdict": "any"}).text
    assert every.index(f"/ui/releases/{drop}") < every.index(f"/ui/releases/{cleanid}")
    assert f"/ui/releases/{cleanid}" in app_client.get("/ui/?verdict=clean").text
    assert f"/ui/releases/{drop}" not in app_client.get("/ui/?verdict=clean").text
    by_category = app_client.get("/ui/", params={"category": "command_execution"}).text
    assert f"/ui/releases/{drop}" in by_category
    assert f"/ui/releases/{drop}" not in app_client.get("/ui/?category=remote_control").text
    assert f"/ui/releases/{drop}" not in app_client.get("/ui/?verdict=any&min_score=1").text
    assert f"/ui/releases/{drop}" not in app_client.get("/ui/?since=2999-01-01").text
    bad = app_client.get("/ui/", params={"verdict": "<b>", "since": "yesterday"})
    assert bad.status_code == 200 and "date must be YYYY-MM-DD" in bad.text
    assert "<b>" not in bad.text.split("<main>")[1]
    _store(app_client).record_decision(drop, "malicious", "seen it", "bob")
    assert f"/ui/releases/{drop}" not in app_client.get("/ui/?undecided=1").text
    assert "confirmed malicious" in app_client.get("/ui/").text


def test_release_page_escapes_package_text_and_sends_a_csp(app_client: TestClient) -> None:
    rid = _add(app_client, "zzhostile-6.6.tar.gz", HOSTILE)
    drop = _add(app_client, "zzdropper-1.0.tar.gz", dropper())
    page = app_client.get(f"/ui/releases/{rid}")
    assert page.status_code == 200
    assert "<script>alert" not in page.text
    assert "&lt;script&gt;" in page.text or "&lt;/script&gt;" in page.text
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp
    assert page.headers["x-content-type-options"] == "nosniff"
    assert not re.search(r"<script(?![^>]*src=\"/ui/static/)", page.text)
    dropped = app_client.get(f"/ui/releases/{drop}").text
    assert "Decoded payloads" in dropped and "print" in dropped  # the decoded print(1)
    assert 'class="hl code"' in dropped  # highlighted by Pygments
    assert "PV101" in dropped and "setup.py" in dropped
    assert "Log in</a> to record a decision" in dropped  # no form without a session
    assert app_client.get("/ui/releases/999999").status_code == 404
    css = app_client.get("/ui/static/triage.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert app_client.get("/ui/static/pygments.css").status_code == 200
    assert app_client.get("/ui/static/..%2Fui.py").status_code == 404


def test_similar_releases_are_listed(app_client: TestClient) -> None:
    one = _add(app_client, "zzdropper-1.0.tar.gz", dropper(salt="a"))
    two = _add(app_client, "zzdropper-1.1.tar.gz", dropper(version="1.1", salt="b"))
    page = app_client.get(f"/ui/releases/{one}").text
    section = page.split("Similar releases", 1)[1]
    assert f"/ui/releases/{two}" in section


def test_decisions_need_a_session_and_a_csrf_token(app_client: TestClient) -> None:
    rid = _add(app_client, "zzdropper-1.0.tar.gz", dropper())
    form = {"label": "false_positive", "note": "ok", "csrf": "x"}
    anonymous = app_client.post(f"/ui/releases/{rid}/decision", data=form)
    assert anonymous.status_code == 401
    bad_login = app_client.post("/ui/login", data={"token": "pkgvet_nope"})
    assert bad_login.status_code == 403 and COOKIE not in bad_login.headers.get("set-cookie", "")
    token = _login(app_client)
    page = app_client.get(f"/ui/releases/{rid}")
    csrf = _csrf(page.text)
    no_csrf = app_client.post(f"/ui/releases/{rid}/decision", data={"label": "malicious"})
    assert no_csrf.status_code == 403
    forged = app_client.post(
        f"/ui/releases/{rid}/decision",
        data={"label": "malicious", "csrf": csrf},
        headers={"Origin": "http://evil.example.invalid"},
    )
    assert forged.status_code == 403
    assert _store(app_client).decisions_of(rid) == []
    note = "checked by hand <b>not html</b>"
    ok = app_client.post(
        f"/ui/releases/{rid}/decision",
        data={"label": "false_positive", "note": note, "csrf": csrf},
        follow_redirects=False,
    )
    assert ok.status_code == 303
    [d] = _store(app_client).decisions_of(rid)
    assert (d.label, d.note, d.actor) == ("false_positive", note, "token:alice")
    shown = app_client.get(ok.headers["location"]).text
    assert "Decision recorded" in shown and "&lt;b&gt;not html&lt;/b&gt;" in shown
    # a tampered cookie is no session; a revoked token ends the session
    _store(app_client).revoke_tokens("alice")
    after = app_client.post(
        f"/ui/releases/{rid}/decision", data={"label": "malicious", "csrf": csrf}
    )
    assert after.status_code == 401
    assert token  # the token itself never reaches the page or the cookie
    assert token not in shown


def test_tampered_cookie_is_refused(app_client: TestClient) -> None:
    _login(app_client)
    value = app_client.cookies[COOKIE]
    body, _, mac = value.partition(".")
    app_client.cookies.set(COOKIE, body + "." + mac[::-1])
    assert "Log in</a>" in app_client.get("/ui/").text


def test_labels_export_route_and_command(app_client: TestClient, tmp_path: Path) -> None:
    drop = _add(app_client, "zzdropper-1.0.tar.gz", dropper())
    cleanid = _add(app_client, "zzclean-1.0.tar.gz", clean())
    store = _store(app_client)
    store.record_decision(drop, "false_positive", "first look", "bob")
    store.record_decision(drop, "malicious", "tabs\tand\nnewlines", "bob")
    store.record_decision(cleanid, "false_positive", "", "bob")
    assert app_client.get("/ui/labels.tsv").status_code == 401
    token = create_token(store, "exporter")
    res = app_client.get("/ui/labels.tsv", headers={"Authorization": f"Bearer {token}"})
    assert res.status_code == 200
    assert res.headers["content-type"].startswith("text/tab-separated-values")
    assert res.text.startswith(HEADER)
    out = tmp_path / "labels.tsv"
    out.write_text(res.text, encoding="utf-8")
    rows = {r.name: r for r in read_labels(out)}
    assert set(rows) == {"zzdropper", "zzclean"}  # one row per release: the latest decision
    assert rows["zzdropper"].label == "malicious" and rows["zzclean"].label == "benign"
    assert rows["zzdropper"].note == "tabs and newlines"
    assert rows["zzdropper"].filename == "zzdropper-1.0.tar.gz"
    view = store.get_release(drop, with_findings=False)
    assert view is not None and rows["zzdropper"].sha256 == view.release.sha256
    settings: Any = app_client.app.state.settings  # type: ignore[attr-defined]
    cli_out = tmp_path / "cli.tsv"
    run = CliRunner().invoke(
        labels_command, ["export", "--db", settings.db_url, "-o", str(cli_out)]
    )
    assert run.exit_code == 0, run.output
    assert cli_out.read_text(encoding="utf-8") == res.text
