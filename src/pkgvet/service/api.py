"""The JSON API of ``pkgvet serve``, under ``/api/v1`` (OpenAPI at ``/openapi.json``, browsable
at ``/docs``).

Writes (``POST``) need an API token (:mod:`pkgvet.service.auth`); reads are open.

- ``POST /scans/upload`` (multipart ``file``, ``?force=true``): scan an uploaded file. The file
  is kept (so a restart can scan it) and hashed; the same bytes under the same file name again
  return the existing scan (200) unless ``force``; a new scan is 202. Over the upload cap: 413.
- ``POST /scans/name`` (JSON ``{"name", "version", "force"}``): fetch a release from the index
  (its JSON API, sha256-checked) and scan it; a request for a release scanned before returns
  that scan (200). An unpinned request is pinned to the index's latest release first.
- ``GET /scans/{id}``: status, verdict, score, categories, findings with decoded payloads, and
  the full ``pkgvet scan --format json`` document once done; ``GET /scans``: recent scans.
- ``GET /releases``: releases with their latest scan, filtered by ``verdict``, ``min_score``,
  ``category``, ``name``, ``since``/``until`` (first seen), sorted by ``sort``, paged by
  ``limit``/``offset``; ``GET /releases/{id}``: one release, its latest scan with findings, all
  its scans and decisions; ``GET /releases/{id}/similar``: near-identical releases;
  ``POST /releases/{id}/decisions``: a triage label.
- ``GET /packages/{name}``: a project's releases, newest first, each with its latest verdict.
- ``GET /health``: queue depth, busy workers, counts.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import re
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import (
    APIRouter,
    Depends,
    File,
    HTTPException,
    Query,
    Response,
    UploadFile,
    status,
)
from fastapi import (
    Path as PathParam,
)
from pydantic import BaseModel, Field

from pkgvet import __version__
from pkgvet.collect.index import CollectError, IndexClient, choose_version
from pkgvet.models import Category
from pkgvet.service.auth import require_token
from pkgvet.service.db import DECISION_LABELS, SCAN_STATUSES, ServiceStore, Submitted, Token
from pkgvet.service.deps import get_index, get_queue, get_settings, get_store
from pkgvet.service.jobs import ScanQueue
from pkgvet.service.settings import ServiceSettings

router = APIRouter(prefix="/api/v1", tags=["api"])

_NAME = re.compile(r"^([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])$", re.IGNORECASE)
_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.+!_-]{0,127}$")
_CHUNK = 1024 * 1024
_MAX_FILENAME = 255

Store = Annotated[ServiceStore, Depends(get_store)]
Queue = Annotated[ScanQueue, Depends(get_queue)]
Settings = Annotated[ServiceSettings, Depends(get_settings)]
Writer = Annotated[Token, Depends(require_token)]
Index = Annotated[IndexClient, Depends(get_index)]
Verdict = Literal["malicious", "suspicious", "clean", "error"]


# -- models (the OpenAPI schema) -------------------------------------------------------------


class Submission(BaseModel):
    """The answer to a submission."""

    scan_id: int
    release_id: int | None = Field(description="null until a name request is fetched")
    created: bool = Field(description="false: an existing scan answers this request")
    status: str
    scan_url: str


class NameRequest(BaseModel):
    """A release to fetch from the index by name."""

    name: str = Field(min_length=1, max_length=200, examples=["requests"])
    version: str | None = Field(
        default=None, max_length=128, description="the latest release when absent"
    )
    force: bool = Field(default=False, description="scan again even if already scanned")


class FindingOut(BaseModel):
    rule_id: str
    title: str
    severity: str
    confidence: str
    category: str
    trigger: str
    path: str
    line: int
    message: str
    snippet: str
    evidence: str = Field(description="the decoded payload or the matched indicator")
    decoded_depth: int


class ScanOut(BaseModel):
    id: int
    release_id: int | None
    status: Literal["queued", "running", "done", "error"]
    source: str
    requested: str | None
    forced: bool
    verdict: str | None
    score: float | None
    categories: list[str]
    triggers: list[str]
    max_severity: str | None
    model_version: str | None
    pkgvet_version: str | None
    error: str | None
    submitted_by: str | None
    submitted_at: str
    started_at: str | None
    finished_at: str | None
    findings: list[FindingOut] | None = None
    result: dict[str, Any] | None = Field(
        default=None, description="the `pkgvet scan --format json` document"
    )


class ReleaseFields(BaseModel):
    """What every release in a response carries."""

    id: int
    name: str
    version: str | None
    filename: str
    sha256: str
    size: int
    first_seen: str
    latest_scan_id: int | None


class ReleaseOut(ReleaseFields):
    scan: ScanOut | None


class DecisionIn(BaseModel):
    label: Literal["malicious", "false_positive"]
    note: str = Field(default="", max_length=4000)


class DecisionOut(BaseModel):
    id: int
    release_id: int
    label: str
    note: str
    actor: str
    created_at: str
    name: str
    version: str | None
    filename: str
    sha256: str


class ReleaseDetail(ReleaseOut):
    scans: list[ScanOut]
    decisions: list[DecisionOut]


class ReleasePage(BaseModel):
    total: int
    limit: int
    offset: int
    items: list[ReleaseOut]


class SimilarOut(ReleaseFields):
    similarity: float
    verdict: str | None


class History(BaseModel):
    name: str
    releases: list[ReleaseOut]


class Health(BaseModel):
    status: str
    pkgvet_version: str
    database: str
    queued: int
    busy: int
    workers: int
    counts: dict[str, int]


# -- helpers -------------------------------------------------------------------------------


def _answer(sub: Submitted, queue: ScanQueue, response: Response) -> Submission:
    if sub.created:
        queue.submit(sub.scan_id)
        response.status_code = status.HTTP_202_ACCEPTED
    else:
        response.status_code = status.HTTP_200_OK
    scan = queue.store.get_scan(sub.scan_id, with_result=False, with_findings=False)
    return Submission(
        scan_id=sub.scan_id,
        release_id=sub.release_id,
        created=sub.created,
        status=scan.status if scan else "queued",
        scan_url=f"/api/v1/scans/{sub.scan_id}",
    )


def _check_capacity(queue: ScanQueue, settings: ServiceSettings) -> None:
    if queue.depth >= settings.max_queued:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            f"{queue.depth} scans are waiting (the limit is {settings.max_queued}); retry later",
            headers={"Retry-After": "30"},
        )


def _safe_filename(raw: str | None) -> str:
    name = (raw or "").replace("\\", "/").rsplit("/", 1)[-1].strip()
    if not name or name in (".", ".."):
        raise HTTPException(422, "the upload needs a file name (e.g. pkg-1.0.tar.gz)")
    if len(name) > _MAX_FILENAME or any(ord(c) < 32 or c == "\x7f" for c in name):
        raise HTTPException(422, "the upload's file name is too long or has control characters")
    return name


def _store_blob(
    upload: UploadFile, filename: str, settings: ServiceSettings
) -> tuple[str, str, int]:
    """Copy the upload into the blob directory, hashing it; (path, sha256, size). Over the
    cap: 413, and nothing is kept."""
    cap = settings.max_upload_bytes
    root = settings.blobs
    (root / "tmp").mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    size = 0
    fd, tmp = tempfile.mkstemp(dir=root / "tmp", prefix="upload-")
    try:
        with os.fdopen(fd, "wb") as out:
            while chunk := upload.file.read(_CHUNK):
                size += len(chunk)
                if size > cap:
                    raise HTTPException(
                        status.HTTP_413_CONTENT_TOO_LARGE,
                        f"the upload is over the {cap}-byte limit ({settings.max_upload_mb:g} MB)",
                    )
                digest.update(chunk)
                out.write(chunk)
        if size == 0:
            raise HTTPException(422, "the uploaded file is empty")
        sha = digest.hexdigest()
        final = root / sha[:2] / sha / filename
        _place(tmp, final)
        return str(final), sha, size
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _place(tmp: str, final: Path) -> None:
    """Move a finished upload to its place; a file already there (the same bytes under the same
    name) is kept and marked fresh, so that the upload retention leaves it alone. The retention
    may remove the file or its directory at the same moment: then place it again."""
    for _ in range(3):
        final.parent.mkdir(parents=True, exist_ok=True)
        try:
            if final.is_file():
                os.utime(final)
                os.unlink(tmp)
            else:
                os.replace(tmp, final)
            return
        except FileNotFoundError:
            continue
    raise HTTPException(503, "the upload could not be stored; try again")


def _parse_name(req: NameRequest) -> tuple[str, str | None]:
    name = req.name.strip()
    if not _NAME.match(name):
        raise HTTPException(422, f"{name!r} is not a valid project name")
    version = req.version.strip() if req.version else None
    if version is not None and not _VERSION.match(version):
        raise HTTPException(422, f"{version!r} is not a valid version")
    return name, version


def _release_out(d: dict[str, Any]) -> ReleaseOut:
    return ReleaseOut.model_validate(d)


# -- endpoints ------------------------------------------------------------------------------

# the refusals both ways of submitting a scan share (documented in the OpenAPI schema)
_SUBMIT_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "no or unknown API token"},
    403: {"description": "revoked API token"},
    422: {"description": "malformed request"},
    503: {"description": "too many scans waiting"},
}


@router.post(
    "/scans/upload",
    response_model=Submission,
    status_code=status.HTTP_202_ACCEPTED,
    responses={
        200: {"model": Submission, "description": "the same file was scanned before"},
        413: {"description": "over the upload size limit"},
        **_SUBMIT_ERRORS,
    },
    summary="Scan an uploaded package file",
)
def submit_upload(
    file: Annotated[UploadFile, File(description="an sdist, wheel, egg or zip")],
    response: Response,
    token: Writer,
    store: Store,
    queue: Queue,
    settings: Settings,
    force: Annotated[bool, Query(description="scan again even if already scanned")] = False,
) -> Submission:
    filename = _safe_filename(file.filename)
    _check_capacity(queue, settings)
    path, sha, size = _store_blob(file, filename, settings)
    sub = store.submit_upload(
        filename=filename,
        sha256=sha,
        size=size,
        blob_path=path,
        force=force,
        submitted_by=token.name,
    )
    return _answer(sub, queue, response)


@router.post(
    "/scans/name",
    response_model=Submission,
    status_code=status.HTTP_202_ACCEPTED,
    responses={
        200: {"model": Submission, "description": "this release was scanned before"},
        **_SUBMIT_ERRORS,
    },
    summary="Fetch a release from the index by name and scan it",
)
def submit_name(
    req: NameRequest,
    response: Response,
    token: Writer,
    store: Store,
    queue: Queue,
    settings: Settings,
    index: Index,
) -> Submission:
    name, version = _parse_name(req)
    _check_capacity(queue, settings)
    if version is None and not req.force:
        version = _latest_version(index, name)
    sub = store.submit_name(name, version, force=req.force, submitted_by=token.name)
    return _answer(sub, queue, response)


def _latest_version(index: IndexClient, name: str) -> str | None:
    """The release an unpinned request would scan (the index's latest with a usable file, as
    the worker chooses it), so that a release scanned before is answered from its scan; None
    when the index does not tell (the request is then queued unpinned, and the worker asks
    again and reports what went wrong)."""
    try:
        return choose_version(index.project(name), "latest", random.Random(0))
    except (CollectError, OSError):
        return None


@router.get("/scans/{scan_id}", response_model=ScanOut, summary="One scan and its result")
def get_scan(
    scan_id: Annotated[int, PathParam(ge=1)],
    store: Store,
    result: Annotated[bool, Query(description="include the full JSON document")] = True,
) -> ScanOut:
    scan = store.get_scan(scan_id, with_result=result)
    if scan is None:
        raise HTTPException(404, f"no scan {scan_id}")
    return ScanOut.model_validate(scan.to_dict())


@router.get("/scans", response_model=list[ScanOut], summary="Recent scans, newest first")
def list_scans(
    store: Store,
    status_: Annotated[
        Literal["queued", "running", "done", "error"] | None, Query(alias="status")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[ScanOut]:
    assert status_ is None or status_ in SCAN_STATUSES
    return [
        ScanOut.model_validate(s.to_dict())
        for s in store.list_scans(status=status_, limit=limit, offset=offset)
    ]


@router.get("/releases", response_model=ReleasePage, summary="Releases by verdict, score…")
def list_releases(
    store: Store,
    verdict: Verdict | None = None,
    min_score: Annotated[float | None, Query(ge=0.0, le=1.0)] = None,
    category: Category | None = None,
    name: Annotated[str | None, Query(max_length=200)] = None,
    since: Annotated[datetime | None, Query(description="first seen at or after")] = None,
    until: Annotated[datetime | None, Query(description="first seen before")] = None,
    sort: Literal["score", "-score", "first_seen", "-first_seen", "name"] = "-score",
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> ReleasePage:
    page = store.list_releases(
        verdict=verdict,
        min_score=min_score,
        category=category.value if category is not None else None,
        name=name,
        since=since,
        until=until,
        sort=sort,
        limit=limit,
        offset=offset,
    )
    return ReleasePage.model_validate(page.to_dict())


@router.get("/releases/{release_id}", response_model=ReleaseDetail, summary="One release in full")
def get_release(release_id: Annotated[int, PathParam(ge=1)], store: Store) -> ReleaseDetail:
    view = store.get_release(release_id)
    if view is None:
        raise HTTPException(404, f"no release {release_id}")
    d = view.to_dict()
    d["scans"] = [s.to_dict() for s in store.scans_of_release(release_id)]
    d["decisions"] = [x.to_dict() for x in store.decisions_of(release_id)]
    return ReleaseDetail.model_validate(d)


@router.get(
    "/releases/{release_id}/similar",
    response_model=list[SimilarOut],
    summary="Releases with near-identical code (the same campaign)",
)
def similar(
    release_id: Annotated[int, PathParam(ge=1)],
    store: Store,
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
) -> list[SimilarOut]:
    if store.get_release(release_id, with_findings=False) is None:
        raise HTTPException(404, f"no release {release_id}")
    return [
        SimilarOut.model_validate(s.to_dict()) for s in store.similar_releases(release_id, limit)
    ]


@router.post(
    "/releases/{release_id}/decisions",
    response_model=DecisionOut,
    status_code=status.HTTP_201_CREATED,
    summary="Record a triage decision on a release",
)
def decide(
    release_id: Annotated[int, PathParam(ge=1)],
    body: DecisionIn,
    token: Writer,
    store: Store,
) -> DecisionOut:
    assert body.label in DECISION_LABELS
    try:
        d = store.record_decision(release_id, body.label, body.note, token.name)
    except KeyError:
        raise HTTPException(404, f"no release {release_id}") from None
    return DecisionOut.model_validate(d.to_dict())


@router.get("/packages/{name}", response_model=History, summary="A project's release history")
def package_history(name: Annotated[str, PathParam(max_length=200)], store: Store) -> History:
    if not _NAME.match(name):
        raise HTTPException(422, f"{name!r} is not a valid project name")
    views = store.package_history(name)
    if not views:
        raise HTTPException(404, f"no release of {name!r} is known")
    return History(name=views[0].release.name, releases=[_release_out(v.to_dict()) for v in views])


@router.get("/health", response_model=Health, summary="Liveness, queue and counts")
def health(store: Store, queue: Queue, settings: Settings) -> Health:
    return Health(
        status="ok",
        pkgvet_version=__version__,
        database=store.dialect,
        queued=queue.depth,
        busy=queue.busy,
        workers=settings.workers,
        counts=store.counts(),
    )


__all__ = ["router"]
