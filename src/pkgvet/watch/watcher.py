"""The watcher: poll feeds, scan each new release once, store it, alert, remember it.

For every release a feed announces, oldest first:

1. skip it when the seen table (``watch_seen``) has it: it was handled before;
2. scan it, through one of two sinks: :class:`StoreSink` fetches the release from the index
   (``--index-url``, else ``$PIP_INDEX_URL``, else PyPI; sha256-verified, cached), scans it with
   the pipeline in this process and writes the result into a service database;
   :class:`ServerSink` asks a running ``pkgvet serve`` to scan it (``POST
   /api/v1/scans/name``) and waits for the result. Both deduplicate in the database (a file or
   a ``name==version`` already scanned is answered by its stored scan), so a release is never
   scanned twice, even when a crash came between storing a result and step 4;
3. alert on a verdict at or above ``min_verdict``: the log, and a webhook (JSON ``POST``);
4. mark it seen: only now, after the result is stored (and the alert sent), so a crash at any
   point leads to the release being handled again on restart, and answered from the store.

Each feed's cursor (``watch_state``) records the publication time of the newest item handled
without a gap, so a restart skips what is older without touching the seen table. A release
that cannot be fetched for a transient reason (timeout, 5xx, a JSON API that lags behind the
feed) is retried on later polls, at most :data:`MAX_ATTEMPTS` times, then stored as an error.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import httpx

from pkgvet.errors import PkgvetError
from pkgvet.watch.feeds import Feed, FeedError, Release

if TYPE_CHECKING:
    from pkgvet.collect.index import IndexClient
    from pkgvet.config import ScanConfig
    from pkgvet.service.db import ServiceStore

log = logging.getLogger("pkgvet.watch")

VERDICT_RANK = {"clean": 0, "suspicious": 1, "malicious": 2}
MAX_ATTEMPTS = 3
SEEN_RELEASES = "releases"  # the seen table's namespace for name==version (all feeds share it)
PROJECT_SEEN_VERSION = ""  # a feed's version-less announcement of a project, handled


class WatchError(PkgvetError):
    """A watcher that cannot run (bad server answer, unusable configuration)."""


class TransientError(WatchError):
    """A release that could not be handled now but may be later (network, index lag)."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """One stored scan result of a release (a release may have several files)."""

    name: str
    version: str
    filename: str | None
    sha256: str | None
    verdict: str
    score: float | None
    categories: tuple[str, ...] = ()
    reasons: tuple[str, ...] = ()
    scan_id: int | None = None
    release_id: int | None = None
    reused: bool = False  # answered by a stored scan: nothing was scanned
    error: str | None = None


class Sink(Protocol):
    """Scans a release and stores the result; returns what was stored."""

    def scan(self, name: str, version: str) -> list[Outcome]: ...

    def latest_version(self, name: str) -> str:
        """The latest release of a project (for feeds that name only the project)."""
        ...


# -- sinks ---------------------------------------------------------------------------------


def _transient(exc: BaseException) -> bool:
    from pkgvet.collect.index import (
        FetchTimeoutError,
        HTTPStatusError,
        ProjectNotFoundError,
    )

    cause = exc.__cause__ or exc
    if isinstance(cause, HTTPStatusError):
        return bool(cause.retryable) or cause.status == 404
    return isinstance(cause, (FetchTimeoutError, ProjectNotFoundError)) or (
        type(cause).__name__ == "FetchError"
    )


def latest_version(client: IndexClient, name: str) -> str:
    """The latest release of ``name`` with a usable file, from the index's JSON API."""
    import random

    from pkgvet.collect.index import CollectError, choose_version

    try:
        return choose_version(client.project(name), "latest", random.Random(0))
    except CollectError as exc:
        if _transient(exc):
            raise TransientError(exc.diagnostics()) from exc
        raise WatchError(exc.diagnostics()) from exc


@dataclass
class StoreSink:
    """Fetch from the index, scan here with the pipeline, write into the service database.

    A file the sink downloaded itself is removed from the collector's cache once its result is
    stored (the release then keeps no bytes, as after the service's upload retention), unless
    ``keep_downloads``: a watcher of a whole index would otherwise keep every release it saw.
    Files that were in the cache before are left alone."""

    store: ServiceStore
    client: IndexClient
    config: ScanConfig
    dist: str = "best"
    keep_downloads: bool = False

    def latest_version(self, name: str) -> str:
        return latest_version(self.client, name)

    def scan(self, name: str, version: str) -> list[Outcome]:
        from pkgvet.remote import RemoteError, Spec, fetch

        fresh: list[Path] = []
        try:
            files = fetch(Spec(name, version), self.client, self.dist, fresh)
        except RemoteError as exc:
            if _transient(exc):
                raise TransientError(exc.diagnostics()) from exc
            return [self.store_error(name, version, exc.diagnostics())]
        outcomes = []
        for label, path in files:
            outcome = self._scan_file(name, version, label, path)
            outcomes.append(outcome)
            if path in fresh and not self.keep_downloads and outcome.release_id is not None:
                self._drop_download(outcome.release_id, path)
        return outcomes

    def _drop_download(self, release_id: int, path: Path) -> None:
        """Remove a scanned download unless the database still points at it (a scan of the
        release waits or runs on these bytes). When the release's bytes are kept elsewhere (an
        earlier upload of the same file), the download is a spare copy and goes too."""
        if not self.store.forget_blob(release_id, str(path)):
            view = self.store.get_release(release_id, with_findings=False)
            if view is None or view.release.blob_path == str(path):
                return
        try:
            path.unlink(missing_ok=True)
            path.parent.rmdir()  # the cache's per-digest folder, now empty
        except OSError:
            pass  # removed meanwhile, or the folder holds another file: left as is

    def store_error(self, name: str, version: str, error: str) -> Outcome:
        sub = self.store.submit_name(name, version, source="watch", submitted_by="watch")
        if sub.created:
            self.store.fail_scan(sub.scan_id, error)
        return Outcome(name, version, None, None, "error", None, scan_id=sub.scan_id, error=error)

    def _scan_file(self, name: str, version: str, label: str, path: Path) -> Outcome:
        from pkgvet.collect.index import sha256_file
        from pkgvet.pipeline import scan_target
        from pkgvet.service.jobs import document

        sha = sha256_file(path)
        sub = self.store.submit_upload(
            filename=path.name,
            sha256=sha,
            size=path.stat().st_size,
            blob_path=str(path),
            source="watch",
            submitted_by="watch",
            name=name,
            version=version,
        )
        stored = self.store.get_scan(sub.scan_id, with_result=True, with_findings=False)
        if stored is not None and stored.finished:
            return _outcome_of_scan(name, version, path.name, sha, stored, reused=True)
        # a new scan, or one a crash left unfinished: it has no result yet, so run it
        self.store.mark_running(sub.scan_id)
        result = scan_target(path, self.config)
        result.target = label
        fingerprint = result.fingerprint
        result.features = None
        self.store.finish_scan(
            sub.scan_id, document(result), filename=path.name, fingerprint=fingerprint
        )
        return Outcome(
            name,
            version,
            path.name,
            sha,
            result.verdict.value,
            result.score,
            tuple(result.categories),
            tuple(result.reasons),
            sub.scan_id,
            sub.release_id,
            error=result.error,
        )


def _outcome_of_scan(
    name: str, version: str, filename: str | None, sha: str | None, scan: Any, reused: bool
) -> Outcome:
    result = (scan.result or {}).get("results", [{}])[0] if scan.result else {}
    return Outcome(
        name,
        version,
        filename,
        sha or result.get("sha256"),
        scan.verdict or "error",
        scan.score,
        tuple(scan.categories or ()),
        tuple(result.get("reasons") or ()),
        scan.id,
        scan.release_id,
        reused=reused,
        error=scan.error,
    )


@dataclass
class ServerSink:
    """Ask a running ``pkgvet serve`` to scan by name and version, and wait for the result."""

    server: str
    token: str
    http: httpx.Client
    wait_s: float = 600.0
    poll_s: float = 1.0
    client: IndexClient | None = None  # for latest versions of version-less announcements

    def _url(self, path: str) -> str:
        return self.server.rstrip("/") + path

    def latest_version(self, name: str) -> str:
        if self.client is None:
            raise WatchError("no index client to find the latest release")
        return latest_version(self.client, name)

    def scan(self, name: str, version: str) -> list[Outcome]:
        headers = {"Authorization": f"Bearer {self.token}"}
        try:
            res = self.http.post(
                self._url("/api/v1/scans/name"),
                json={"name": name, "version": version},
                headers=headers,
            )
        except httpx.HTTPError as exc:
            raise TransientError(f"{self.server}: cannot submit {name}=={version}: {exc}") from exc
        if res.status_code in (401, 403):
            raise WatchError(f"{self.server}: the API token was refused ({res.status_code})")
        if res.status_code == 503 or res.status_code >= 500:
            raise TransientError(f"{self.server}: busy or failing ({res.status_code})")
        if res.status_code not in (200, 202):
            raise WatchError(f"{self.server}: {res.status_code} for {name}=={version}")
        sub = res.json()
        scan = self._wait(int(sub["scan_id"]))
        result = (scan.get("result") or {}).get("results", [{}])[0] if scan.get("result") else {}
        return [
            Outcome(
                name,
                version,
                _filename_of(result.get("target")),
                result.get("sha256"),
                scan.get("verdict") or "error",
                scan.get("score"),
                tuple(scan.get("categories") or ()),
                tuple(result.get("reasons") or ()),
                int(scan["id"]),
                scan.get("release_id"),
                reused=not sub.get("created", True),
                error=scan.get("error"),
            )
        ]

    def _wait(self, scan_id: int) -> dict[str, Any]:
        deadline = time.monotonic() + self.wait_s
        while True:
            try:
                res = self.http.get(self._url(f"/api/v1/scans/{scan_id}"))
                if res.status_code == 200:
                    scan: dict[str, Any] = res.json()
                    if scan.get("status") in ("done", "error"):
                        return scan
            except httpx.HTTPError as exc:
                log.warning("scan %s: cannot read its status: %s", scan_id, exc)
            if time.monotonic() > deadline:
                raise TransientError(f"scan {scan_id} did not finish in {self.wait_s:g}s")
            time.sleep(self.poll_s)


def _filename_of(target: Any) -> str | None:
    text = str(target or "")
    if text.endswith(")") and "(" in text:
        return text[text.rfind("(") + 1 : -1]
    return None


# -- alerts --------------------------------------------------------------------------------


@dataclass
class Alerter:
    """Alerts on verdicts at or above ``min_verdict``: always the log, and a webhook if set."""

    http: httpx.Client
    webhook: str | None = None
    min_verdict: str = "suspicious"
    ui_url: str | None = None  # base URL of the triage pages, for links in alerts
    retries: int = 2

    def wants(self, outcome: Outcome) -> bool:
        rank = VERDICT_RANK.get(outcome.verdict)
        return rank is not None and rank >= VERDICT_RANK[self.min_verdict]

    def payload(self, outcome: Outcome, release: Release) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "event": "pkgvet.watch.alert",
            "name": outcome.name,
            "version": outcome.version,
            "filename": outcome.filename,
            "sha256": outcome.sha256,
            "verdict": outcome.verdict,
            "score": outcome.score,
            "categories": list(outcome.categories),
            "reasons": list(outcome.reasons),
            "scan_id": outcome.scan_id,
            "release_id": outcome.release_id,
            "feed": release.feed,
            "link": release.link,
        }
        if self.ui_url and outcome.release_id is not None:
            doc["url"] = f"{self.ui_url.rstrip('/')}/ui/releases/{outcome.release_id}"
        return doc

    def alert(self, outcome: Outcome, release: Release) -> bool:
        """Send the alert; True when the webhook took it (or there is none)."""
        log.warning(
            "ALERT %s %s==%s (%s) score %s: %s",
            outcome.verdict.upper(),
            outcome.name,
            outcome.version,
            outcome.filename,
            outcome.score,
            "; ".join(outcome.reasons[:3]),
        )
        if not self.webhook:
            return True
        body = json.dumps(self.payload(outcome, release), ensure_ascii=False).encode()
        for attempt in range(self.retries + 1):
            try:
                res = self.http.post(
                    self.webhook, content=body, headers={"Content-Type": "application/json"}
                )
                if res.status_code < 300:
                    return True
                log.error("webhook answered %s", res.status_code)
            except httpx.HTTPError as exc:
                log.error("webhook failed: %s", exc)
            if attempt < self.retries:
                time.sleep(0.5 * 2**attempt)
        return False


# -- the loop ------------------------------------------------------------------------------


@dataclass
class PollReport:
    """What one poll did."""

    announced: int = 0
    skipped: int = 0  # seen before
    scanned: int = 0  # files scanned now
    reused: int = 0  # answered by a stored scan
    alerts: int = 0
    errors: int = 0
    retry: int = 0  # left for a later poll
    verdicts: Counter[str] = field(default_factory=Counter)

    def __str__(self) -> str:
        verdicts = ", ".join(f"{v} {n}" for v, n in sorted(self.verdicts.items())) or "none"
        return (
            f"{self.announced} announced, {self.skipped} seen before, {self.scanned} scanned, "
            f"{self.reused} already stored, {self.alerts} alerts, {self.errors} errors, "
            f"{self.retry} to retry; verdicts: {verdicts}"
        )


@dataclass
class Watcher:
    """Polls ``feeds`` and hands each new release to ``sink``; state lives in ``store``."""

    feeds: Sequence[Feed]
    sink: Sink
    store: ServiceStore
    alerter: Alerter
    http: httpx.Client
    attempts: Counter[str] = field(default_factory=Counter)
    stop: threading.Event = field(default_factory=threading.Event)

    def poll_once(self) -> PollReport:
        report = PollReport()
        for feed in self.feeds:
            try:
                releases = feed.poll(self.http)
            except FeedError as exc:
                log.error("feed %s: %s", feed.url, exc.diagnostics())
                report.errors += 1
                continue
            self._handle_feed(feed, releases, report)
            if self.stop.is_set():
                break
        log.info("poll: %s", report)
        return report

    def _handle_feed(self, feed: Feed, releases: list[Release], report: PollReport) -> None:
        cursor = self.store.watch_cursor(feed.url) or ""
        # oldest first, so the cursor can follow a gap-free prefix
        ordered = sorted(releases, key=lambda r: r.published)
        report.announced += len(ordered)
        advancing = True
        newest = cursor
        for release in ordered:
            if self.stop.is_set():
                break
            if release.published and cursor and release.published < cursor:
                report.skipped += 1
                continue
            handled = self._handle(release, report)
            if handled and advancing and release.published:
                newest = max(newest, release.published)
            elif not handled:
                advancing = False
        if newest != cursor:
            self.store.set_watch_cursor(feed.url, newest)

    def _handle(self, release: Release, report: PollReport) -> bool:
        """Handle one announced release; True when it is done with (stored and seen)."""
        try:
            version = release.version
            if version is None:
                if self.store.is_seen(release.feed, release.name, PROJECT_SEEN_VERSION):
                    report.skipped += 1
                    return True
                version = self.sink.latest_version(release.name)
            if self.store.is_seen(SEEN_RELEASES, release.name, version):
                report.skipped += 1
                if release.version is None:
                    self.store.mark_seen(release.feed, release.name, PROJECT_SEEN_VERSION)
                return True
            outcomes = self.sink.scan(release.name, version)
        except TransientError as exc:
            key = release.key
            self.attempts[key] += 1
            if self.attempts[key] < MAX_ATTEMPTS:
                log.warning("%s: %s (will retry)", key, exc.diagnostics())
                report.retry += 1
                return False
            log.error("%s: %s (giving up after %d attempts)", key, exc.diagnostics(), MAX_ATTEMPTS)
            report.errors += 1
            if release.version is not None and isinstance(self.sink, StoreSink):
                self.sink.store_error(release.name, release.version, exc.diagnostics())
            self._mark(release, release.version or PROJECT_SEEN_VERSION)
            return True
        except WatchError as exc:
            log.error("%s: %s", release.key, exc.diagnostics())
            report.errors += 1
            return False
        for outcome in outcomes:
            report.verdicts[outcome.verdict] += 1
            if outcome.reused:
                report.reused += 1
            else:
                report.scanned += 1
            if outcome.error:
                report.errors += 1
                log.error("%s==%s: %s", outcome.name, outcome.version, outcome.error)
            else:
                log.info(
                    "%s==%s (%s): %s, score %s",
                    outcome.name,
                    outcome.version,
                    outcome.filename,
                    outcome.verdict,
                    outcome.score,
                )
            if self.alerter.wants(outcome):
                self.alerter.alert(outcome, release)
                report.alerts += 1
        self._mark(release, version)
        return True

    def _mark(self, release: Release, version: str) -> None:
        if version:
            self.store.mark_seen(SEEN_RELEASES, release.name, version)
        if release.version is None:
            self.store.mark_seen(release.feed, release.name, PROJECT_SEEN_VERSION)

    def run(self, interval: float, once: bool = False) -> None:
        """Poll every ``interval`` seconds until :attr:`stop` is set (or once)."""
        while not self.stop.is_set():
            self.poll_once()
            if once:
                return
            self.stop.wait(interval)
