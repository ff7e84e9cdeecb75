"""Mirror audit: which known-malicious releases does a package index still serve?

Guo et al. (ASE 2023) found removed malicious packages still served by mirrors long after PyPI
deleted them (81.6%, 80.5% and 66.9% of 2,035 at three large mirrors). This module checks one
index for a list of known-malicious releases and says which files it should purge.

- **Known releases** come from the known-malicious store (OSV ``MAL-`` advisories imported with
  ``pkgvet known import``: names, versions or "all versions", archive sha256 digests), from a
  dataset directory in the ``name/version/file`` layout (the local files are hashed) or from a
  manifest TSV (``path`` and ``sha256`` columns).
- **The index** is asked per project through the simple API: PEP 691 JSON
  (``Accept: application/vnd.pypi.simple.v1+json``) with a fallback to PEP 503 HTML (parsed
  with :mod:`html.parser`; digests from the ``#sha256=`` URL fragment), or through the PyPI JSON
  API (``/pypi/<name>/json``). Requests run in a bounded thread pool with timeouts and retries.
- **Files are never downloaded**, except with ``verify_hashes`` when the index publishes no
  sha256 for a file of a known release: then its bytes are read into memory (size-capped),
  hashed and discarded. Nothing is written to disk, installed or unpacked.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urldefrag, urljoin, urlsplit

from pkgvet.errors import PkgvetError
from pkgvet.known import canonical, name_version_from_filename

PEP691_JSON = "application/vnd.pypi.simple.v1+json"
ACCEPT = f"{PEP691_JSON}, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01"
ALL_VERSIONS = "*"
BY_SHA256 = "(sha256 only)"  # digests whose file name gives no version: matched by digest alone
DEFAULT_MAX_BYTES = 50 * 1024 * 1024
_SHA256 = re.compile(r"[0-9a-f]{64}")
_RETRY = frozenset({429, 500, 502, 503, 504})

Api = Literal["auto", "simple", "json"]


class MirrorError(PkgvetError):
    """An input or index that cannot be used."""


# -- known-malicious releases ------------------------------------------------------------------


@dataclass(slots=True)
class KnownRelease:
    """One known-malicious release: a version, or every version (``*``), with the sha256 digests
    of its known files (filename -> sha256; may be empty) and where it is known from."""

    name: str  # canonical
    version: str
    files: dict[str, str] = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)


def _merge(releases: Iterable[KnownRelease]) -> list[KnownRelease]:
    merged: dict[tuple[str, str], KnownRelease] = {}
    for r in releases:
        key = (r.name, _norm_version(r.version))
        cur = merged.get(key)
        if cur is None:
            merged[key] = KnownRelease(r.name, r.version, dict(r.files), list(r.sources))
        else:
            cur.files.update(r.files)
            cur.sources.extend(s for s in r.sources if s not in cur.sources)
    return sorted(merged.values(), key=lambda r: (r.name, r.version))


def _norm_version(v: str) -> str:
    """A version as compared: PEP 440 canonical form (``1.0.0`` == ``1.0`` == ``1``)."""
    if v in (ALL_VERSIONS, BY_SHA256):
        return v
    from packaging.utils import canonicalize_version

    return str(canonicalize_version(v.strip())).lower()


def from_known_store(path: Path) -> list[KnownRelease]:
    """Releases of the OSV store: one per listed version, or ``*`` for an advisory that covers
    every version (or only ranges); archive digests attach to the version parsed from their file
    name, else to an entry matched by digest only."""
    from pkgvet.known import KnownError, KnownStore

    if not path.is_file():
        raise MirrorError(f"{path}: no known-malicious store (run 'pkgvet known import')")
    try:
        store = KnownStore.open(path)
    except KnownError as exc:
        raise MirrorError(exc.diagnostics()) from exc
    out: list[KnownRelease] = []
    with store:
        # The store has no bulk-read API; it is a plain SQLite file opened read-only.
        rows = store.conn.execute(
            "SELECT advisory_id, name, all_versions, versions, ranges FROM affected"
        ).fetchall()
        hashes = store.conn.execute(
            "SELECT sha256, name, filename, advisory_id FROM hashes WHERE kind = 'archive'"
        ).fetchall()
    for adv, name, all_v, versions, ranges in rows:
        vs = [str(v) for v in json.loads(versions)]
        if all_v or (not vs and json.loads(ranges)):
            out.append(KnownRelease(str(name), ALL_VERSIONS, {}, [str(adv)]))
        out.extend(KnownRelease(str(name), v, {}, [str(adv)]) for v in vs)
    for sha, name, filename, adv in hashes:
        nv = name_version_from_filename(str(filename)) if filename else None
        version = nv[1] if nv else BY_SHA256
        fn = str(filename) or f"(sha256 {str(sha)[:12]})"
        out.append(KnownRelease(str(name), version, {fn: str(sha).lower()}, [str(adv)]))
    return _merge(out)


def _sha256_file(path: Path) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def from_dataset(root: Path) -> list[KnownRelease]:
    """Releases of a ``name/version/file`` tree; each archive file is hashed (an unpacked
    directory or lone ``setup.py`` gives the release without a digest)."""
    from pkgvet.archive import is_archive_name
    from pkgvet.pipeline import iter_targets

    if not root.is_dir():
        raise MirrorError(f"{root}: not a dataset directory")
    out = []
    for target in iter_targets(root):
        rel = target.relative_to(root).as_posix()
        parts = rel.split("/")
        if len(parts) < 2:
            continue
        files: dict[str, str] = {}
        if target.is_file() and is_archive_name(target.name):
            files[target.name] = _sha256_file(target)
        out.append(KnownRelease(canonical(parts[0]), parts[1], files, [f"dataset:{rel}"]))
    return _merge(out)


def from_manifest(path: Path) -> list[KnownRelease]:
    """Releases of a manifest TSV: ``path`` (``name/version/file``) and ``sha256`` columns (the
    malregistry ``MANIFEST.tsv``); a ``name`` and ``version`` column, when present, win."""
    import csv

    try:
        with path.open(encoding="utf-8", newline="") as fh:
            rows = list(csv.DictReader(fh, delimiter="\t"))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise MirrorError(f"{path}: cannot read the manifest ({exc})") from exc
    out = []
    for row in rows:
        rel = (row.get("path") or "").strip()
        parts = rel.split("/")
        name = (row.get("name") or (parts[0] if len(parts) >= 2 else "")).strip()
        version = (row.get("version") or (parts[1] if len(parts) >= 2 else "")).strip()
        if not name or not version:
            nv = name_version_from_filename(parts[-1]) if rel else None
            if nv is None:
                continue
            name, version = nv
        sha = (row.get("sha256") or "").strip().lower()
        files = {parts[-1]: sha} if _SHA256.fullmatch(sha) else {}
        out.append(KnownRelease(canonical(name), version, files, [f"manifest:{rel or name}"]))
    return _merge(out)


# -- the index -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IndexFile:
    filename: str
    url: str
    sha256: str | None
    yanked: bool = False


@dataclass(slots=True)
class ProjectPage:
    name: str
    status: str  # "served", "not-found", "error"
    api: str  # "pep691", "pep503", "json"
    files: list[IndexFile] = field(default_factory=list)
    error: str | None = None


class _Links(HTMLParser):
    """Anchors of a PEP 503 project page: (href, text, data-yanked present)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.links: list[tuple[str, str, bool]] = []
        self._href: str | None = None
        self._yanked = False
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag.lower() != "a":
            return
        a = dict(attrs)
        self._href = a.get("href") or ""
        self._yanked = "data-yanked" in a
        self._text = []

    def handle_data(self, data: str) -> None:
        if self._href is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag.lower() == "a" and self._href is not None:
            self.links.append((self._href, "".join(self._text).strip(), self._yanked))
            self._href = None


def _safe_filename(name: str) -> bool:
    return 0 < len(name) <= 255 and not any(c in name for c in "/\\\0") and not name.startswith(".")


def parse_pep503(html_text: str, page_url: str) -> list[IndexFile]:
    """Files of a PEP 503 HTML project page."""
    p = _Links()
    p.feed(html_text)
    p.close()
    out = []
    for href, text, yanked in p.links:
        url, frag = urldefrag(urljoin(page_url, href))
        filename = text or url.rsplit("/", 1)[-1]
        if not _safe_filename(filename):
            continue
        sha = None
        m = re.search(r"(?:^|&)sha256=([0-9a-fA-F]{64})(?:&|$)", frag)
        if m:
            sha = m.group(1).lower()
        out.append(IndexFile(filename, url, sha, yanked))
    return out


def parse_pep691(doc: Any, page_url: str) -> list[IndexFile]:
    """Files of a PEP 691 JSON project document."""
    if not isinstance(doc, dict) or not isinstance(doc.get("files"), list):
        raise MirrorError("PEP 691 document without a 'files' list")
    return [x for f in doc["files"] if (x := _json_file(f, page_url, "hashes")) is not None]


def parse_json_api(doc: Any, page_url: str) -> list[IndexFile]:
    """Files of every release of a PyPI JSON API project document."""
    if not isinstance(doc, dict) or not isinstance(doc.get("releases"), dict):
        raise MirrorError("JSON API document without a 'releases' mapping")
    return [
        x
        for files in doc["releases"].values()
        for f in (files if isinstance(files, list) else [])
        if (x := _json_file(f, page_url, "digests")) is not None
    ]


def _json_file(f: Any, page_url: str, digests_key: str) -> IndexFile | None:
    """One file entry of a JSON index document (PEP 691 ``hashes``, JSON API ``digests``);
    None for an entry that is not an object or names an unsafe file."""
    if not isinstance(f, dict):
        return None
    filename = str(f.get("filename") or "")
    if not _safe_filename(filename):
        return None
    digests = f.get(digests_key) if isinstance(f.get(digests_key), dict) else {}
    sha = str(digests.get("sha256") or "").lower() if digests else ""
    return IndexFile(
        filename,
        urljoin(page_url, str(f.get("url") or "")),
        sha if _SHA256.fullmatch(sha) else None,
        bool(f.get("yanked")),
    )


class IndexReader:
    """Reads project pages of one index; thread-safe (one pooled HTTP client)."""

    def __init__(
        self,
        index_url: str,
        *,
        api: Api = "auto",
        timeout: float = 20.0,
        retries: int = 2,
        max_connections: int = 8,
        max_page_bytes: int = 20 * 1024 * 1024,
    ) -> None:
        import httpx

        if urlsplit(index_url).scheme not in ("http", "https"):
            raise MirrorError(f"{index_url}: not an http(s) index URL")
        self.index_url = index_url.rstrip("/") + "/"
        path = urlsplit(index_url).path.rstrip("/")
        self.api: str = (
            ("simple" if "simple" in path.rsplit("/", 1)[-1] else "json") if api == "auto" else api
        )
        self.retries = retries
        self.max_page_bytes = max_page_bytes
        self.requests = 0
        self._http = httpx.Client(
            timeout=httpx.Timeout(timeout),
            follow_redirects=True,
            limits=httpx.Limits(max_connections=max_connections),
            headers={"User-Agent": "pkgvet-mirror-audit (static scanner)"},
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> IndexReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def project_url(self, name: str) -> str:
        if self.api == "json":
            from pkgvet.collect.index import api_base

            return f"{api_base(self.index_url)}/pypi/{name}/json"
        return f"{self.index_url}{name}/"

    def get(self, url: str, accept: str | None, max_bytes: int) -> tuple[int, str, bytes]:
        """GET with retries on transport errors, timeouts and 429/5xx: (status, content type,
        body). The body is capped at ``max_bytes``."""
        import httpx

        attempt = 0
        while True:
            try:
                self.requests += 1
                headers = {"Accept": accept} if accept else {}
                with self._http.stream("GET", url, headers=headers) as resp:
                    ctype = resp.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
                    if resp.status_code in _RETRY and attempt < self.retries:
                        raise _Retry(f"HTTP {resp.status_code}")
                    if resp.status_code != 200:
                        return resp.status_code, ctype, b""
                    body = bytearray()
                    for chunk in resp.iter_bytes():
                        body += chunk
                        if len(body) > max_bytes:
                            raise MirrorError(f"{url}: over {max_bytes} bytes")
                    return 200, ctype, bytes(body)
            except (_Retry, httpx.TimeoutException, httpx.TransportError) as exc:
                if attempt >= self.retries:
                    raise MirrorError(f"{url}: {type(exc).__name__}: {exc}") from exc
                time.sleep(0.2 * 2**attempt)
                attempt += 1

    def project(self, name: str) -> ProjectPage:
        url = self.project_url(name)
        try:
            if self.api == "json":
                status, _ctype, body = self.get(url, "application/json", self.max_page_bytes)
                if status == 404:
                    return ProjectPage(name, "not-found", "json")
                if status != 200:
                    return ProjectPage(name, "error", "json", error=f"HTTP {status}")
                return ProjectPage(name, "served", "json", parse_json_api(_json(body), url))
            status, ctype, body = self.get(url, ACCEPT, self.max_page_bytes)
            if status in (404, 410):
                return ProjectPage(name, "not-found", "pep503")
            if status != 200:
                return ProjectPage(name, "error", "pep503", error=f"HTTP {status}")
            if ctype == PEP691_JSON or (ctype.endswith("json") and body.lstrip()[:1] == b"{"):
                return ProjectPage(name, "served", "pep691", parse_pep691(_json(body), url))
            text = body.decode("utf-8", "replace")
            return ProjectPage(name, "served", "pep503", parse_pep503(text, url))
        except MirrorError as exc:
            return ProjectPage(name, "error", self.api, error=exc.diagnostics())

    def sha256_of(self, file: IndexFile, max_bytes: int) -> str:
        """Download ``file`` into memory (capped), hash it, discard the bytes."""
        status, _c, body = self.get(file.url, None, max_bytes)
        if status != 200:
            raise MirrorError(f"{file.url}: HTTP {status}")
        return hashlib.sha256(body).hexdigest()


class _Retry(Exception):
    pass


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError as exc:
        raise MirrorError(f"invalid JSON ({exc})") from exc


# -- the audit -------------------------------------------------------------------------------

Status = Literal["sha256-match", "listed-version", "listed-all-versions", "hash-differs"]


@dataclass(slots=True)
class ServedFile:
    filename: str
    version: str | None
    sha256: str | None  # as published by the index (or computed with verify_hashes)
    hash_source: str  # "index", "downloaded", "none"
    status: Status
    yanked: bool
    url: str

    @property
    def purge(self) -> bool:
        return self.status != "hash-differs"


@dataclass(slots=True)
class ReleaseAudit:
    name: str
    version: str
    known_files: dict[str, str]
    sources: list[str]
    project: str  # the index's answer for the project: served, not-found, error
    served: bool  # a file of this release (or with a known digest) is served
    files: list[ServedFile] = field(default_factory=list)
    error: str | None = None


def _file_version(filename: str) -> str | None:
    nv = name_version_from_filename(filename)
    return nv[1] if nv else None


def audit_project(
    page: ProjectPage,
    releases: Sequence[KnownRelease],
    reader: IndexReader | None = None,
    verify_hashes: bool = False,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> list[ReleaseAudit]:
    """Match one project page against the known releases of that project."""
    out = []
    for rel in releases:
        audit = ReleaseAudit(
            rel.name,
            rel.version,
            dict(rel.files),
            list(rel.sources),
            page.status,
            False,
            error=page.error,
        )
        known_shas = set(rel.files.values())
        want = _norm_version(rel.version)
        for f in page.files:
            version = _file_version(f.filename)
            sha, source = f.sha256, "index" if f.sha256 else "none"
            by_version = rel.version == ALL_VERSIONS or (
                rel.version != BY_SHA256 and version is not None and _norm_version(version) == want
            )
            if (
                sha is None
                and verify_hashes
                and known_shas
                and reader is not None
                and (by_version or f.filename in rel.files)
            ):
                try:
                    sha, source = reader.sha256_of(f, max_bytes), "downloaded"
                except MirrorError as exc:
                    audit.error = exc.diagnostics()
            status: Status | None = None
            if sha is not None and sha in known_shas:
                status = "sha256-match"
            elif by_version:
                differs = known_shas and sha is not None
                if differs and (f.filename in rel.files or rel.version != ALL_VERSIONS):
                    status = "hash-differs"
                else:
                    status = (
                        "listed-all-versions" if rel.version == ALL_VERSIONS else "listed-version"
                    )
            if status is not None:
                audit.files.append(
                    ServedFile(f.filename, version, sha, source, status, f.yanked, f.url)
                )
        audit.served = bool(audit.files)
        out.append(audit)
    return out


@dataclass(slots=True)
class AuditReport:
    index_url: str
    api: str
    releases: list[ReleaseAudit]
    projects: int
    requests: int
    seconds: float

    def summary(self) -> dict[str, Any]:
        n = len(self.releases)
        served = [r for r in self.releases if r.served]
        errors = [r for r in self.releases if r.project == "error"]
        files = [f for r in served for f in r.files]
        by_status: dict[str, int] = {}
        for f in files:
            by_status[f.status] = by_status.get(f.status, 0) + 1
        checked = n - len(errors)
        from pkgvet.study import paper

        return {
            "index_url": self.index_url,
            "api": self.api,
            "known_releases": n,
            "projects_queried": self.projects,
            "requests": self.requests,
            "releases_served": len(served),
            "releases_served_pct": round(100.0 * len(served) / checked, 2) if checked else None,
            "releases_with_errors": len(errors),
            "files_served": len(files),
            "files_to_purge": sum(1 for f in files if f.purge),
            "files_by_status": dict(sorted(by_status.items())),
            "paper_still_served_pct": list(paper.MIRRORS_STILL_SERVING),
            "seconds": round(self.seconds, 2),
        }


def run_audit(
    index_url: str,
    releases: Sequence[KnownRelease],
    *,
    api: Api = "auto",
    concurrency: int = 8,
    timeout: float = 20.0,
    retries: int = 2,
    verify_hashes: bool = False,
    max_bytes: int = DEFAULT_MAX_BYTES,
    progress: Callable[[int], None] | None = None,
) -> AuditReport:
    """Ask the index for every project of ``releases`` (``concurrency`` requests at a time)
    and match what it serves."""
    start = time.monotonic()
    by_name: dict[str, list[KnownRelease]] = {}
    for r in releases:
        by_name.setdefault(canonical(r.name), []).append(r)
    with IndexReader(
        index_url, api=api, timeout=timeout, retries=retries, max_connections=concurrency
    ) as reader:

        def one(name: str) -> list[ReleaseAudit]:
            page = reader.project(name)
            try:
                return audit_project(page, by_name[name], reader, verify_hashes, max_bytes)
            finally:
                if progress is not None:
                    progress(1)

        names = sorted(by_name)
        with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
            audits = [a for chunk in pool.map(one, names) for a in chunk]
        return AuditReport(
            index_url, reader.api, audits, len(names), reader.requests, time.monotonic() - start
        )


# -- writing ---------------------------------------------------------------------------------


def write_report(report: AuditReport, out: Path) -> list[Path]:
    """``report.json``, ``report.md`` and ``purge-list.txt`` in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    summary = report.summary()
    doc = {
        "summary": summary,
        "releases": [
            {**asdict(r), "files": [{**asdict(f), "purge": f.purge} for f in r.files]}
            for r in report.releases
        ],
    }
    paths = [out / "report.json", out / "report.md", out / "purge-list.txt"]
    paths[0].write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", "utf-8")
    paths[1].write_text(_markdown(report, summary), "utf-8")
    lines = [
        "# pkgvet mirror-audit: files the index serves that are known malicious",
        f"# index: {report.index_url}",
        "# filename<TAB>sha256<TAB>project<TAB>version<TAB>reason",
    ]
    for r in report.releases:
        for f in r.files:
            if f.purge:
                lines.append(
                    f"{f.filename}\t{f.sha256 or '-'}\t{r.name}\t{f.version or '-'}\t{f.status}"
                )
    paths[2].write_text("\n".join(lines) + "\n", "utf-8")
    return paths


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ").replace("<", "&lt;")


def _markdown(report: AuditReport, s: dict[str, Any]) -> str:
    lines = [
        "# Mirror audit",
        "",
        f"Index: `{_md(report.index_url)}` (API: {s['api']}). {s['known_releases']:,} "
        f"known-malicious releases of {s['projects_queried']:,} projects checked with "
        f"{s['requests']:,} requests in {s['seconds']:.1f}s.",
        "",
        f"- **{s['releases_served']:,} releases still served** ({s['releases_served_pct']}% of "
        "those checked; Guo et al. found "
        f"{', '.join(f'{p}%' for p in s['paper_still_served_pct'])} at three large mirrors)",
        f"- {s['files_served']:,} files matched, {s['files_to_purge']:,} to purge "
        f"({', '.join(f'{k}: {v}' for k, v in s['files_by_status'].items()) or 'none'})",
        f"- {s['releases_with_errors']:,} releases could not be checked (index errors)",
        "",
        "Statuses: `sha256-match` the served file has the digest of a known-malicious file; "
        "`listed-version` / `listed-all-versions` an advisory lists the release and no digest "
        "contradicts it; `hash-differs` the release is listed but the served bytes differ from "
        "every known file (review: not in the purge list).",
        "",
        "## Served files to purge",
        "",
        "| project | version | file | sha256 | status |",
        "|---|---|---|---|---|",
    ]
    rows = [(r, f) for r in report.releases for f in r.files if f.purge]
    for r, f in rows[:2000]:
        lines.append(
            f"| {_md(r.name)} | {_md(f.version or '-')} | {_md(f.filename)} | "
            f"{(f.sha256 or '-')[:16]} | {f.status} |"
        )
    if not rows:
        lines.append("| – | – | – | – | – |")
    review = [(r, f) for r in report.releases for f in r.files if not f.purge]
    if review:
        lines += ["", "## Listed releases served with other bytes (review)", ""]
        lines += ["| project | version | file | served sha256 |", "|---|---|---|---|"]
        for r, f in review[:500]:
            lines.append(
                f"| {_md(r.name)} | {_md(f.version or '-')} | {_md(f.filename)} | "
                f"{(f.sha256 or '-')[:16]} |"
            )
    errs = [r for r in report.releases if r.project == "error"]
    if errs:
        lines += ["", "## Not checked (index errors)", ""]
        lines += [f"- {_md(r.name)} {_md(r.version)}: {_md(r.error or '?')}" for r in errs[:200]]
    return "\n".join(lines) + "\n"
