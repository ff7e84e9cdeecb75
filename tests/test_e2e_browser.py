"""End to end, in a real browser: headless Chromium (Debian's ``chromium`` at
/usr/bin/chromium, driven by Playwright; no browser is downloaded) against a real ``pkgvet
serve`` (uvicorn in a subprocess on 127.0.0.1, SQLite in a temporary directory).

An inert package is submitted through the API upload, found in the triage queue, opened,
marked as a false positive with a note through the page's form, and the stored decision is
read back through the API. A screenshot of the release page is saved under
``build/test-artifacts/`` (its path is printed).

Skips, with the reason, where Chromium or Playwright is missing (``.ci/run`` installs
Chromium from Debian when it is absent)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import REPO

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = REPO / "build" / "test-artifacts"

pytestmark = pytest.mark.skipif(
    not CHROMIUM.is_file(),
    reason=f"needs Debian's chromium at {CHROMIUM} (apt-get install chromium)",
)
playwright_api = pytest.importorskip(
    "playwright.sync_api", reason="needs the playwright Python package (the dev extra)"
)
pytest.importorskip("fastapi", reason="needs the serve extra")

from service_helpers import Server, dropper, make_token, upload, wait_scan  # noqa: E402


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    srv = Server(
        db=str(tmp_path / "service.db"),
        workdir=tmp_path,
        args=["--workers", "1", "--no-model"],
    ).start()
    try:
        yield srv
    finally:
        srv.stop()


def test_triage_a_release_in_chromium(server: Server, tmp_path: Path) -> None:
    token = make_token(server.db, "reviewer")
    with server.client(token) as api:
        res = upload(api, "zzdropper-1.0.tar.gz", dropper())
        assert res.status_code == 202, res.text
        scan = wait_scan(api, res.json()["scan_id"])
    assert scan["verdict"] == "malicious"
    release_id = scan["release_id"]

    with playwright_api.sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=["--no-sandbox", "--disable-dev-shm-usage"],  # root in CI: no user sandbox
        )
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            errors: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)

            page.goto(server.url + "/ui/login")
            page.fill("#token", token)
            page.click("button[type=submit]")
            page.wait_for_url(server.url + "/ui/")
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "queue.png"), full_page=True)
            link = page.locator(f'a.release-link[href="/ui/releases/{release_id}"]')
            assert link.inner_text().strip() == "zzdropper 1.0"
            link.click()
            page.wait_for_url(f"{server.url}/ui/releases/{release_id}")
            assert page.locator(".verdict-label").inner_text().strip().lower() == "malicious"
            assert page.locator("article.finding").count() >= 2
            assert "print(1)" in page.locator("section", has_text="Decoded payloads").inner_text()

            shot = ARTIFACTS / "release-page.png"
            page.screenshot(path=str(shot), full_page=True)
            print(f"\nscreenshot of the release page: {shot}")

            note = "inert test fixture: the payload is print(1)"
            page.fill("#note", note)
            page.click("button[value=false_positive]")
            page.wait_for_url(f"{server.url}/ui/releases/{release_id}?decided=false_positive")
            assert "Decision recorded" in page.inner_text("main")
            assert "false positive" in page.locator(".history").inner_text()
            page.screenshot(path=str(ARTIFACTS / "release-page-decided.png"), full_page=True)
            assert not [e for e in errors if "Content Security Policy" in e], errors
        finally:
            browser.close()

    with server.client() as api:
        detail = api.get(f"/api/v1/releases/{release_id}").json()
    [decision] = detail["decisions"]
    assert (decision["label"], decision["note"]) == ("false_positive", note)
    assert decision["actor"] == "token:reviewer"
    shutil.copy(shot, tmp_path / "release-page.png")  # also beside the test's own files
