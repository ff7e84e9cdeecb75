"""Client for the PyPI JSON API and the on-disk distribution cache.

Only archive bytes are fetched: nothing downloaded here is ever installed,
unpacked or executed.  Every file is checked against the sha256 digest the
index publishes before it is written (atomically) to the cache.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, get_args
from urllib.parse import urljoin, urlsplit

import httpx
from packaging.tags import Tag
from packaging.utils import InvalidWheelFilename, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from pkgvet.errors import PkgvetError

DEFAULT_INDEX_URL = "https://pypi.org/simple"
"""Index used when neither ``--index-url`` nor ``PIP_INDEX_URL`` is set."""

DEFAULT_MAX_BYTES = 50 * 1024 * 1024
"""Default cap on the size of one downloaded file (50 MiB)."""

VersionPolicy = Literal["latest", "random"]
"""How a version is chosen among a project's releases."""

VERSION_POLICIES: tuple[VersionPolicy, ...] = get_args(VersionPolicy)

_SHA256_RE = re.compile(r"[0-9a-f]{64}")
_PURE_PY3 = Tag("py3", "none", "any")
_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
_ACCEPTED_TYPES = frozenset({"sdist", "bdist_wheel"})


class CollectError(PkgvetError):
    """Base class of every error raised by :mod:`pkgvet.collect`."""

    reason = "error"
    """Short, stable label used to count failures in run summaries."""


class SpecError(CollectError):
    """A sampling spec or names file cannot be used."""

    reason = "bad spec"


class ManifestError(CollectError):
    """A manifest file is malformed."""

    reason = "bad manifest"


class ProjectNotFoundError(CollectError):
    """The index answered 404 for the project."""

    reason = "not found"

    def __init__(self, name: str) -> None:
        super().__init__(f"{name}: project not found on the index (HTTP 404)")


class NoFilesError(CollectError):
    """The project has no usable (non-yanked sdist or wheel) file."""

    reason = "no files"


class FileTooLargeError(CollectError):
    """Every candidate file is bigger than the size cap."""

    reason = "too large"


class HashMismatchError(CollectError):
    """Downloaded bytes do not match the published sha256 digest."""

    reason = "hash mismatch"


class PinMismatchError(CollectError):
    """A pinned file is missing from the index or published with another sha256."""

    reason = "pin mismatch"


class FetchTimeoutError(CollectError):
    """The index or file host did not answer in time."""

    reason = "timeout"


class FetchError(CollectError):
    """Any other transport or HTTP failure."""

    reason = "fetch error"


class HTTPStatusError(FetchError):
    """A non-200 answer other than a project 404; 429 and 5xx are retried."""

    def __init__(self, name: str, url: str, status: int) -> None:
        super().__init__(f"{name}: HTTP {status} from {url}")
        self.status = status
        self.reason = f"http {status}"
        self.retryable = status in _RETRY_STATUSES


class BadResponseError(CollectError):
    """The index answered with data that cannot be trusted or parsed."""

    reason = "bad response"


class CacheError(CollectError):
    """A downloaded file could not be written to the cache."""

    reason = "cache error"


@dataclass(frozen=True, slots=True)
class DistFile:
    """One file of a release, as described by the JSON API."""

    filename: str
    url: str
    """Absolute URL, already resolved against the JSON document's URL."""
    sha256: str
    size: int | None
    upload_time: str
    packagetype: str
    yanked: bool


@dataclass(frozen=True, slots=True)
class Project:
    """A project's releases, keyed by version string as published."""

    name: str
    releases: Mapping[str, tuple[DistFile, ...]]


@dataclass(frozen=True, slots=True)
class Download:
    """A distribution file that is present, verified, in the cache."""

    name: str
    version: str
    file: DistFile
    path: Path
    size: int
    from_cache: bool


def resolve_index_url(index_url: str | None = None) -> str:
    """Return ``index_url``, else ``$PIP_INDEX_URL``, else the public PyPI index."""
    return index_url or os.environ.get("PIP_INDEX_URL") or DEFAULT_INDEX_URL


def api_base(index_url: str) -> str:
    """Derive the JSON API base from a simple-index URL.

    ``https://pypi.org/simple/`` becomes ``https://pypi.org``; a URL that does
    not end in ``/simple`` only loses its trailing slashes.
    """
    base = index_url.rstrip("/")
    if base.endswith("/simple"):
        base = base[: -len("/simple")]
    return base.rstrip("/")


def cache_dir() -> Path:
    """Return the cache root: ``$PKGVET_CACHE_DIR`` or ``~/.cache/pkgvet``."""
    configured = os.environ.get("PKGVET_CACHE_DIR")
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".cache" / "pkgvet"


def dist_path(cache: Path, sha256: str, filename: str) -> Path:
    """Return where a file lives in the cache: ``dists/<sha[:2]>/<sha>/<filename>``."""
    return cache / "dists" / sha256[:2] / sha256 / filename


def sha256_file(path: Path) -> str:
    """Return the hex sha256 digest of a file's contents."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def choose_version(project: Project, policy: VersionPolicy, rng: random.Random) -> str:
    """Pick a version of ``project`` that has a usable file.

    Versions whose string does not parse, and versions whose files are all
    yanked (or neither sdists nor wheels), are skipped.  Pre-releases are only
    considered when nothing else is left.  ``latest`` takes the highest
    version, ``random`` draws one with ``rng``.
    """
    candidates: list[tuple[Version, str]] = []
    for version_text, files in project.releases.items():
        if not any(_usable(f) for f in files):
            continue
        try:
            candidates.append((Version(version_text), version_text))
        except InvalidVersion:
            continue
    if not candidates:
        raise NoFilesError(f"{project.name}: no version with a non-yanked sdist or wheel")
    finals = [c for c in candidates if not c[0].is_prerelease]
    pool = sorted(finals or candidates)
    if policy == "latest":
        return pool[-1][1]
    return rng.choice(pool)[1]


def choose_file(name: str, files: tuple[DistFile, ...], max_bytes: int) -> DistFile:
    """Pick the file to download among one release's files.

    The sdist comes first (``.tar.gz`` before other formats); only when no
    sdist fits is a wheel taken, ``py3-none-any`` first, then other pure
    wheels, then the rest by filename.  Files larger than ``max_bytes`` are
    skipped.
    """
    usable = [f for f in files if _usable(f)]
    if not usable:
        raise NoFilesError(f"{name}: release has no non-yanked sdist or wheel")
    fitting = [f for f in usable if f.size is None or f.size <= max_bytes]
    if not fitting:
        smallest = min(f.size or 0 for f in usable)
        raise FileTooLargeError(
            f"{name}: smallest file is {smallest} bytes, over the cap of {max_bytes} bytes"
        )
    sdists = [f for f in fitting if f.packagetype == "sdist"]
    if sdists:
        return min(sdists, key=lambda f: (not f.filename.endswith(".tar.gz"), f.filename))
    return min(fitting, key=_wheel_preference)


def _usable(file: DistFile) -> bool:
    return not file.yanked and file.packagetype in _ACCEPTED_TYPES


def _wheel_preference(file: DistFile) -> tuple[int, str]:
    try:
        tags = parse_wheel_filename(file.filename)[3]
    except InvalidWheelFilename:
        return (3, file.filename)
    if _PURE_PY3 in tags:
        return (0, file.filename)
    if any(t.abi == "none" and t.platform == "any" for t in tags):
        return (1, file.filename)
    return (2, file.filename)


def parse_project(name: str, json_url: str, document: Any) -> Project:
    """Turn a JSON API document into a :class:`Project`.

    File URLs are resolved against ``json_url``; entries that are malformed
    (bad digest, unsafe filename, non-HTTP URL) raise :class:`BadResponseError`.
    """
    if not isinstance(document, dict) or not isinstance(document.get("releases"), dict):
        raise BadResponseError(f"{name}: JSON document has no 'releases' mapping")
    releases: dict[str, tuple[DistFile, ...]] = {}
    for version_text, files in document["releases"].items():
        if not isinstance(files, list):
            raise BadResponseError(f"{name} {version_text}: file list is not a list")
        releases[str(version_text)] = tuple(_parse_file(name, json_url, f) for f in files)
    return Project(name=name, releases=releases)


def _parse_file(name: str, json_url: str, entry: Any) -> DistFile:
    try:
        filename = str(entry["filename"])
        url = urljoin(json_url, str(entry["url"]))
        sha256 = str(entry["digests"]["sha256"]).lower()
        raw_size = entry.get("size")
        upload_time = str(entry.get("upload_time_iso_8601") or entry.get("upload_time") or "")
        packagetype = str(entry.get("packagetype", ""))
        yanked = bool(entry.get("yanked", False))
    except (KeyError, TypeError, AttributeError) as exc:
        raise BadResponseError(f"{name}: malformed file entry ({exc!r})") from exc
    if not is_sha256(sha256):
        raise BadResponseError(f"{name}: {filename!r} has no valid sha256 digest")
    if not is_safe_filename(filename):
        raise BadResponseError(f"{name}: unsafe filename {filename!r}")
    if urlsplit(url).scheme not in ("http", "https"):
        raise BadResponseError(f"{name}: {filename} has a non-HTTP URL {url!r}")
    size = raw_size if isinstance(raw_size, int) and not isinstance(raw_size, bool) else None
    return DistFile(
        filename=filename,
        url=url,
        sha256=sha256,
        size=size,
        upload_time=upload_time,
        packagetype=packagetype,
        yanked=yanked,
    )


def is_sha256(text: str) -> bool:
    """Return whether ``text`` is a lowercase hex sha256 digest."""
    return _SHA256_RE.fullmatch(text) is not None


def is_safe_filename(filename: str) -> bool:
    """Return whether ``filename`` is a plain file name, safe to use in a cache path."""
    return (
        0 < len(filename) <= 255
        and not filename.startswith(".")
        and not any(c in filename for c in "/\\\0")
    )


class IndexClient:
    """Fetches project metadata and distribution files from one index.

    The client is thread-safe; use it as a context manager so its connection
    pool is closed.  Transport errors, timeouts and 429/5xx answers are
    retried ``retries`` times with a short back-off.
    """

    def __init__(
        self,
        index_url: str | None = None,
        *,
        timeout: float = 30.0,
        retries: int = 2,
        max_connections: int = 16,
    ) -> None:
        self.base = api_base(resolve_index_url(index_url))
        self.retries = retries
        self._http = httpx.Client(
            timeout=httpx.Timeout(timeout),
            follow_redirects=True,
            limits=httpx.Limits(max_connections=max_connections),
            headers={"User-Agent": "pkgvet-collect (static scanner corpus builder)"},
        )

    def __enter__(self) -> IndexClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the underlying connection pool."""
        self._http.close()

    def json_url(self, name: str) -> str:
        """Return the project JSON endpoint for a (canonical) project name."""
        return f"{self.base}/pypi/{name}/json"

    def project(self, name: str) -> Project:
        """Fetch and parse the project JSON document."""
        url = self.json_url(name)
        try:
            body = self._get(name, url, max_bytes=DEFAULT_MAX_BYTES)
        except HTTPStatusError as exc:
            if exc.status == 404:
                raise ProjectNotFoundError(name) from exc
            raise
        try:
            document = json.loads(body)
        except ValueError as exc:
            raise BadResponseError(f"{name}: invalid JSON from {url}") from exc
        return parse_project(name, url, document)

    def download(self, name: str, file: DistFile, cache: Path, max_bytes: int) -> tuple[Path, bool]:
        """Make ``file`` present in ``cache``; return its path and whether it was cached.

        A cached copy is reused when its sha256 matches; otherwise the file is
        downloaded into memory (at most ``max_bytes``), verified, and written
        atomically.
        """
        target = dist_path(cache, file.sha256, file.filename)
        if target.is_file() and sha256_file(target) == file.sha256:
            return target, True
        body = self._get(name, file.url, max_bytes=max_bytes)
        actual = hashlib.sha256(body).hexdigest()
        if actual != file.sha256:
            raise HashMismatchError(
                f"{name}: {file.filename} has sha256 {actual}, index says {file.sha256}"
            )
        _write_atomic(name, target, body)
        return target, False

    def fetch(
        self,
        name: str,
        *,
        policy: VersionPolicy,
        seed: int,
        cache: Path,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> Download:
        """Choose a version and file of ``name`` and make it present in ``cache``.

        The random policy draws from a generator seeded with ``seed`` and the
        name, so the choice does not depend on the order of work.
        """
        project = self.project(name)
        version = choose_version(project, policy, random.Random(f"{seed}:{name}"))
        file = choose_file(name, project.releases[version], max_bytes)
        path, from_cache = self.download(name, file, cache, max_bytes)
        return Download(
            name=name,
            version=version,
            file=file,
            path=path,
            size=path.stat().st_size,
            from_cache=from_cache,
        )

    def fetch_pinned(
        self,
        name: str,
        filename: str,
        sha256: str,
        *,
        cache: Path,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> Download:
        """Make the file ``filename`` of ``name``, pinned to ``sha256``, present in ``cache``.

        A cached copy whose sha256 matches is used without any request.
        Otherwise the project JSON is fetched, the file with that filename is
        looked up in every release (yanked files included), and it is only
        downloaded when the index publishes the pinned digest; anything else
        raises :class:`PinMismatchError` and nothing is written.
        """
        target = dist_path(cache, sha256, filename)
        if target.is_file() and sha256_file(target) == sha256:
            file = DistFile(filename, "", sha256, None, "", "", False)
            return Download(name, "", file, target, target.stat().st_size, True)
        project = self.project(name)
        found = [
            (version, f)
            for version, files in project.releases.items()
            for f in files
            if f.filename == filename
        ]
        if not found:
            raise PinMismatchError(f"{name}: {filename} is not published on the index")
        version, file = found[0]
        if file.sha256 != sha256:
            raise PinMismatchError(
                f"{name}: {filename} is published with sha256 {file.sha256}, manifest pins {sha256}"
            )
        path, from_cache = self.download(name, file, cache, max_bytes)
        return Download(name, version, file, path, path.stat().st_size, from_cache)

    def _get(self, name: str, url: str, *, max_bytes: int) -> bytes:
        attempt = 0
        while True:
            try:
                return self._get_once(name, url, max_bytes)
            except (FetchTimeoutError, FetchError) as exc:
                permanent = isinstance(exc, HTTPStatusError) and not exc.retryable
                if permanent or attempt >= self.retries:
                    raise
                time.sleep(0.5 * 2**attempt)
                attempt += 1

    def _get_once(self, name: str, url: str, max_bytes: int) -> bytes:
        try:
            with self._http.stream("GET", url) as response:
                if response.status_code != 200:
                    raise HTTPStatusError(name, url, response.status_code)
                declared = response.headers.get("Content-Length", "")
                if declared.isdigit() and int(declared) > max_bytes:
                    raise FileTooLargeError(
                        f"{name}: {url} is {declared} bytes, over the cap of {max_bytes}"
                    )
                body = bytearray()
                for chunk in response.iter_bytes():
                    body += chunk
                    if len(body) > max_bytes:
                        raise FileTooLargeError(
                            f"{name}: {url} exceeds the cap of {max_bytes} bytes"
                        )
                return bytes(body)
        except httpx.TimeoutException as exc:
            raise FetchTimeoutError(f"{name}: timed out fetching {url}") from exc
        except httpx.HTTPError as exc:
            raise FetchError(f"{name}: cannot fetch {url}: {exc}") from exc


def _write_atomic(name: str, target: Path, body: bytes) -> None:
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(body)
                handle.flush()
                os.fsync(handle.fileno())
            tmp.chmod(0o644)
            tmp.replace(target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise CacheError(f"{name}: cannot write {target}: {exc}") from exc
