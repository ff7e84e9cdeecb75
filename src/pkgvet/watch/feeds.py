"""Release feeds for ``pkgvet watch``: PyPI's RSS feeds and PEP 503 simple indexes.

Feed bodies come from the network and are parsed as hostile input: a size cap, no DTD (the
standard library's parser behind a refusal of any ``<!DOCTYPE``/``<!ENTITY``, so no entity
expansion and no external entity), and items that do not look like a release are skipped, not
raised. Nothing here fetches package files.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from html.parser import HTMLParser
from typing import TYPE_CHECKING, Protocol
from urllib.parse import unquote, urljoin, urlsplit

from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)

from pkgvet.errors import PkgvetError

if TYPE_CHECKING:
    import httpx

PYPI_UPDATES = "https://pypi.org/rss/updates.xml"
PYPI_PACKAGES = "https://pypi.org/rss/packages.xml"
DEFAULT_FEEDS = (PYPI_UPDATES, PYPI_PACKAGES)
MAX_FEED_BYTES = 8 * 1024 * 1024
_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?$")
_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.+!_-]{0,127}$")


class FeedError(PkgvetError):
    """A feed that cannot be read or parsed (unreachable, too large, not RSS, has a DTD)."""


@dataclass(frozen=True, slots=True)
class Release:
    """One release announced by a feed. ``version`` is None when the feed names only the project
    (PyPI's new-packages feed): the watcher then takes the latest release."""

    name: str  # canonical (PEP 503) name
    version: str | None
    feed: str
    link: str = ""
    published: str = ""  # ISO 8601 when the feed gives a date

    @property
    def key(self) -> str:
        """Identity in the watcher's seen table: ``name==version``."""
        return f"{self.name}=={self.version}" if self.version else self.name


class Feed(Protocol):
    """A source of newly published releases."""

    url: str

    def poll(self, http: httpx.Client) -> list[Release]:
        """The releases the feed lists now (old ones too: the seen table deduplicates)."""
        ...


def _get(http: httpx.Client, url: str) -> bytes:
    import httpx

    try:
        with http.stream("GET", url) as response:
            if response.status_code != 200:
                raise FeedError(f"{url}: HTTP {response.status_code}")
            body = bytearray()
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > MAX_FEED_BYTES:
                    raise FeedError(f"{url}: over {MAX_FEED_BYTES} bytes: not read")
            return bytes(body)
    except httpx.HTTPError as exc:
        raise FeedError(f"{url}: cannot fetch: {exc}") from exc


def _parse_xml(body: bytes, url: str) -> ET.Element:
    low = body.lower()
    if b"<!doctype" in low or b"<!entity" in low:
        raise FeedError(f"{url}: the feed declares a DTD or entities: refused")
    try:
        # expat without a DTD expands no entity but the five predefined ones and character
        # references: no billion laughs, no external entity
        root = ET.fromstring(body)
    except ET.ParseError as exc:
        raise FeedError(f"{url}: not well-formed XML: {exc}") from exc
    return root


def _valid(name: str, version: str | None) -> bool:
    if not _NAME.match(name) or len(name) > 200:
        return False
    return version is None or bool(_VERSION.match(version))


def _iso(date_text: str) -> str:
    try:
        return parsedate_to_datetime(date_text).isoformat()
    except (TypeError, ValueError, IndexError):
        return ""


def parse_rss(body: bytes, url: str) -> list[Release]:
    """Releases of an RSS 2.0 feed in PyPI's shapes.

    ``/rss/updates.xml`` items link to ``/project/NAME/VERSION/`` (title ``NAME VERSION``);
    ``/rss/packages.xml`` items link to ``/project/NAME/`` (title ``NAME added to PyPI``), so
    their version is None. Items that fit neither are skipped."""
    root = _parse_xml(body, url)
    if root.tag != "rss":
        raise FeedError(f"{url}: not an RSS feed (root element {root.tag[:40]!r})")
    out: list[Release] = []
    for item in root.iter("item"):
        title = (item.findtext("title") or "").strip()
        link = (item.findtext("link") or "").strip()
        published = _iso((item.findtext("pubDate") or "").strip())
        parsed = _from_link(link) or _from_title(title)
        if parsed is None:
            continue
        name, version = parsed
        if not _valid(name, version):
            continue
        out.append(Release(str(canonicalize_name(name)), version, url, link, published))
    return out


def _from_link(link: str) -> tuple[str, str | None] | None:
    parts = [unquote(p) for p in urlsplit(link).path.split("/") if p]
    if len(parts) >= 2 and parts[0] == "project":
        return parts[1], (parts[2] if len(parts) >= 3 else None)
    return None


def _from_title(title: str) -> tuple[str, str | None] | None:
    words = title.split()
    if len(words) == 2:
        return words[0], words[1]
    if len(words) >= 2 and title.endswith("added to PyPI"):
        return words[0], None
    return None


@dataclass(slots=True)
class RssFeed:
    """An RSS feed of releases (PyPI's updates or new-packages feed, or a mirror's)."""

    url: str

    def poll(self, http: httpx.Client) -> list[Release]:
        return parse_rss(_get(http, self.url), self.url)


class _Links(HTMLParser):
    """The ``<a href>`` targets and texts of a PEP 503 page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.links: list[tuple[str, str]] = []
        self._href: str | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self._href = dict(attrs).get("href") or ""
            self._text = []

    def handle_data(self, data: str) -> None:
        if self._href is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._href is not None:
            self.links.append((self._href, "".join(self._text).strip()))
            self._href = None


def parse_simple_links(body: bytes) -> list[tuple[str, str]]:
    """``(href, text)`` of every anchor of a PEP 503 page."""
    parser = _Links()
    parser.feed(body.decode("utf-8", "replace"))
    parser.close()
    return parser.links


def version_of(filename: str) -> tuple[str, str] | None:
    """``(canonical name, version)`` of an sdist or wheel filename; None for other files."""
    try:
        if filename.endswith(".whl"):
            name, version, _build, _tags = parse_wheel_filename(filename)
        else:
            name, version = parse_sdist_filename(filename)
    except (InvalidSdistFilename, InvalidWheelFilename):
        return None
    return str(name), str(version)


@dataclass(slots=True)
class SimpleIndexFeed:
    """A PEP 503 simple index polled for changes: every project page is read on each poll and
    every release found is reported (the seen table keeps only the new ones). Meant for private
    indexes and mirrors of modest size; for PyPI itself use the RSS feeds."""

    url: str

    def poll(self, http: httpx.Client) -> list[Release]:
        base = self.url.rstrip("/") + "/"
        out: dict[str, Release] = {}
        for href, text in parse_simple_links(_get(http, base)):
            name = text or href.rstrip("/").rsplit("/", 1)[-1]
            if not _valid(name, None):
                continue
            page = urljoin(base, href)
            try:
                links = parse_simple_links(_get(http, page))
            except FeedError:
                continue  # one bad project page must not hide the others
            for file_href, file_text in links:
                filename = file_text or unquote(urlsplit(file_href).path.rsplit("/", 1)[-1])
                parsed = version_of(filename)
                if parsed is None or not _valid(*parsed):
                    continue
                release = Release(parsed[0], parsed[1], self.url, page)
                out.setdefault(release.key, release)
        return list(out.values())


def make_feed(spec: str) -> Feed:
    """``simple:URL`` for a PEP 503 index, anything else is an RSS feed URL."""
    if spec.startswith("simple:"):
        return SimpleIndexFeed(spec[len("simple:") :])
    return RssFeed(spec)
