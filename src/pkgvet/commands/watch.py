"""``pkgvet watch``: follow an index's feed of new releases and scan each one once.

Needs the ``serve`` extra (the watcher's state, and in ``--db`` mode its results, live in a
service database). See :mod:`pkgvet.watch.watcher` and docs/triage-and-watch.md.
"""

from __future__ import annotations

import logging
import signal
from pathlib import Path
from types import FrameType

import click

from pkgvet.commands.scan import UsageFailure
from pkgvet.watch.feeds import DEFAULT_FEEDS


@click.command("watch")
@click.option(
    "--feed",
    "feeds",
    multiple=True,
    metavar="URL",
    help="An RSS feed of releases, or simple:URL for a PEP 503 index polled for changes "
    "(repeatable). Default: PyPI's updates and new-packages feeds.",
)
@click.option(
    "--db",
    envvar="PKGVET_DB_URL",
    help="Service database (SQLite path or SQLAlchemy URL): without --server, results are "
    "scanned here and stored in it; with --server it only keeps the watcher's state "
    "(default then: watch-state.db in the pkgvet cache).",
)
@click.option("--server", metavar="URL", help="A running `pkgvet serve` to scan through.")
@click.option("--token", envvar="PKGVET_TOKEN", help="API token for --server ($PKGVET_TOKEN).")
@click.option(
    "--index-url",
    help="Index to fetch files from (its JSON API); default $PIP_INDEX_URL, else PyPI.",
)
@click.option("--webhook", metavar="URL", help="POST a JSON alert here for flagged releases.")
@click.option(
    "--min-verdict",
    type=click.Choice(["suspicious", "malicious"]),
    default="suspicious",
    show_default=True,
    help="Lowest verdict that alerts.",
)
@click.option("--ui-url", metavar="URL", help="Base URL of the triage pages, linked in alerts.")
@click.option(
    "--interval",
    type=click.FloatRange(min=1.0),
    default=300.0,
    show_default=True,
    help="Seconds between polls.",
)
@click.option("--once", is_flag=True, help="Poll once and exit (for cron and tests).")
@click.option(
    "--dist",
    type=click.Choice(["best", "sdist", "wheel", "all"]),
    default="best",
    show_default=True,
    help="Which files of a release to scan (--db mode).",
)
@click.option("--no-model", is_flag=True, help="Rules-only verdicts (--db mode).")
@click.option(
    "--keep-downloads",
    is_flag=True,
    help="Keep the files the watcher downloads in the collector's cache (--db mode); by "
    "default each is removed once its result is stored.",
)
@click.option("-v", "--verbose", is_flag=True, help="Log every release, not only alerts.")
def watch_command(
    feeds: tuple[str, ...],
    db: str | None,
    server: str | None,
    token: str | None,
    index_url: str | None,
    webhook: str | None,
    min_verdict: str,
    ui_url: str | None,
    interval: float,
    once: bool,
    dist: str,
    no_model: bool,
    keep_downloads: bool,
    verbose: bool,
) -> None:
    """Scan every new release a feed announces, store it, and alert on flagged ones.

    Each release is scanned once: a restart resumes where the watcher stopped, and a release
    is marked seen only after its result is stored."""
    try:
        import httpx

        from pkgvet.collect.index import IndexClient
        from pkgvet.config import ScanConfig
        from pkgvet.service.db import ServiceStore, ServiceStoreError
        from pkgvet.watch.feeds import make_feed
        from pkgvet.watch.watcher import Alerter, ServerSink, Sink, StoreSink, Watcher
    except ImportError as exc:
        raise UsageFailure(
            f"pkgvet watch needs the `serve` extra: pip install 'pkgvet[serve]' ({exc})"
        ) from exc
    if server and not token:
        raise UsageFailure("--server needs --token (or $PKGVET_TOKEN)")
    if not server and not db:
        raise UsageFailure("give --db (scan here into a service database) or --server URL")
    if db is None:
        from pkgvet.collect.index import cache_dir

        db = str(cache_dir() / "watch-state.db")
        Path(db).parent.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        store = ServiceStore(db)
    except ServiceStoreError as exc:
        raise UsageFailure(exc.diagnostics()) from exc
    headers = {"User-Agent": "pkgvet-watch (static scanner)"}
    with (
        store,
        httpx.Client(timeout=30.0, follow_redirects=True, headers=headers) as http,
        IndexClient(index_url) as client,
    ):
        sink: Sink
        if server:
            assert token is not None
            sink = ServerSink(server, token, http, client=client)
        else:
            config = ScanConfig(use_model=not no_model, keep_features=True)
            sink = StoreSink(store, client, config, dist, keep_downloads)
        watcher = Watcher(
            feeds=[make_feed(f) for f in feeds or DEFAULT_FEEDS],
            sink=sink,
            store=store,
            alerter=Alerter(http, webhook, min_verdict, ui_url or server),
            http=http,
        )

        def _stop(signum: int, frame: FrameType | None) -> None:
            watcher.stop.set()

        signal.signal(signal.SIGTERM, _stop)
        try:
            if once:
                report = watcher.poll_once()
                click.echo(str(report), err=True)
            else:
                watcher.run(interval)
        except KeyboardInterrupt:  # pragma: no cover - interactive
            watcher.stop.set()
